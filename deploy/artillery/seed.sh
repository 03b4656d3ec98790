#!/usr/bin/env bash
# Sessions, a channel and memberships for the Artillery scenarios, made with
# ocvrctl (what a backend does through the SDK): N users (ids from
# USER_BASE), each with a session and a member of CHANNEL. Writes the
# session tokens, one per line, to the file named (mode 0600: they are
# bearer credentials; delete it after the run).
#
#   deploy/artillery/seed.sh TOKENS_FILE [N] [CHANNEL]
#
# ocvrctl reaches NATS as its global flags or OCVR_* variables say
# (OCVR_NATS_URL, credentials); OCVRCTL names the binary (default: ocvrctl
# on PATH, else bin/ocvrctl of this checkout).
set -euo pipefail
out=${1:?usage: seed.sh TOKENS_FILE [N] [CHANNEL]}
n=${2:-200}
channel=${3:-bench_cluster_0}
base=${USER_BASE:-3000000}
ctl=${OCVRCTL:-$(command -v ocvrctl || echo "$(dirname "$0")/../../bin/ocvrctl")}
umask 077
: >"$out"
"$ctl" channel create --channel "$channel" >/dev/null
# In parallel batches: one ocvrctl process per call.
seed_one() {
	local u=$1
	"$ctl" member add --channel "$channel" --user "$u" >/dev/null
	"$ctl" session create --user "$u" --name "artillery $u" --ttl 24h | head -n1
}
export -f seed_one
export ctl channel
seq "$base" $((base + n - 1)) | xargs -P 8 -I{} bash -c 'seed_one {}' >>"$out"
got=$(grep -c '^sess_' "$out" || true)
[ "$got" -eq "$n" ] || { echo "seed.sh: $got of $n sessions made" >&2; exit 1; }
echo "seed.sh: $n sessions in $out, members of $channel" >&2
