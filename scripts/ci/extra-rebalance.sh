#!/usr/bin/env bash
# CI (.ci/run, after make test): active rebalancing with real processes
# (gateway/README.md "Active rebalancing"). nats-server, ticketsvc and one
# gateway start; 3,000 SDK-like clients (ocvr-loadgen rebalance) all connect
# to it; then two more gateways start. Within the settle timeout every
# gateway must hold 1,000 ± 15%, and stay there for the hold; every client
# the first gateway shed (1012 "rebalancing") must be back, resumed, with no
# event lost, duplicated or out of order (events are published through the
# stream all along), the gateways that joined empty must not shed, and
# presence must show exactly one online and no offline transition per user
# (no flap). The window is short here (--rebalance-window 15s, fleet
# interval 1 s) so that it runs in about a minute; production defaults are
# 60 s and 2 s.
#
# Knobs (env): REBALANCE_CONNS (3000), REBALANCE_WINDOW (15 s),
# REBALANCE_MAX_RATE (500 sockets/s per pod), OUT (test-artifacts/rebalance:
# the loadgen's JSON and, on failure, the processes' logs).
set -euo pipefail
cd "$(dirname "$0")/../.."
export PATH="/usr/local/go/bin:$HOME/go/bin:$PATH"
root=$(pwd)
bin=$root/bin
start=$SECONDS
conns=${REBALANCE_CONNS:-3000}
window=${REBALANCE_WINDOW:-15}
max_rate=${REBALANCE_MAX_RATE:-500}
out=${OUT:-$root/test-artifacts/rebalance}
mkdir -p "$out"
export STACK_KEEP_LOGS=$out # the processes' logs are copied there at exit
log() { echo "extra-rebalance: $*"; }

. scripts/lib/stack.sh # builds gateway, ticketsvc, ocvr-loadgen, nats-server; tmp, pids, cleanup

# Ports of its own, below the kernel's ephemeral range (where other tests'
# random ports land): the bench stacks use 24222, 28xxx, 29xxx and 8xxx.
nats_port=25222
nats_monitor=25223
tsvc=127.0.0.1:25080
tsvc_admin=127.0.0.1:25090
gw_ports=(25081 25082 25083)
gw_admins=(25091 25092 25093)
re='127\.0\.0\.1:(2522[23]|2508[0-3]|2509[0-3])\b'
for _ in $(seq 1 300); do
	ss -Htln 2>/dev/null | grep -qE "$re" || break
	sleep 0.1
done
if ss -Htln 2>/dev/null | grep -qE "$re"; then
	log "ports in use:"
	ss -Htlnp | grep -E "$re" >&2
	exit 1
fi

"$bin/nats-server" -js -sd "$tmp/nats" -a 127.0.0.1 -p $nats_port -m $nats_monitor >"$tmp/nats.log" 2>&1 &
pids+=($!)
wait_ready http://127.0.0.1:$nats_monitor/healthz
"$bin/ticketsvc" --listen $tsvc --admin-listen $tsvc_admin --nats-url nats://127.0.0.1:$nats_port --log-level warn >"$tmp/ticketsvc.log" 2>&1 &
pids+=($!)

start_gateway() { # index (0-based)
	local i=$1
	"$bin/gateway" --listen "127.0.0.1:${gw_ports[i]}" --admin-listen "127.0.0.1:${gw_admins[i]}" \
		--nats-url nats://127.0.0.1:$nats_port --pod-name "gw$((i + 1))" --log-level warn \
		--readiness-delay 0s --drain-window 1s --no-pod-deletion-cost \
		--fleet-interval 1s --rebalance-window "${window}s" --rebalance-max-rate "$max_rate" >"$tmp/gw$((i + 1)).log" 2>&1 &
	pids+=($!)
}
start_gateway 0
wait_ready "http://$tsvc_admin/readyz"
wait_ready "http://127.0.0.1:${gw_admins[0]}/readyz"

ws=() adm=()
for i in 0 1 2; do
	ws+=("ws://127.0.0.1:${gw_ports[i]}/v1/ws")
	adm+=("http://127.0.0.1:${gw_admins[i]}")
done
status=$tmp/status
"$bin/ocvr-loadgen" rebalance --nats-url nats://127.0.0.1:$nats_port --ticket-url "http://$tsvc" \
	--conns "$conns" --gateways "$(IFS=,; echo "${ws[*]}")" --admins "$(IFS=,; echo "${adm[*]}")" \
	--settle-timeout "$((window * 4 + 20))s" --hold 10s --status-file "$status" --out "$out/rebalance.json" \
	>"$tmp/loadgen.out" 2>"$tmp/loadgen.log" &
lg=$!
pids+=($lg)

# The others join once every client is on the first gateway.
for _ in $(seq 1 1200); do
	up=$(sed -n 's/^up=\([0-9]*\).*/\1/p' "$status" 2>/dev/null || true)
	[ "${up:-0}" -ge "$conns" ] && break
	kill -0 $lg 2>/dev/null || break
	sleep 0.1
done
if [ "${up:-0}" -lt "$conns" ]; then
	log "only ${up:-0} of $conns clients connected to gw1"
	cat "$tmp/loadgen.log" >&2 || true
	exit 1
fi
log "$conns clients on gw1 after $((SECONDS - start)) s; starting gw2 and gw3"
start_gateway 1
start_gateway 2

rc=0
wait $lg || rc=$?
cat "$tmp/loadgen.out"
if [ $rc -ne 0 ]; then
	log "FAILED (rc $rc):"
	cat "$tmp/loadgen.log" >&2
	exit 1
fi
log "passed in $((SECONDS - start)) s (JSON: $out/rebalance.json)"
