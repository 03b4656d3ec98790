#!/usr/bin/env bash
# The cluster benchmark (BENCHMARKS.md "Cluster"): three gateway pods on
# this machine, each under its open-files limit, holding CLUSTER_CONNS
# clients from CLUSTER_SHARDS load-generator processes while a publisher
# sends steadily through the event stream; then one pod is killed with
# SIGKILL, restarted after CLUSTER_RESTART_DELAY seconds (what a Deployment
# does), and its clients reconnect as the SDKs do. Real processes, no
# containers: nats-server, ticketsvc and the gateways pinned to CPU 0, the
# load generators to CPU 1.
#
#   scripts/bench-cluster.sh                       full scale: 56,000 clients (4 × 14,000)
#   CLUSTER_CONNS=3000 CLUSTER_SHARDS=2 CLUSTER_HARD_MAX=1100 scripts/bench-cluster.sh   small
#
# The full scale saturates the machine for ~5 minutes; other people measure
# here too, so run it under the shared lock:
#   flock /tmp/ocvr-bench.lock scripts/bench-cluster.sh
#
# Knobs (env): CLUSTER_CONNS (56000), CLUSTER_SHARDS (4), CLUSTER_HARD_MAX
# (19000: each pod's --hard-max-connections), CLUSTER_FD_LIMIT (the hard
# open-files limit, 20,000 here: each pod's ulimit -n), CLUSTER_CHANNELS
# (100), CLUSTER_RATE (20 events/s), CLUSTER_STEADY (15 s of publishing
# before the kill), CLUSTER_RESTART_DELAY (5 s), CLUSTER_AFTER (10 s after
# every client is back), CLUSTER_CONNECT_TIMEOUT (150 s), CLUSTER_RECOVER_TIMEOUT
# (170 s after the restart), CLUSTER_TICKET_RATE_LIMIT (30 tickets per session per minute:
# ticketsvc's default), CLUSTER_ARGS (more client flags, e.g.
# "--backoff-max 5s"), CLUSTER_GATEWAY_ARGS, OUT (bench-results), STACK_BIN.
# Results: $OUT/cluster-<time>/ (shards' and publisher's JSON, probes,
# logs, report.md).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
bin=$root/bin
out=${OUT:-$root/bench-results}
. scripts/lib/stack.sh
. scripts/lib/cluster.sh

conns=${CLUSTER_CONNS:-56000}
shards=${CLUSTER_SHARDS:-4}
hard_max=${CLUSTER_HARD_MAX:-19000}
fd_limit=${CLUSTER_FD_LIMIT:-$(ulimit -Hn)}
channels=${CLUSTER_CHANNELS:-100}
rate=${CLUSTER_RATE:-20}
steady=${CLUSTER_STEADY:-15}
restart_delay=${CLUSTER_RESTART_DELAY:-5}
after=${CLUSTER_AFTER:-10}
connect_timeout=${CLUSTER_CONNECT_TIMEOUT:-150}
recover_timeout=${CLUSTER_RECOVER_TIMEOUT:-170}
per=$(((conns + shards - 1) / shards))
conns=$((per * shards))
# Each process stops by itself at the latest after this (the script stops
# it earlier): connect + quiet + steady + recovery + after, with room.
max_duration=$((connect_timeout + 60 + steady + recover_timeout + after + 30))s

if [ "$per" -ge "$((fd_limit - 1000))" ]; then
	echo "bench-cluster: $per clients per load generator does not fit its $fd_limit descriptors: raise CLUSTER_SHARDS" >&2
	exit 2
fi
if [ "$hard_max" -ge "$fd_limit" ]; then
	echo "bench-cluster: CLUSTER_HARD_MAX $hard_max must stay under the pods' $fd_limit descriptors" >&2
	exit 2
fi

run=$out/cluster-$(date -u +%Y%m%dT%H%M%SZ)
mkdir -p "$run"
echo "# cluster: $conns clients ($shards × $per) over 3 pods (hard cap $hard_max, $fd_limit descriptors each), $rate events/s over $channels channels"
echo "# machine: $(nproc) CPUs, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), $(uname -r); binaries: $bin; $("$bin/gateway" --version 2>&1 | head -1)"
echo "# servers pinned to CPU $server_cpu, load generators to CPU $client_cpu; results in $run"

cluster_ports_free
cluster_start_servers "$run"
cluster_probe base "$run"

# The shards: client i of the run is shard i/per's client, starts at
# gateway i mod 3 and subscribes to channel i mod channels.
gw_urls=ws://127.0.0.1:${gw_port[1]}/v1/ws,ws://127.0.0.1:${gw_port[2]}/v1/ws,ws://127.0.0.1:${gw_port[3]}/v1/ws
shard_pids=()
for ((s = 0; s < shards; s++)); do
	taskset -c $client_cpu "$bin/ocvr-loadgen" cluster --role client --nats-url "$NATS" --ticket-url "$TICKET_URL" \
		--gateways "$gw_urls" --kill-gateway 3 --shard $s --conns $per --channels "$channels" \
		--status-file "$tmp/status-$s" --kill-file "$run/kill" --published-file "$run/publisher.json" \
		--out "$run/shard-$s.json" --max-duration "$max_duration" ${CLUSTER_ARGS:-} >"$run/shard-$s.log" 2>&1 &
	shard_pids+=($!)
	pids+=($!)
done
t0=$(date +%s)
if ! cluster_wait_status "up == $conns" "$connect_timeout"; then
	echo "bench-cluster: not every client connected in ${connect_timeout}s: $(cluster_status)" >&2
	exit 1
fi
echo "all $conns clients connected in $(($(date +%s) - t0)) s; waiting for the server core to go quiet"
cluster_wait_quiet 65 60 || echo "(the server core was still over 65% busy after 60 s)"
cluster_probe connected "$run"

echo 0 >"$tmp/phase"
taskset -c $client_cpu "$bin/ocvr-loadgen" cluster --role publish --nats-url "$NATS" --channels "$channels" --rate "$rate" \
	--phase-file "$tmp/phase" --out "$run/publisher.json" --max-duration "$max_duration" >"$run/publisher.log" 2>&1 &
pub_pid=$!
pids+=($pub_pid)
sleep "$steady"
cluster_probe before-kill "$run"

echo "killing gw3 (pid ${gw_pid[3]}) with SIGKILL; restarting it after ${restart_delay}s"
kill -9 "${gw_pid[3]}"
date +%s%N >"$run/kill"
echo 1 >"$tmp/phase"
wait "${gw_pid[3]}" 2>/dev/null || true
cluster_forget_pid "${gw_pid[3]}"
# The restart at kill + delay; the "down" probe just before it.
restart_at=$(($(cat "$run/kill") + restart_delay * 1000000000))
cluster_sleep_until $((restart_at - 300000000))
cluster_probe down "$run"
cluster_sleep_until $restart_at
cluster_start_gateway 3 "$run"
date +%s%N >"$run/restart"
wait_ready "http://127.0.0.1:${gw_admin[3]}/readyz" && date +%s%N >"$run/restart-ready"
if cluster_wait_status "up == $conns && down == 0" "$recover_timeout"; then
	date +%s%N >"$run/recovered"
	echo "every client back $(((($(cat "$run/recovered") - $(cat "$run/kill")) / 1000000)))ms after the kill"
else
	date +%s%N >"$run/recover-timeout"
	echo "bench-cluster: not every client was back ${recover_timeout}s after the restart: $(cluster_status)" >&2
fi
echo 2 >"$tmp/phase"
cluster_probe recovered "$run"
sleep "$after"
cluster_probe end "$run"

# The publisher first (it writes what it published), a moment for the
# last events to arrive, then the shards (each writes its JSON on SIGTERM).
kill -TERM "$pub_pid"
wait "$pub_pid" || echo "(publisher exited with $?)"
cluster_forget_pid "$pub_pid"
sleep 2
kill -TERM "${shard_pids[@]}"
for p in "${shard_pids[@]}"; do
	wait "$p" || echo "(shard $p exited with $?)"
	cluster_forget_pid "$p"
done
shard_pids=()
grep -c 'too many open files' "$run"/gw*.log /dev/null | grep -v ':0$' || true

taskset -c $client_cpu "$bin/ocvr-loadgen" cluster-report --dir "$run" --hard-max "$hard_max" --fd-limit "$fd_limit" \
	--restart-delay "${restart_delay}s" --server-cpu $server_cpu --client-cpu $client_cpu | tee "$run/report.md"
