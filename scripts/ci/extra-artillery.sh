#!/usr/bin/env bash
# CI: the Artillery scenarios of deploy/artillery/ (README.md there), short
# (-e ci), against the stack `make run` starts (ocvr-devstack, on ports of
# its own): a connect storm, subscribe + receive with a publisher beside it
# (every event published must reach every subscriber), an idle soak with
# heartbeats. Fails on any failed virtual user, unexpected close or lost
# delivery. Artillery is installed once from npm (scripts/artillery.sh,
# cached outside the clone). About 2 minutes.
set -euo pipefail
cd "$(dirname "$0")/../.."
root=$(pwd)
out=${OUT:-$root/test-artifacts/artillery}
rm -rf "$out"
mkdir -p "$out"
# Ports of its own: a `make run` of a developer may hold the default ones.
NATS_PORT=24222 TSVC=127.0.0.1:28080 TSVC_ADMIN=127.0.0.1:29080 GW_PORT=28081 GW_ADMIN=127.0.0.1:29081

# CI's time budget (scripts/lib/ci-budget.sh): ~150 s for the run, ~200 s
# more for the first install from npm.
. scripts/lib/ci-budget.sh
need=150
scripts/artillery.sh cached >/dev/null || need=350
if ! ci_budget_allows $need; then
	echo "SKIPPED: the Artillery scenarios need ~$need s, $(ci_budget_left) s left of CI's budget (make artillery runs them)"
	exit 0
fi
artillery=$(scripts/artillery.sh)
# ocvr.js takes the `ws` package from Artillery's own node_modules on Node.js 20.
export NODE_PATH=$(dirname "$(dirname "$artillery")")
export ARTILLERY_DISABLE_TELEMETRY=true
make build >/dev/null

data=$(mktemp -d)
stack_pid=
cleanup() {
	if [ -n "$stack_pid" ]; then
		kill "$stack_pid" 2>/dev/null || true
		wait "$stack_pid" 2>/dev/null || true
	fi
	rm -rf "$data"
}
trap cleanup EXIT
# What `make run` runs, with these ports and no demo page.
bin/ocvr-devstack --bin bin --data "$data" --nats-port $NATS_PORT \
	--ticketsvc-addr $TSVC --ticketsvc-admin $TSVC_ADMIN \
	--gateway-port $GW_PORT --gateway-admin-port ${GW_ADMIN##*:} --gateways 1 --demo-addr "" \
	>"$out/stack.log" 2>&1 &
stack_pid=$!
for _ in $(seq 1 300); do
	curl -fsS -o /dev/null "http://$GW_ADMIN/readyz" 2>/dev/null && curl -fsS -o /dev/null "http://$TSVC_ADMIN/readyz" 2>/dev/null && break
	kill -0 "$stack_pid" 2>/dev/null || { cat "$out/stack.log"; echo "the stack exited" >&2; exit 1; }
	sleep 0.2
done

export OCVR_NATS_URL=nats://127.0.0.1:$NATS_PORT
export OCVR_SESSIONS=$out/sessions.txt OCVR_TICKET_URL=http://$TSVC OCVR_WS_URL=ws://127.0.0.1:$GW_PORT/v1/ws
export OCVR_CHANNEL=bench_cluster_0
subs=100
OCVRCTL=bin/ocvrctl deploy/artillery/seed.sh "$OCVR_SESSIONS" $subs $OCVR_CHANNEL

# check REPORT EXPR...: each node expression over c (counters) must hold.
check() {
	local report=$1
	shift
	node -e '
		const r = require(process.argv[1]).aggregate;
		const c = new Proxy(r.counters, { get: (o, k) => o[k] ?? 0 });
		let bad = 0;
		for (const e of process.argv.slice(2)) {
			const ok = eval(e);
			console.log(`${ok ? "ok" : "FAIL"}: ${e}`);
			if (!ok) bad++;
		}
		const closed = Object.keys(r.counters).filter((k) => k.startsWith("ocvr.closed.") || k.startsWith("ocvr.errors."));
		for (const k of closed) { console.log(`FAIL: ${k} = ${r.counters[k]}`); bad++; }
		process.exit(bad ? 1 : 0);
	' "$report" "$@"
}
metric() { curl -fsS "http://$GW_ADMIN/metrics" | awk -v m="$1" '$1 == m { print $2 }'; }

echo "== connect storm (20/s for 10 s)"
"$artillery" run -e ci --output "$out/connect-storm.json" deploy/artillery/connect-storm.yml >"$out/connect-storm.log" 2>&1 ||
	{ cat "$out/connect-storm.log"; exit 1; }
check "$out/connect-storm.json" 'c["ocvr.connected"] === 200' 'c["vusers.failed"] === 0'

echo "== subscribe + receive ($subs subscribers, 20 ev/s for 8 s)"
OCVR_HOLD_S=30 "$artillery" run -e ci --output "$out/subscribe-receive.json" deploy/artillery/subscribe-receive.yml >"$out/subscribe-receive.log" 2>&1 &
art=$!
# The publisher starts once every subscriber has subscribed (the gateway
# counts a subscription once it is live).
for i in $(seq 1 600); do
	[ "$(metric ocvr_gateway_subscriptions)" = "$subs" ] && break
	[ "$i" -lt 600 ] || { cat "$out/subscribe-receive.log"; echo "the gateway holds $(metric ocvr_gateway_subscriptions) subscriptions, not $subs" >&2; exit 1; }
	sleep 0.1
done
bin/ocvr-loadgen cluster --role publish --nats-url "$OCVR_NATS_URL" --channels 1 --rate 20 --max-duration 8s --out "$out/publisher.json" >"$out/publisher.log" 2>&1
wait $art || { cat "$out/subscribe-receive.log"; exit 1; }
published=$(node -e 'const p = require(process.argv[1]); if (p.failed.length) process.exit(1); console.log(p.published)' "$out/publisher.json")
echo "published $published"
check "$out/subscribe-receive.json" 'c["ocvr.subscribed"] === '$subs "c[\"ocvr.delivered\"] === $published * $subs" 'c["vusers.failed"] === 0'

echo "== idle soak (10/s for 10 s, 12 s each, heartbeat every 3 s)"
OCVR_HOLD_S=12 OCVR_HEARTBEAT_S=3 "$artillery" run -e ci --output "$out/idle-soak.json" deploy/artillery/idle-soak.yml >"$out/idle-soak.log" 2>&1 ||
	{ cat "$out/idle-soak.log"; exit 1; }
check "$out/idle-soak.json" 'c["ocvr.connected"] === 100' 'c["ocvr.heartbeat_acks"] >= 300' 'c["vusers.failed"] === 0'
echo "artillery scenarios: ok ($SECONDS s)"
