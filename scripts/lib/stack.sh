# Sourced by scripts/bench.sh and scripts/soak.sh: build the binaries a
# stack of real processes needs, and the bookkeeping around running them.
#
# Expects: root (repository root), bin (output folder; STACK_BIN overrides
# it, see below). Sets: tmp (a scratch
# folder removed at exit), pids (processes killed at exit; append yours).
# STACK_KEEP_LOGS=dir copies $tmp/*.log there at exit.

# STACK_BIN=dir runs the binaries already in dir (e.g. built from a pinned
# commit while the working tree moves on) instead of building the tree.
if [ -n "${STACK_BIN:-}" ]; then
	bin=$STACK_BIN
	for b in gateway ticketsvc ocvr-loadgen nats-server; do
		[ -x "$bin/$b" ] || { echo "STACK_BIN: no $bin/$b" >&2; exit 1; }
	done
else
	go build -o "$bin/" ./gateway/cmd/gateway ./ticketsvc/cmd/ticketsvc ./pkg/cmd/ocvr-loadgen
	# The real nats-server binary, from the same module version the tests embed.
	[ -x "$bin/nats-server" ] || (cd "$root/pkg" && go build -o "$bin/nats-server" github.com/nats-io/nats-server/v2)
fi

ulimit -n "$(ulimit -Hn)"
tmp=$(mktemp -d)
pids=()
# Newest first, each one gone before the next (a gateway stops while the
# NATS it started after is still up; one that hangs is killed after 15 s).
stack_cleanup() {
	local i p
	for ((i = ${#pids[@]} - 1; i >= 0; i--)); do
		p=${pids[i]}
		kill "$p" 2>/dev/null || continue
		for _ in $(seq 1 150); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
		kill -9 "$p" 2>/dev/null || true
	done
	wait 2>/dev/null || true
	if [ -n "${STACK_KEEP_LOGS:-}" ]; then cp "$tmp"/*.log "$STACK_KEEP_LOGS/" 2>/dev/null || true; fi
	rm -rf "$tmp"
}
trap stack_cleanup EXIT

wait_ready() { # url: wait up to 60 s for it to answer 2xx
	for _ in $(seq 1 600); do
		curl -fs "$1" >/dev/null 2>&1 && return 0
		sleep 0.1
	done
	echo "not ready: $1" >&2
	return 1
}
