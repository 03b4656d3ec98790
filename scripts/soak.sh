#!/usr/bin/env bash
# make soak: the bounded soak of HARDENING.md against a freshly started stack
# on 127.0.0.1 — a real nats-server, ticketsvc and one gateway — driven by
# `ocvr-loadgen soak`: SOAK_CONNS clients churn (ticket, connect, subscribe,
# receive, disconnect) for SOAK_DURATION while events are published steadily.
# It prints progress, a result table and exits non-zero when the soak finds
# an unexpected error or the gateway's memory or goroutines do not return to
# their baseline within the documented margins.
#
#   scripts/soak.sh                         10 minutes, 2,000 clients
#   SOAK_DURATION=60s scripts/soak.sh       CI's version (scripts/ci/extra-soak.sh)
#   SOAK_ARGS="--rate 200" scripts/soak.sh  any other ocvr-loadgen soak flag
#
# Env knobs: SOAK_DURATION (10m), SOAK_CONNS (2000), SOAK_ARGS, OUT
# (bench-results: soak.json, the processes' logs and the gateway's idle heap
# profile soak-heap-idle.pprof), SOAK_PORT_BASE (24000).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
bin=$root/bin
out=${OUT:-$root/bench-results}
duration=${SOAK_DURATION:-10m}
conns=${SOAK_CONNS:-2000}
base=${SOAK_PORT_BASE:-24000}
mkdir -p "$out"

STACK_KEEP_LOGS=$out
. scripts/lib/stack.sh

nats_port=$((base + 222))
nats_mon=$((base + 223))
tsvc=127.0.0.1:$((base + 80))
tsvc_admin=127.0.0.1:$((base + 90))
gw=127.0.0.1:$((base + 81))
gw_admin=127.0.0.1:$((base + 91))

"$bin/nats-server" -js -sd "$tmp/nats" -a 127.0.0.1 -p $nats_port -m $nats_mon >"$tmp/soak-nats.log" 2>&1 &
pids+=($!)
wait_ready http://127.0.0.1:$nats_mon/healthz
"$bin/ticketsvc" --listen $tsvc --admin-listen $tsvc_admin --nats-url nats://127.0.0.1:$nats_port \
	--rate-limit 1000000 --log-level warn >"$tmp/soak-ticketsvc.log" 2>&1 &
pids+=($!)
"$bin/gateway" --listen $gw --admin-listen $gw_admin --nats-url nats://127.0.0.1:$nats_port \
	--pod-name soak --log-level warn --pprof --readiness-delay 0s --drain-window 1s --max-preauth-per-source 0 >"$tmp/soak-gateway.log" 2>&1 &
gw_pid=$!
pids+=($gw_pid)
wait_ready http://$tsvc_admin/readyz
wait_ready http://$gw_admin/readyz

echo "# soak: $conns clients for $duration on $(nproc) CPUs ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)), $(uname -r)"
rc=0
# shellcheck disable=SC2086
"$bin/ocvr-loadgen" soak --nats-url nats://127.0.0.1:$nats_port --ticket-url http://$tsvc \
	--ws-url ws://$gw/v1/ws --admin-url http://$gw_admin --pids "$gw_pid" \
	--conns "$conns" --duration "$duration" --json "$out/soak.json" ${SOAK_ARGS:-} || rc=$?
# The gateway's heap once idle again, for `go tool pprof` when a bound is hit.
curl -fs "http://$gw_admin/debug/pprof/heap?gc=1" -o "$out/soak-heap-idle.pprof" || true
if ! kill -0 "$gw_pid" 2>/dev/null; then
	echo "soak: the gateway died" >&2
	rc=1
fi
if grep -q '"level":"ERROR"' "$tmp/soak-gateway.log"; then
	echo "soak: the gateway logged errors:" >&2
	grep '"level":"ERROR"' "$tmp/soak-gateway.log" | head -5 >&2
	rc=1
fi
exit $rc
