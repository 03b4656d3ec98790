#!/usr/bin/env bash
# The Gateway API CRDs (standard channel: HTTPRoute, Gateway, GatewayClass, …)
# from the sigs.k8s.io/gateway-api Go module, copied into DIR, for the
# chart's HTTPRoute (httpRoute.enabled). scripts/ci/extra-apiserver.sh
# installs them beside scripts/tools.sh's CRDs; helm/charttest reads the same
# version from the module cache (crd_test.go).
#   bash scripts/ci/crds-gateway-api.sh DIR
set -euo pipefail
GATEWAY_API_VERSION=v1.6.3
out=${1:?usage: crds-gateway-api.sh DIR}
export PATH="/usr/local/go/bin:$HOME/go/bin:$PATH"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
dir=$(cd "$tmp" && GOWORK=off GOFLAGS=-mod=mod go mod download -json "sigs.k8s.io/gateway-api@$GATEWAY_API_VERSION" | sed -n 's/^\t"Dir": "\(.*\)",$/\1/p')
[ -d "$dir/config/crd/standard" ] || { echo "crds-gateway-api: no CRDs in $dir" >&2; exit 1; }
mkdir -p "$out"
# Only the CustomResourceDefinitions (the directory also holds an admission
# policy that guards upgrades between channels, not needed here).
for f in "$dir"/config/crd/standard/*.yaml; do
	if grep -q '^kind: CustomResourceDefinition' "$f"; then
		cp "$f" "$out/"
	fi
done
chmod u+w "$out"/*.yaml
