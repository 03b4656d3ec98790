#!/usr/bin/env bash
# Tests of the TypeScript client (pkg/js), run by `make test` (target test-js):
#   1. the Go binaries the tests start (make build: gateway, ticketsvc,
#      ocvrctl, ocvr-devstack),
#   2. npm ci when pkg/js/node_modules is missing (devDependencies only,
#      pinned by package-lock.json),
#   3. the build (tsc → pkg/js/dist ESM and dist/cjs CommonJS, esbuild → the
#      minified bundle and dist/size.json; committed so `make run` serves the
#      demo page with Go alone; CI fails when it is stale),
#   4. the type tests of the published declarations,
#   5. the package test (require/import, the minified bundle, the size in the
#      README) and the client tests against a real NATS + ticketsvc + two
#      gateways,
#   6. the browser tests: the demo page, the React demo in StrictMode, and
#      permessage-deflate negotiated by Chromium with a compressing gateway, in
#      headless Debian Chromium (/usr/bin/chromium, via playwright-core),
#      screenshots in test-artifacts/e2e/.
# scripts/ci/install-js.sh installs Node.js, Chromium and the npm modules.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="/usr/local/go/bin:$HOME/go/bin:$PATH"
export PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1

if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
	echo "test-js: node and npm are needed: run scripts/ci/install-js.sh" >&2
	exit 1
fi
chromium="${OCVR_CHROMIUM:-/usr/bin/chromium}"
if [ ! -x "$chromium" ]; then
	echo "test-js: $chromium is missing: run scripts/ci/install-js.sh (Debian's chromium)" >&2
	exit 1
fi

echo "== test-js: go binaries (at ${SECONDS}s)"
make --no-print-directory build

cd pkg/js
# npm ci when node_modules is missing, older than the lockfile, or lacks a
# devDependency added since (a checkout does not keep mtimes).
if [ ! -f node_modules/.package-lock.json ] || [ package-lock.json -nt node_modules/.package-lock.json ] ||
	[ ! -d node_modules/esbuild ] || [ ! -d node_modules/react-dom ]; then
	echo "== test-js: npm ci"
	npm ci --no-audit --no-fund --loglevel=error
fi

echo "== test-js: build (at ${SECONDS}s)"
npm run --silent build
if [ "${CI:-}" = "true" ] && git rev-parse --is-inside-work-tree >/dev/null 2>&1; then
	if [ -n "$(git status --porcelain -- dist)" ]; then
		echo "test-js: pkg/js/dist is stale: run 'npm run build' in pkg/js and commit dist/" >&2
		git status --short -- dist >&2
		exit 1
	fi
fi

echo "== test-js: type tests (at ${SECONDS}s)"
npm run --silent typecheck

echo "== test-js: client tests (real NATS, ticketsvc, gateways) (at ${SECONDS}s)"
node --test --test-timeout=60000 test/package.test.mjs test/client.test.mjs

echo "== test-js: browser test (headless chromium) (at ${SECONDS}s)"
node --test --test-timeout=90000 e2e/browser.test.mjs e2e/react.test.mjs e2e/compression.test.mjs
echo "== test-js: done in ${SECONDS}s"
