#!/usr/bin/env bash
# The benchmark campaign behind BENCHMARKS.md: each workload at its target
# size three times (take the median) and at two more sizes (the slope),
# plus the plain-TCP floor. Every run starts a fresh stack (scripts/bench.sh).
# About 25 minutes on the 2-core machine; run it on an otherwise idle one.
#
#   scripts/bench-report.sh            (make bench-report)
#   OUT=dir scripts/bench-report.sh
#   RUNS=1 scripts/bench-report.sh     (one run where the report takes three: ~16 min)
#
# Then it draws the tables as SVG charts into $OUT/charts (ocvr-benchplot:
# latency vs rate per subscriber count beside the plain-TCP floor, RSS per
# connection vs connections, connects/s vs clients).
set -euo pipefail
cd "$(dirname "$0")/.."
out=${OUT:-bench-results/report-$(date -u +%Y%m%dT%H%M%SZ)}
mkdir -p "$out"
log=$out/report.md
runs=${RUNS:-3}
run() { # title, then env assignments, then workload
	local title=$1
	shift
	echo | tee -a "$log"
	echo "### $title" | tee -a "$log"
	env "$@" 2>&1 | tee -a "$log"
}
echo "# bench-report $(date -u +%FT%TZ), $(git rev-parse --short HEAD 2>/dev/null || echo '?')" | tee "$log"

run "floor: plain TCP fan-out, 5,000 sockets ($runs runs)" OUT="$out/floor" RUNS=$runs FLOOR_RATES=10,40,120 scripts/bench.sh floor
run "fanout: 5,000 subscribers ($runs runs)" OUT="$out/fanout-5000" RUNS=$runs FANOUT_SUBS=5000 FANOUT_RATES=10,40,80,120,160 FANOUT_ARGS="--step 10s" scripts/bench.sh fanout
for s in 1000 2500; do
	run "fanout: $s subscribers" OUT="$out/fanout-$s" FANOUT_SUBS=$s FANOUT_RATES=10,40,120,200 FANOUT_ARGS="--step 10s" scripts/bench.sh fanout
done
run "idle: 19,500 connections, 100 channels ($runs runs)" OUT="$out/idle-19500" RUNS=$runs IDLE_CONNS=19500 IDLE_CHANNELS=100 scripts/bench.sh idle
for n in 5000 10000; do
	run "idle: $n connections, 100 channels" OUT="$out/idle-$n" IDLE_CONNS=$n IDLE_CHANNELS=100 scripts/bench.sh idle
done
for c in 10 1000; do
	run "idle: 19,500 connections, $c channels" OUT="$out/idle-ch$c" IDLE_CONNS=19500 IDLE_CHANNELS=$c scripts/bench.sh idle
done
run "storm: 5,000 clients, 200 in flight ($runs runs)" OUT="$out/storm-5000" RUNS=$runs STORM_CONNS=5000 scripts/bench.sh storm
for n in 2000 10000; do
	run "storm: $n clients, 200 in flight" OUT="$out/storm-$n" STORM_CONNS=$n scripts/bench.sh storm
done
for w in 50 100 200; do
	run "churn: $w workers, 20 s" OUT="$out/churn-$w" CHURN_WORKERS=$w CHURN_DURATION=20s scripts/bench.sh churn
done
echo
go run ./pkg/cmd/ocvr-benchplot --in "$out" --out "$out/charts" | tee -a "$log"
echo "wrote $log"
