# Sourced by scripts/bench-cluster.sh after scripts/lib/stack.sh (bin, tmp,
# pids, wait_ready): the cluster's processes and the waits around them.
# Ports of their own (2xxxx), so a single-gateway bench stack can coexist.

server_cpu=0
client_cpu=1
NATS=nats://127.0.0.1:24222
nats_monitor=28222
TICKET_URL=http://127.0.0.1:28080
tsvc_admin=29080
gw_port=([1]=28081 [2]=28082 [3]=28083)
gw_admin=([1]=29081 [2]=29082 [3]=29083)
gw_pid=()
nats_pid=
tsvc_pid=
shard_pids=()

# A previous run may still be letting go of its ports; wait up to 30 s.
cluster_ports_free() {
	local re='127\.0\.0\.1:(24222|28222|28080|29080|2808[123]|2908[123])\b'
	for _ in $(seq 1 300); do
		ss -Htln 2>/dev/null | grep -qE "$re" || return 0
		sleep 0.1
	done
	echo "bench-cluster: ports in use:" >&2
	ss -Htlnp 2>/dev/null | grep -E "$re" >&2 || true
	return 1
}

cluster_start_servers() { # run-dir
	local run=$1 i
	rm -rf "$tmp/nats"
	env ${SERVER_ENV:-} taskset -c $server_cpu "$bin/nats-server" -js -sd "$tmp/nats" -a 127.0.0.1 -p 24222 -m $nats_monitor >"$run/nats.log" 2>&1 &
	nats_pid=$!
	pids+=($nats_pid)
	wait_ready http://127.0.0.1:$nats_monitor/healthz
	env ${SERVER_ENV:-} taskset -c $server_cpu "$bin/ticketsvc" --listen 127.0.0.1:28080 --admin-listen 127.0.0.1:$tsvc_admin \
		--nats-url $NATS --rate-limit "${CLUSTER_TICKET_RATE_LIMIT:-30}" --log-level warn >"$run/ticketsvc.log" 2>&1 &
	tsvc_pid=$!
	pids+=($tsvc_pid)
	for i in 1 2 3; do cluster_start_gateway $i "$run"; done
	wait_ready http://127.0.0.1:$tsvc_admin/readyz
	for i in 1 2 3; do wait_ready "http://127.0.0.1:${gw_admin[i]}/readyz"; done
}

# A pod: its own open-files limit (the process's, as a container's would
# be), refusing with 1013 at its hard cap. Not waited for.
cluster_start_gateway() { # index run-dir
	local i=$1 run=$2
	(
		ulimit -n "$fd_limit"
		exec env ${SERVER_ENV:-} taskset -c $server_cpu "$bin/gateway" --listen "127.0.0.1:${gw_port[i]}" --admin-listen "127.0.0.1:${gw_admin[i]}" \
			--nats-url $NATS --pod-name "gw$i" --log-level warn --readiness-delay 0s --drain-window 1s \
			--hard-max-connections "$hard_max" ${CLUSTER_GATEWAY_ARGS:-}
	) >>"$run/gw$i.log" 2>&1 &
	gw_pid[i]=$!
	pids+=($!)
}

# Drop a pid the script has seen exit from the cleanup list, so that the
# cleanup never signals a number the kernel may have handed to another
# process since.
cluster_forget_pid() { # pid
	local keep=() p
	for p in "${pids[@]}"; do [ "$p" = "$1" ] || keep+=("$p"); done
	pids=("${keep[@]}")
}

cluster_sleep_until() { # unix-ns
	local d=$(($1 - $(date +%s%N)))
	if ((d > 0)); then sleep "$(awk -v d=$d 'BEGIN { printf "%.3f", d / 1e9 }')"; fi
}

# The server side at one moment, appended to probes.jsonl.
cluster_probe() { # label run-dir
	taskset -c $client_cpu "$bin/ocvr-loadgen" cluster-probe --label "$1" \
		--pods "gw1=${gw_pid[1]}@http://127.0.0.1:${gw_admin[1]},gw2=${gw_pid[2]}@http://127.0.0.1:${gw_admin[2]},gw3=${gw_pid[3]}@http://127.0.0.1:${gw_admin[3]}" \
		--nats "$nats_pid@http://127.0.0.1:$nats_monitor" --ticketsvc "$tsvc_pid" --append "$2/probes.jsonl" >>"$2/probes.log" 2>&1 ||
		echo "(probe $1 failed: $2/probes.log)"
}

# The shards' status files summed: up=N down=N disconnected=N back=N.
cluster_status() {
	cat "$tmp"/status-* 2>/dev/null </dev/null | awk '{ for (i = 1; i <= NF; i++) { split($i, kv, "="); s[kv[1]] += kv[2] } }
		END { printf "up=%d down=%d disconnected=%d back=%d\n", s["up"], s["down"], s["disconnected"], s["back"] }'
}

# Wait until an arithmetic condition on the summed status holds (e.g.
# "up == 3000 && down == 0"); fails after timeout seconds or as soon as a
# shard has exited.
cluster_wait_status() { # condition timeout-seconds
	local end=$((SECONDS + $2)) up=0 down=0 disconnected=0 back=0 p
	while ((SECONDS < end)); do
		eval "$(cluster_status)"
		if (($1)); then return 0; fi
		for p in "${shard_pids[@]}"; do
			kill -0 "$p" 2>/dev/null || {
				echo "bench-cluster: load generator $p exited early" >&2
				return 1
			}
		done
		sleep 0.5
	done
	return 1
}

# Wait (at most max seconds) until the server core is under pct % busy over
# a second: the presence announcements of tens of thousands of new
# connections are not part of the steady window.
cluster_wait_quiet() { # pct max-seconds
	local i ba ta bb tb
	for ((i = 0; i < $2; i++)); do
		read -r ba ta < <(cluster_cpu_ticks)
		sleep 1
		read -r bb tb < <(cluster_cpu_ticks)
		if (((bb - ba) * 100 < $1 * (tb - ta))); then return 0; fi
	done
	return 1
}

# The server core's busy and total ticks (busy: user, nice, system, irq,
# softirq), as cluster-probe counts them.
cluster_cpu_ticks() {
	awk -v c="cpu$server_cpu" '$1 == c { print $2 + $3 + $4 + $7 + $8, $2 + $3 + $4 + $5 + $6 + $7 + $8 + $9 }' /proc/stat
}
