#!/usr/bin/env bash
# CI: coverage-guided fuzzing of every hardening target for a bounded time
# each (HARDENING.md). `make test` already ran their seed corpora.
set -euo pipefail
cd "$(dirname "$0")/../.."
FUZZTIME=${FUZZTIME:-20s} scripts/fuzz.sh
