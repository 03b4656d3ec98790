#!/usr/bin/env bash
# CI: memory per connection and per subscription (HARDENING.md): 5,000
# connections × 50 subscriptions against documented bounds. It runs without
# the race detector, so not inside `make test`'s -race run.
set -euo pipefail
cd "$(dirname "$0")/../.."
make test-bounds
