# Sourced by scripts/bench.sh: Centrifugo, the connect storm's yardstick, run
# on this machine in the same pinned run as the OCVR storm (the issue's
# target is a ratio: connects/s ≥ 1.0× Centrifugo's).
#
# Expects: root, out, tmp and pids (scripts/lib/stack.sh), server_cpu, and
# for centrifugo_storms bench.sh's start_stack, stop_stack and loadgen.
# CENTRIFUGO_BIN=file runs that binary instead of the one built here.

centrifugo_version=6.9.1
centrifugo_bin=${CENTRIFUGO_BIN:-$root/.cache/bin/centrifugo}
centrifugo_port=18600

# centrifugo_build: v6.9.1 from the Go module proxy into .cache/bin, once.
# The version is stamped as its release builds do (else `centrifugo
# version` says v0.0.0); the module version is checked from the binary's
# build information, which is what proves what was built.
centrifugo_build() {
	if [ -z "${CENTRIFUGO_BIN:-}" ] && ! centrifugo_is_wanted_version; then
		echo "# building Centrifugo v$centrifugo_version from the Go module proxy into ${centrifugo_bin%/*} (once)" >&2
		GOBIN=${centrifugo_bin%/*} GOFLAGS=-mod=mod GOWORK=off go install \
			-ldflags "-X github.com/centrifugal/centrifugo/v6/internal/build.Version=$centrifugo_version" \
			"github.com/centrifugal/centrifugo/v6@v$centrifugo_version"
	fi
	centrifugo_is_wanted_version || {
		echo "$centrifugo_bin is not Centrifugo v$centrifugo_version" >&2
		return 1
	}
}

centrifugo_is_wanted_version() {
	[ -x "$centrifugo_bin" ] &&
		go version -m "$centrifugo_bin" 2>/dev/null | grep -qE "^[[:space:]]+mod[[:space:]]+github\.com/centrifugal/centrifugo/v6[[:space:]]+v$centrifugo_version[[:space:]]" &&
		"$centrifugo_bin" version 2>/dev/null | grep -q "v$centrifugo_version "
}

# centrifugo_prepare workload…: build it if one of them needs it.
centrifugo_prepare() {
	case " $* " in
	*" storm-centrifugo "* | *" storm-pair "*)
		centrifugo_build
		echo "# centrifugo: $("$centrifugo_bin" version) (memory engine, HS256 JWT), pinned to CPU $server_cpu"
		;;
	esac
}

# centrifugo_start: a fresh server pinned where the OCVR stack runs, with a
# fresh HMAC secret (centrifugo_secret, for the loadgen's tokens). The config
# is the least that serves authenticated clients — the memory engine, no
# admin UI, no HTTP API key needed, insecure mode off (every connect's JWT
# is verified), no channels (the storm subscribes to none, like OCVR's) —
# and log level warn, as the gateway's.
centrifugo_start() {
	local i
	for i in $(seq 1 300); do
		ss -Htln 2>/dev/null | grep -q "127\.0\.0\.1:$centrifugo_port\b" || break
		[ "$i" -lt 300 ] || { echo "port $centrifugo_port still in use" >&2; return 1; }
		sleep 0.1
	done
	centrifugo_secret=$(head -c 32 /dev/urandom | base64 | tr -d '\n/+=')
	cat >"$tmp/centrifugo.json" <<EOF
{
  "http_server": {"address": "127.0.0.1", "port": $centrifugo_port},
  "engine": {"type": "memory"},
  "client": {
    "insecure": false,
    "token": {"hmac_secret_key": "$centrifugo_secret"},
    "allowed_origins": ["http://127.0.0.1", "http://localhost"]
  },
  "admin": {"enabled": false},
  "health": {"enabled": true},
  "usage_stats": {"disabled": true},
  "log": {"level": "warn"}
}
EOF
	env ${SERVER_ENV:-} taskset -c $server_cpu "$centrifugo_bin" --config "$tmp/centrifugo.json" >"$out/centrifugo.log" 2>&1 &
	cf_pid=$!
	pids+=($cf_pid)
	wait_ready "http://127.0.0.1:$centrifugo_port/health"
}

centrifugo_stop() {
	kill "$cf_pid" 2>/dev/null || true
	wait "$cf_pid" 2>/dev/null || true
	pids=()
}

# centrifugo_storms workload run: storm-centrifugo is the storm against
# Centrifugo alone; storm-pair is the OCVR storm and Centrifugo's back to
# back, then their ratio. The pair alternates which side goes first from
# run to run, so that neither always meets the warmer (or busier) machine.
centrifugo_storms() {
	local w=$1 r=$2 sides=(ocvr centrifugo) side
	[ "$w" = storm-centrifugo ] && sides=(centrifugo)
	[ "$w" = storm-pair ] && [ $((r % 2)) -eq 0 ] && sides=(centrifugo ocvr)
	for side in "${sides[@]}"; do
		echo
		if [ "$side" = ocvr ]; then
			start_stack
			echo "## storm (run $r of $runs)"
			loadgen storm --conns "${STORM_CONNS:-5000}" --inflight "${STORM_INFLIGHT:-200}" --pids "$gw_pid,$nats_pid,$tsvc_pid" --json "$out/storm-$r.json"
			stop_stack
		else
			centrifugo_start
			echo "## storm-centrifugo (run $r of $runs)"
			loadgen storm --target centrifugo --centrifugo-url "ws://127.0.0.1:$centrifugo_port/connection/websocket" --jwt-secret "$centrifugo_secret" \
				--conns "${STORM_CONNS:-5000}" --inflight "${STORM_INFLIGHT:-200}" --pids "$cf_pid" --json "$out/storm-centrifugo-$r.json"
			centrifugo_stop
		fi
	done
	if [ "$w" = storm-pair ]; then
		echo
		echo "## storm-pair: OCVR/Centrifugo (run $r of $runs)"
		"$bin/ocvr-loadgen" ratio --ocvr "$out/storm-$r.json" --centrifugo "$out/storm-centrifugo-$r.json" --json "$out/storm-pair-$r.json"
	fi
}
