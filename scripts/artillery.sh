#!/usr/bin/env bash
# Artillery (npm, MPL-2.0) installed once from the npm registry and cached
# OUTSIDE the clone, beside scripts/tools.sh's tools, so a fresh clone (CI) on
# the same machine reuses it. Not k6: go.k6.io/k6 is AGPL and this project's
# package rules say not to use it (deploy/artillery/README.md).
#
#   scripts/artillery.sh          install once, print the path of the artillery binary
#   scripts/artillery.sh cached   print it if installed, else fail (no install)
#
# Cache: ${OCVR_TOOLS_CACHE:-$HOME/.cache/ocvr-tools}/artillery-VERSION.
# Install logs go to stderr; stdout carries only the answer.
set -euo pipefail

ARTILLERY_VERSION=2.0.21
CACHE=${OCVR_TOOLS_CACHE:-$HOME/.cache/ocvr-tools}
dir="$CACHE/artillery-$ARTILLERY_VERSION"
bin="$dir/node_modules/.bin/artillery"

log() { echo "artillery.sh: $*" >&2; }

if [ "${1:-}" = cached ]; then
	[ -x "$bin" ] && echo "$bin"
	exit
fi
if [ ! -x "$bin" ]; then
	mkdir -p "$CACHE"
	exec {lockfd}>"$CACHE/.artillery.lock"
	flock "$lockfd"
	if [ ! -x "$bin" ]; then
		log "installing artillery@$ARTILLERY_VERSION from the npm registry (once: ≈1-2 min) into $dir"
		start=$SECONDS
		tmp=$(mktemp -d "$CACHE/artillery-install.XXXXXX")
		trap 'rm -rf "$tmp"' EXIT
		# No browser download for the Playwright engine (unused here).
		(cd "$tmp" && echo '{"private":true}' >package.json &&
			PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm install --no-audit --no-fund --loglevel=error \
				"artillery@$ARTILLERY_VERSION" >&2)
		rm -rf "$dir"
		mv "$tmp" "$dir"
		trap - EXIT
		log "artillery installed in $((SECONDS - start)) s"
	fi
fi
echo "$bin"
