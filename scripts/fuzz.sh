#!/usr/bin/env bash
# Coverage-guided fuzzing of the hardening targets (HARDENING.md), each for
# a bounded time. `go test` (and so `make test`) always runs every target's
# seeds and its checked-in corpus, testdata/fuzz/<Fuzz…>/; this explores
# further.
#
#   scripts/fuzz.sh                      every target, FUZZTIME each (default 15s)
#   scripts/fuzz.sh FuzzTicket …         only these targets
#   FUZZTIME=2m scripts/fuzz.sh          longer
#   PROMOTE=1 scripts/fuzz.sh            afterwards, copy the inputs the fuzzer found
#                                        interesting (Go's fuzz cache) into each
#                                        target's testdata corpus, at most PROMOTE_MAX
#                                        (48) files per target
#
# A failing input is written to the target's testdata/fuzz/<Fuzz…>/ (commit
# it with the fix: it becomes a regression test) and the script exits 1.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
fuzztime=${FUZZTIME:-15s}

# module directory, package, target
targets=(
	"pkg ./protocol FuzzDecodeClientFrame"
	"pkg ./protocol FuzzValidChannelID"
	"pkg ./protocol FuzzParseUserID"
	"pkg ./protocol FuzzValidateEvent"
	"pkg ./protocol FuzzScanEnvelope"
	"pkg ./bus FuzzSubjects"
	"pkg ./ticket FuzzTicket"
	"gateway ./internal/gateway FuzzGatewayFrames"
	"gateway ./internal/deflate FuzzReader"
	"gateway ./internal/deflate FuzzRoundTrip"
)

want=("$@")
selected() {
	[ ${#want[@]} -eq 0 ] && return 0
	for w in "${want[@]}"; do [ "$w" = "$1" ] && return 0; done
	return 1
}

# The time bound of one target: fuzzing itself, plus building the
# instrumented test binary (slow on a loaded machine), plus slack.
secs() { # go duration → seconds (s, m, h)
	local d=$1
	case $d in
	*h) echo $((${d%h} * 3600)) ;;
	*m) echo $((${d%m} * 60)) ;;
	*s) echo "${d%s}" ;;
	*) echo "$d" ;;
	esac
}
bound=$(($(secs "$fuzztime") + ${FUZZ_BUILD_SLACK:-600}))

cache=$(go env GOCACHE)/fuzz/github.com/ocvr/realtime
failed=()
start=$(date +%s)
for t in "${targets[@]}"; do
	read -r mod pkg name <<<"$t"
	selected "$name" || continue
	echo "== $name ($mod/${pkg#./}) for $fuzztime"
	corpus=$root/$mod/${pkg#./}/testdata/fuzz/$name
	before=$(ls "$corpus" 2>/dev/null | sort || true)
	log=$(mktemp)
	if ! (cd "$mod" && timeout "$bound" go test -run '^$' -fuzz "^${name}\$" -fuzztime "$fuzztime" "$pkg" >"$log" 2>&1); then
		tail -n 25 "$log"
		after=$(ls "$corpus" 2>/dev/null | sort || true)
		# Go's fuzz coordinator (go1.26, golang/go#75804, fixed in go1.27)
		# can report its own -fuzztime deadline as a failure when a worker is
		# starved at the boundary. That failure writes no input; a real crash
		# or hang always writes one, so only that case is forgiven.
		if [ "$before" = "$after" ] && grep -q '^    context deadline exceeded$' "$log" &&
			[ "$(grep -c -- '--- FAIL' "$log")" = 1 ]; then
			echo "   (the fuzz coordinator's deadline race, golang/go#75804: no failing input was written; not a failure)"
		else
			failed+=("$name")
		fi
		rm -f "$log"
		continue
	fi
	tail -n 25 "$log"
	rm -f "$log"
	if [ "${PROMOTE:-0}" = 1 ]; then
		src=$cache/$mod/${pkg#./}/$name
		dst=$root/$mod/${pkg#./}/testdata/fuzz/$name
		if [ -d "$src" ]; then
			mkdir -p "$dst"
			n=0
			for f in $(ls "$src" | sort); do
				[ -e "$dst/$f" ] && continue
				[ "$n" -ge "${PROMOTE_MAX:-48}" ] && break
				cp "$src/$f" "$dst/$f"
				n=$((n + 1))
			done
			echo "   promoted $n new corpus entries to ${dst#"$root"/}"
		fi
	fi
done
echo "fuzzing took $(($(date +%s) - start)) s"
if [ ${#failed[@]} -gt 0 ]; then
	echo "FAILED: ${failed[*]} (failing inputs are under the targets' testdata/fuzz/)" >&2
	exit 1
fi
