#!/usr/bin/env bash
# Profile a running bench stack (scripts/bench.sh with --pprof on the
# gateway admin port) once deliveries are flowing: a Go CPU profile of the
# gateway and, when perf is installed and permitted, a kernel+user profile of
# the server core (where the write syscalls spend their time).
#
#   scripts/bench-profile.sh OUTDIR [seconds]
#
# Start e.g. `FANOUT_RATES=10 FANOUT_ARGS="--step 60s" scripts/bench.sh fanout`
# first; this waits until the gateway's frames_out counter moves.
set -euo pipefail
out=${1:?usage: bench-profile.sh OUTDIR [seconds]}
secs=${2:-15}
admin=${ADMIN:-http://127.0.0.1:19081}
mkdir -p "$out"
frames() { curl -fs "$admin/metrics" 2>/dev/null | awk '/^ocvr_gateway_frames_out_total/ {s+=$2} END {printf "%d\n", s}'; }
prev=$(frames || echo 0)
for _ in $(seq 1 600); do
	sleep 1
	cur=$(frames || echo 0)
	# deliveries, not the subscribe acknowledgements of the setup phase
	[ $((cur - prev)) -gt 20000 ] && break
	prev=$cur
done
sleep 2
curl -fs -o "$out/gateway.cpu.pprof" "$admin/debug/pprof/profile?seconds=$secs" &
if command -v perf >/dev/null; then
	perf record -g -C "${SERVER_CPU:-0}" -o "$out/server-core.perf" -- sleep "$secs" >/dev/null 2>&1 || echo "perf record failed (permissions?)" >&2
fi
wait
echo "wrote $out/gateway.cpu.pprof${secs:+ and $out/server-core.perf}"
