#!/usr/bin/env bash
# Installs what the JavaScript client's tests need (scripts/test-js.sh):
#   - Node.js and npm (Debian's, only if `node` is missing),
#   - Chromium from Debian (/usr/bin/chromium) for the browser test,
#   - the client's npm devDependencies, exactly as pkg/js/package-lock.json
#     pins them (npm ci; skipped when node_modules is already up to date).
# Idempotent and fast when everything is present. No tool downloads a
# browser of its own (PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1; the tests use
# playwright-core with /usr/bin/chromium).
set -euo pipefail
cd "$(dirname "$0")/../.."

need=()
command -v node >/dev/null 2>&1 || need+=(nodejs)
command -v npm >/dev/null 2>&1 || need+=(npm)
[ -x /usr/bin/chromium ] || need+=(chromium)
if [ ${#need[@]} -gt 0 ]; then
	sudo=()
	[ "$(id -u)" -eq 0 ] || sudo=(sudo)
	echo "install-js: apt-get install ${need[*]}"
	"${sudo[@]}" apt-get update -qq
	"${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" fonts-dejavu-core >/dev/null
fi
/usr/bin/chromium --version 2>/dev/null
if ! node -e 'process.exit(Number(process.versions.node.split(".")[0]) >= 20 ? 0 : 1)'; then
	echo "install-js: Node.js >= 20 is needed, found $(node --version)" >&2
	exit 1
fi

export PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1
# npm ci when node_modules is missing or older than the lockfile.
if [ ! -f pkg/js/node_modules/.package-lock.json ] || [ pkg/js/package-lock.json -nt pkg/js/node_modules/.package-lock.json ]; then
	echo "install-js: npm ci in pkg/js"
	(cd pkg/js && npm ci --no-audit --no-fund --loglevel=error)
fi
