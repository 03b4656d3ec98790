#!/usr/bin/env bash
# Artillery's figures beside ocvr-loadgen's on the same stack (BENCHMARKS.md,
# "Artillery beside ocvr-loadgen"): the stack `make run` starts, pinned to
# CPU 0; each tool pinned to CPU 1; the same load, back to back, REPS times
# with the order alternating. Run it on an otherwise idle machine (under
# flock /tmp/ocvr-bench.lock where others share it). About 10 minutes.
#
#   deploy/artillery/compare.sh [OUT]     (default test-artifacts/artillery-compare)
#
# Delivery latency: SUBS (500) subscribers of one channel, RATES (20,80)
# events/s for STEP (20) s each: ocvr-loadgen fanout, and subscribe-receive
# with ocvr-loadgen cluster --role publish beside it. Connect latency: CONNS
# (1000) connects, ocvr-loadgen storm with 2 in flight, connect-storm at 50/s.
set -euo pipefail
cd "$(dirname "$0")/../.."
root=$(pwd)
out=${1:-$root/test-artifacts/artillery-compare}
subs=${SUBS:-500} rates=${RATES:-20,80} step=${STEP:-20} conns=${CONNS:-1000} reps=${REPS:-2}
mkdir -p "$out"
artillery=$(scripts/artillery.sh)
export NODE_PATH=$(dirname "$(dirname "$artillery")") ARTILLERY_DISABLE_TELEMETRY=true
make build >/dev/null
NATS_PORT=24222 TSVC=127.0.0.1:28080 TSVC_ADMIN=127.0.0.1:29080 GW_PORT=28081 GW_ADMIN=127.0.0.1:29081
data=$(mktemp -d)
stack_pid=
cleanup() {
	[ -z "$stack_pid" ] || { kill "$stack_pid" 2>/dev/null || true; wait "$stack_pid" 2>/dev/null || true; }
	rm -rf "$data"
}
trap cleanup EXIT
ulimit -n "$(ulimit -Hn)"
taskset -c 0 bin/ocvr-devstack --bin bin --data "$data" --nats-port $NATS_PORT \
	--ticketsvc-addr $TSVC --ticketsvc-admin $TSVC_ADMIN \
	--gateway-port $GW_PORT --gateway-admin-port ${GW_ADMIN##*:} --gateways 1 --demo-addr "" \
	>"$out/stack.log" 2>&1 &
stack_pid=$!
for _ in $(seq 1 300); do
	curl -fsS -o /dev/null "http://$GW_ADMIN/readyz" 2>/dev/null && curl -fsS -o /dev/null "http://$TSVC_ADMIN/readyz" 2>/dev/null && break
	sleep 0.2
done
export OCVR_NATS_URL=nats://127.0.0.1:$NATS_PORT
export OCVR_SESSIONS=$out/sessions.txt OCVR_TICKET_URL=http://$TSVC OCVR_WS_URL=ws://127.0.0.1:$GW_PORT/v1/ws
export OCVR_CHANNEL=bench_cluster_0
OCVRCTL=bin/ocvrctl USER_BASE=4000000 deploy/artillery/seed.sh "$OCVR_SESSIONS" "$subs" $OCVR_CHANNEL
lg=(taskset -c 1 bin/ocvr-loadgen)
lgflags=(--nats-url "$OCVR_NATS_URL" --ticket-url "$OCVR_TICKET_URL" --ws-url "$OCVR_WS_URL" --admin-url "http://$GW_ADMIN")
conns_now() { curl -fsS "http://$GW_ADMIN/metrics" | awk '$1 == "ocvr_gateway_connections" { print $2 }'; }
wait_conns() { # n: until the gateway holds n sockets (60 s at most)
	for _ in $(seq 1 600); do [ "$(conns_now)" = "$1" ] && return 0; sleep 0.1; done
	echo "gateway holds $(conns_now) sockets, not $1" >&2
	return 1
}
summary() { # artillery report, metric: p50 p99 count
	node -e 'const a = require(process.argv[1]).aggregate; const s = a.summaries[process.argv[2]] || {};
		console.log([s.median ?? s.p50, s.p99, s.count].map((v) => v === undefined ? "-" : (+v).toFixed(1)).join(" "))' "$1" "$2"
}

loadgen_fanout() { # rep, rate
	"${lg[@]}" fanout "${lgflags[@]}" --user-base $((5000000 + $1 * 100000 + $2 * 1000)) --subs "$subs" --rates "$2" --step "${step}s" --quiet 10s --json "$out/fanout-$1-$2.json" >"$out/fanout-$1-$2.txt" 2>&1
	node -e 'const r = require(process.argv[1]); const c = r.columns; const row = r.rows[0];
		console.log(`loadgen   fanout rate ${row[0]}: p50 ${row[c.indexOf("p50 ms")].toFixed(1)} ms, p99 ${row[c.indexOf("p99 ms")].toFixed(1)} ms, delivered/expected ${row[c.indexOf("delivered/expected")]}`)' "$out/fanout-$1-$2.json"
	wait_conns 0
}
artillery_receive() { # rep, rate
	local hold=$((step + 25))
	OCVR_HOLD_S=$hold taskset -c 1 "$artillery" run --overrides "{\"config\":{\"phases\":[{\"duration\":10,\"arrivalCount\":$subs}]}}" \
		--output "$out/receive-$1-$2.json" deploy/artillery/subscribe-receive.yml >"$out/receive-$1-$2.log" 2>&1 &
	local art=$!
	wait_conns "$subs"
	sleep 3
	"${lg[@]}" cluster --role publish --nats-url "$OCVR_NATS_URL" --channels 1 --rate "$2" --max-duration "${step}s" --out "$out/publisher-$1-$2.json" >"$out/publisher-$1-$2.log" 2>&1
	wait $art || { tail -30 "$out/receive-$1-$2.log"; return 1; }
	read -r p50 p99 n < <(summary "$out/receive-$1-$2.json" ocvr.delivery_ms)
	local published
	published=$(node -e 'console.log(require(process.argv[1]).published)' "$out/publisher-$1-$2.json")
	echo "artillery receive rate $2: p50 $p50 ms, p99 $p99 ms, delivered/expected $(node -e "console.log(($n / ($published * $subs)).toFixed(3))")"
	wait_conns 0
}
loadgen_storm() { # rep
	"${lg[@]}" storm "${lgflags[@]}" --user-base $((6000000 + $1 * 100000)) --conns "$conns" --inflight 2 --json "$out/storm-$1.json" >"$out/storm-$1.txt" 2>&1
	node -e 'const r = require(process.argv[1]); const c = r.columns; const row = r.rows[0];
		console.log(`loadgen   storm: ${row[c.indexOf("connects/s")].toFixed(0)} connects/s, p50 ${row[c.indexOf("p50 ms")].toFixed(1)} ms, p99 ${row[c.indexOf("p99 ms")].toFixed(1)} ms`)' "$out/storm-$1.json"
	wait_conns 0
}
artillery_storm() { # rep
	taskset -c 1 "$artillery" run --overrides "{\"config\":{\"phases\":[{\"duration\":$((conns / 50)),\"arrivalRate\":50}]}}" \
		--output "$out/astorm-$1.json" deploy/artillery/connect-storm.yml >"$out/astorm-$1.log" 2>&1 || { tail -30 "$out/astorm-$1.log"; return 1; }
	read -r p50 p99 n < <(summary "$out/astorm-$1.json" ocvr.connect_ms)
	echo "artillery storm (50/s): p50 $p50 ms, p99 $p99 ms, $n connects"
	wait_conns 0
}

for rep in $(seq 1 "$reps"); do
	for rate in ${rates//,/ }; do
		if [ $((rep % 2)) = 1 ]; then loadgen_fanout "$rep" "$rate"; artillery_receive "$rep" "$rate"; else artillery_receive "$rep" "$rate"; loadgen_fanout "$rep" "$rate"; fi
	done
	if [ $((rep % 2)) = 1 ]; then loadgen_storm "$rep"; artillery_storm "$rep"; else artillery_storm "$rep"; loadgen_storm "$rep"; fi
done 2>&1 | tee "$out/summary.txt"
