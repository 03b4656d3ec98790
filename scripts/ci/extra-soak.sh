#!/usr/bin/env bash
# CI: the 60 s version of the bounded soak (HARDENING.md; `make soak` runs
# 10 minutes): 2,000 clients churning against a fresh stack, steady
# publishing; fails on any unexpected error or resource growth.
set -euo pipefail
cd "$(dirname "$0")/../.."
SOAK_DURATION=${SOAK_DURATION:-60s} SOAK_CONNS=${SOAK_CONNS:-2000} OUT=${OUT:-test-artifacts/soak} scripts/soak.sh
