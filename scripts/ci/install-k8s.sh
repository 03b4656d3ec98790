#!/usr/bin/env bash
# Debian packages for the API-server validation of the Helm chart
# (scripts/ci/extra-apiserver.sh): etcd for kube-apiserver, openssl for its
# certificates, kubectl (Debian's kubernetes-client) if the machine has none.
# Idempotent: installs only what is missing.
set -euo pipefail

need=()
command -v etcd >/dev/null 2>&1 || [ -x /usr/bin/etcd ] || need+=(etcd-server)
command -v openssl >/dev/null 2>&1 || need+=(openssl)
command -v flock >/dev/null 2>&1 || need+=(util-linux)
command -v kubectl >/dev/null 2>&1 || need+=(kubernetes-client)

if [ ${#need[@]} -eq 0 ]; then
	echo "install-k8s: etcd $(etcd --version 2>/dev/null | head -1 | awk '{print $3}'), openssl and kubectl present"
	exit 0
fi
echo "install-k8s: installing ${need[*]}"
SUDO=
[ "$(id -u)" -eq 0 ] || SUDO=sudo
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get -o DPkg::Lock::Timeout=600 update -qq
$SUDO apt-get -o DPkg::Lock::Timeout=600 install -y -qq --no-install-recommends "${need[@]}" >/dev/null
# The etcd-server package starts a system etcd on 127.0.0.1:2379; the check
# runs its own on other ports, so the system one may stay or go.
if command -v systemctl >/dev/null 2>&1 && systemctl is-active --quiet etcd 2>/dev/null; then
	$SUDO systemctl disable --now etcd >/dev/null 2>&1 || true
fi
etcd --version | head -1
