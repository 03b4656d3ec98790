#!/usr/bin/env bash
# Installs Debian's `prometheus` package: /usr/bin/prometheus and
# /usr/bin/promtool, used by the observability tests (pkg/clustertest:
# a real Prometheus scraping the cluster; promtool check/test rules).
# Idempotent: does nothing when both binaries are present; runs
# `apt-get update` only when the package cannot be installed without it.
# The package's own service is not started (none runs in CI containers; on a
# systemd host the unit is left as Debian configures it).
set -euo pipefail

if [ -x /usr/bin/prometheus ] && [ -x /usr/bin/promtool ]; then
	echo "prometheus: $(/usr/bin/prometheus --version 2>&1 | head -n1)"
	exit 0
fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
	SUDO="sudo"
fi
export DEBIAN_FRONTEND=noninteractive
# Prevent maintainer scripts from starting the packaged service.
policy=/usr/sbin/policy-rc.d
created_policy=""
if [ ! -e "$policy" ]; then
	printf '#!/bin/sh\nexit 101\n' | $SUDO tee "$policy" >/dev/null
	$SUDO chmod +x "$policy"
	created_policy=1
fi
cleanup() { if [ -n "$created_policy" ]; then $SUDO rm -f "$policy"; fi; }
trap cleanup EXIT

install() { $SUDO apt-get install -y --no-install-recommends prometheus; }
if ! apt-cache show prometheus >/dev/null 2>&1 || ! install; then
	$SUDO apt-get update
	install
fi
/usr/bin/prometheus --version 2>&1 | head -n1
/usr/bin/promtool --version 2>&1 | head -n1
