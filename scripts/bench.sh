#!/usr/bin/env bash
# make bench: the load-generator suite against a freshly started stack on
# 127.0.0.1 — a real nats-server, ticketsvc and ONE gateway pinned to CPU 0,
# ocvr-loadgen pinned to CPU 1 — writing BENCHMARKS.md-ready tables.
#
#   scripts/bench.sh [workload …]      workloads: idle fanout storm churn floor (default: all)
#                                      continuity (issue 17, not in the default set):
#                                      resume resumestorm overload overload-old streamcap
#                                      the storm against Centrifugo v6.9.1 (built once into
#                                      .cache/bin; not in the default set): storm-centrifugo,
#                                      storm-pair (storm, then storm-centrifugo, then their ratio)
#                                      cluster: three pods, one killed with SIGKILL and restarted
#                                      (scripts/bench-cluster.sh, CLUSTER_* knobs; not in the default set)
#                                      compression (issue 20, not in the default set): the chat
#                                      corpus without and with permessage-deflate, pass by pass;
#                                      idle-compression: idle with every socket negotiating it
#   RUNS=3 scripts/bench.sh fanout     repeat each workload (report every run; use the median)
#
# Env knobs: IDLE_CONNS (19500), IDLE_CHANNELS (100), IDLE_ARGS, FANOUT_SUBS (5000),
# FANOUT_RATES, FANOUT_ARGS (e.g. "--step 20s", "--path both": stream vs core
# publishing in the same run), STORM_CONNS (5000),
# STORM_INFLIGHT (200), CHURN_WORKERS (200), CHURN_DURATION (20s), FLOOR_RATES
# (10,40,120), FLOOR_STEP (10s), RESUME_CLIENTS (500), RESUME_MISSED (0,10,300),
# RESUME_INFLIGHT (20), RESUME_ARGS, RSTORM_CLIENTS (5000), RSTORM_INFLIGHT (200),
# RSTORM_MISSED (10), RSTORM_ARGS, OVERLOAD_SUBS (5000), OVERLOAD_RATE (200),
# OVERLOAD_DURATION (20s), OVERLOAD_ARGS (e.g. "--read-rate 100", "--pause 10s"),
# STREAMCAP_RATES, STREAMCAP_ARGS, EXTRA_GATEWAY_ARGS (e.g. --reader-goroutines),
# COMPRESSION_SUBS (2000), COMPRESSION_RATES (20,80,160), COMPRESSION_ARGS,
# SERVER_ENV (environment of the server processes), OUT (bench-results),
# CENTRIFUGO_BIN (a Centrifugo binary instead of .cache/bin/centrifugo),
# STACK_BIN (run the binaries in that folder instead of building the tree).
#
# stampede (issue 18): STAMPEDE_CONNS (19000) clients at once, no jitter,
# STAMPEDE_INFLIGHT (1000) in flight, retry hints honoured; STAMPEDE_ARGS.
#
# overload-old is overload against a gateway with --no-continuity, publishing
# with core NATS: the behaviour before continuity (a full queue closes 4009).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
bin=$root/bin
out=${OUT:-$root/bench-results}
runs=${RUNS:-1}
mkdir -p "$out"
workloads=("$@")
[ ${#workloads[@]} -gt 0 ] || workloads=(idle fanout storm churn floor)

. scripts/lib/stack.sh
. scripts/lib/centrifugo.sh

NATS=nats://127.0.0.1:14222
server_cpu=0
client_cpu=1

# A stack from a previous run may still be letting go of its ports.
wait_ports_free() {
	for _ in $(seq 1 300); do
		ss -Htln 2>/dev/null | grep -qE '127\.0\.0\.1:(14222|18222|18080|19080|18081|19081)\b' || return 0
		sleep 0.1
	done
	echo "ports still in use" >&2
	return 1
}

start_stack() { # extra gateway flags…
	wait_ports_free
	rm -rf "$tmp/nats"
	env ${SERVER_ENV:-} taskset -c $server_cpu "$bin/nats-server" -js -sd "$tmp/nats" -a 127.0.0.1 -p 14222 -m 18222 >"$tmp/nats.log" 2>&1 &
	nats_pid=$!
	pids+=($nats_pid)
	wait_ready http://127.0.0.1:18222/healthz
	env ${SERVER_ENV:-} taskset -c $server_cpu "$bin/ticketsvc" --listen 127.0.0.1:18080 --admin-listen 127.0.0.1:19080 \
		--nats-url $NATS --rate-limit 1000000 --log-level warn >"$tmp/ticketsvc.log" 2>&1 &
	tsvc_pid=$!
	pids+=($tsvc_pid)
	env ${SERVER_ENV:-} taskset -c $server_cpu "$bin/gateway" --listen 127.0.0.1:18081 --admin-listen 127.0.0.1:19081 \
		--nats-url $NATS --pod-name bench --log-level warn "${GATEWAY_ARGS[@]}" "$@" >"$out/gateway.log" 2>&1 &
	gw_pid=$!
	pids+=($gw_pid)
	wait_ready http://127.0.0.1:19080/readyz
	wait_ready http://127.0.0.1:19081/readyz
}

# The gateway first, while NATS is still up: a gateway whose NATS went away
# with it waits for its KV watchers' consumer deletions to time out (minutes).
stop_stack() {
	kill "$gw_pid" 2>/dev/null || true
	wait "$gw_pid" 2>/dev/null || true
	kill "$tsvc_pid" "$nats_pid" 2>/dev/null || true
	wait "$tsvc_pid" "$nats_pid" 2>/dev/null || true
	pids=()
}

# The load comes from one machine (a few 127.0.0.x sources): no per-source
# bound on upgrades in flight, as ticketsvc's rate limit is lifted too.
GATEWAY_ARGS=(--readiness-delay 0s --drain-window 1s --pprof --max-preauth-per-source 0 ${EXTRA_GATEWAY_ARGS:-})
loadgen() { # workload flags…
	local w=$1
	shift
	taskset -c $client_cpu "$bin/ocvr-loadgen" "$w" --nats-url $NATS --ticket-url http://127.0.0.1:18080 \
		--ws-url ws://127.0.0.1:18081/v1/ws --admin-url http://127.0.0.1:19081 "$@"
}

echo "# machine: $(nproc) CPUs, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), $(uname -r)"
echo "# server (nats-server, ticketsvc, gateway) pinned to CPU $server_cpu; ocvr-loadgen pinned to CPU $client_cpu"
echo "# binaries: $bin; $("$bin/gateway" --version 2>&1 | head -1)"
centrifugo_prepare "${workloads[@]}"
for w in "${workloads[@]}"; do
	for r in $(seq 1 "$runs"); do
		if [ "$w" = floor ]; then
			# No stack: the same fan-out over plain TCP, this machine's floor.
			echo
			echo "## floor (run $r of $runs)"
			taskset -c $server_cpu "$bin/ocvr-loadgen" floor-server --subs "${FANOUT_SUBS:-5000}" --rates "${FLOOR_RATES:-10,40,120}" --step "${FLOOR_STEP:-10s}" >"$out/floor-server-$r.txt" &
			fpid=$!
			pids+=($fpid)
			sleep 0.5
			taskset -c $client_cpu "$bin/ocvr-loadgen" floor --subs "${FANOUT_SUBS:-5000}" --rates "${FLOOR_RATES:-10,40,120}" --json "$out/floor-$r.json"
			wait "$fpid"
			pids=()
			echo "floor-server:"
			tail -n +2 "$out/floor-server-$r.txt"
			continue
		fi
		if [ "$w" = storm-centrifugo ] || [ "$w" = storm-pair ]; then
			centrifugo_storms "$w" "$r"
			continue
		fi
		if [ "$w" = cluster ]; then OUT=$out STACK_BIN=$bin scripts/bench-cluster.sh; continue; fi # a stack of its own
		case $w in
		overload-old) start_stack --no-continuity ;;
		compression | idle-compression) start_stack --compression ;;
		*) start_stack ;;
		esac
		echo
		echo "## $w (run $r of $runs)"
		case $w in
		idle) loadgen idle ${IDLE_ARGS:-} --conns "${IDLE_CONNS:-19500}" --channels "${IDLE_CHANNELS:-100}" --pids "$gw_pid,$nats_pid" --json "$out/idle-$r.json" ;;
		fanout) loadgen fanout ${FANOUT_ARGS:-} --subs "${FANOUT_SUBS:-5000}" --rates "${FANOUT_RATES:-10,20,40,60,80,100,120,150}" --pids "$gw_pid,$nats_pid" --json "$out/fanout-$r.json" ;;
		storm) loadgen storm --conns "${STORM_CONNS:-5000}" --inflight "${STORM_INFLIGHT:-200}" --pids "$gw_pid,$nats_pid,$tsvc_pid" --json "$out/storm-$r.json" ;;
		stampede) loadgen stampede ${STAMPEDE_ARGS:-} --conns "${STAMPEDE_CONNS:-19000}" --inflight "${STAMPEDE_INFLIGHT:-1000}" --pids "$gw_pid,$nats_pid,$tsvc_pid" --json "$out/stampede-$r.json" ;;
		churn) loadgen churn --workers "${CHURN_WORKERS:-200}" --duration "${CHURN_DURATION:-20s}" --pids "$gw_pid,$nats_pid,$tsvc_pid" --json "$out/churn-$r.json" ;;
		resume) loadgen resume ${RESUME_ARGS:-} --clients "${RESUME_CLIENTS:-500}" --missed "${RESUME_MISSED:-0,10,300}" --inflight "${RESUME_INFLIGHT:-20}" --pids "$gw_pid,$nats_pid,$tsvc_pid" --json "$out/resume-$r.json" ;;
		resumestorm) loadgen resume ${RSTORM_ARGS:-} --clients "${RSTORM_CLIENTS:-5000}" --missed "${RSTORM_MISSED:-10}" --inflight "${RSTORM_INFLIGHT:-200}" --pids "$gw_pid,$nats_pid,$tsvc_pid" --json "$out/resumestorm-$r.json" ;;
		overload) loadgen overload ${OVERLOAD_ARGS:-} --subs "${OVERLOAD_SUBS:-5000}" --rate "${OVERLOAD_RATE:-200}" --duration "${OVERLOAD_DURATION:-20s}" --pids "$gw_pid,$nats_pid" --json "$out/overload-$r.json" ;;
		overload-old) loadgen overload ${OVERLOAD_ARGS:-} --path core --subs "${OVERLOAD_SUBS:-5000}" --rate "${OVERLOAD_RATE:-200}" --duration "${OVERLOAD_DURATION:-20s}" --pids "$gw_pid,$nats_pid" --json "$out/overload-old-$r.json" ;;
		compression) loadgen compression ${COMPRESSION_ARGS:-} --subs "${COMPRESSION_SUBS:-2000}" --rates "${COMPRESSION_RATES:-20,80,160}" --pids "$gw_pid,$nats_pid" --json "$out/compression-$r.json" ;;
		idle-compression) loadgen idle ${IDLE_ARGS:-} --compress --conns "${IDLE_CONNS:-19500}" --channels "${IDLE_CHANNELS:-100}" --pids "$gw_pid,$nats_pid" --json "$out/idle-compression-$r.json" ;;
		streamcap) loadgen streamcap ${STREAMCAP_ARGS:-} ${STREAMCAP_RATES:+--rates "$STREAMCAP_RATES"} --pids "$gw_pid,$nats_pid" --json "$out/streamcap-$r.json" ;;
		*) echo "unknown workload $w" >&2; exit 2 ;;
		esac
		stop_stack
	done
done
