#!/usr/bin/env bash
# The benchmark campaign behind BENCHMARKS.md: each workload at its target
# size three times (take the median) and at two more sizes (the slope),
# plus the plain-TCP floor. Every run starts a fresh stack (scripts/bench.sh).
# About 25 minutes on the 2-core machine; run it on an otherwise idle one.
#
#   scripts/bench-report.sh            (make bench-report)
#   OUT=dir scripts/bench-report.sh
set -euo pipefail
cd "$(dirname "$0")/.."
out=${OUT:-bench-results/report-$(date -u +%Y%m%dT%H%M%SZ)}
mkdir -p "$out"
log=$out/report.md
run() { # title, then env assignments, then workload
	local title=$1
	shift
	echo | tee -a "$log"
	echo "### $title" | tee -a "$log"
	env "$@" 2>&1 | tee -a "$log"
}
echo "# bench-report $(date -u +%FT%TZ), $(git rev-parse --short HEAD 2>/dev/null || echo '?')" | tee "$log"

run "floor: plain TCP fan-out, 5,000 sockets (3 runs)" OUT="$out/floor" RUNS=3 FLOOR_RATES=10,40,120 scripts/bench.sh floor
run "fanout: 5,000 subscribers (3 runs)" OUT="$out/fanout-5000" RUNS=3 FANOUT_SUBS=5000 FANOUT_RATES=10,40,80,120,160 FANOUT_ARGS="--step 10s" scripts/bench.sh fanout
for s in 1000 2500; do
	run "fanout: $s subscribers" OUT="$out/fanout-$s" FANOUT_SUBS=$s FANOUT_RATES=10,40,120,200 FANOUT_ARGS="--step 10s" scripts/bench.sh fanout
done
run "idle: 19,500 connections, 100 channels (3 runs)" OUT="$out/idle-19500" RUNS=3 IDLE_CONNS=19500 IDLE_CHANNELS=100 scripts/bench.sh idle
for n in 5000 10000; do
	run "idle: $n connections, 100 channels" OUT="$out/idle-$n" IDLE_CONNS=$n IDLE_CHANNELS=100 scripts/bench.sh idle
done
for c in 10 1000; do
	run "idle: 19,500 connections, $c channels" OUT="$out/idle-ch$c" IDLE_CONNS=19500 IDLE_CHANNELS=$c scripts/bench.sh idle
done
run "storm: 5,000 clients, 200 in flight (3 runs)" OUT="$out/storm-5000" RUNS=3 STORM_CONNS=5000 scripts/bench.sh storm
for n in 2000 10000; do
	run "storm: $n clients, 200 in flight" OUT="$out/storm-$n" STORM_CONNS=$n scripts/bench.sh storm
done
for w in 50 100 200; do
	run "churn: $w workers, 20 s" OUT="$out/churn-$w" CHURN_WORKERS=$w CHURN_DURATION=20s scripts/bench.sh churn
done
echo
echo "wrote $log"
