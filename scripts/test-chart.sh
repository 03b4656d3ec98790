#!/usr/bin/env bash
# The Helm chart and the container images (make test-chart, part of make test):
#   1. gofmt and go vet of deploy/imagebuild and helm/charttest;
#   2. make images into a temp dir, and the image tests (deploy/imagebuild):
#      OCI config (entrypoint, non-root user, labels), no shell, static
#      binary, `--help` run from the unpacked image as its user;
#   3. the chart tests (helm/charttest): helm lint --strict and helm template
#      of the default values and every profile, strict decoding into the
#      k8s.io/api types (v0.34, the API server of scripts/ci/extra-apiserver.sh),
#      custom resources against their CRDs, schema tests, monitoring objects
#      from deploy/, and the rendered configuration run by the images'
#      binaries against a real NATS server (caps, readiness, drain).
# helm is built from the Go module proxy once (≈5 min) and cached outside the
# clone (scripts/tools.sh); afterwards this takes about a minute.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="/usr/local/go/bin:$HOME/go/bin:$PATH"
start=$SECONDS

HELM=$(scripts/tools.sh helm)
echo "test-chart: helm $("$HELM" version --short) ($HELM)"

mods=(deploy/imagebuild helm/charttest)
out=$(gofmt -l "${mods[@]}")
if [ -n "$out" ]; then
	echo "gofmt needed:"
	echo "$out"
	exit 1
fi
go vet ./deploy/imagebuild/... ./helm/charttest/...

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
# The images the chart deploys, built as `make images` builds them.
make --no-print-directory images IMAGE_DIR="$tmp/images" IMAGE_TAG=test >/dev/null
for svc in gateway ticketsvc; do
	go run ./deploy/imagebuild extract "$tmp/images/ocvr-$svc.tar" "$tmp/rootfs-$svc"
done

export OCVR_HELM="$HELM"
export OCVR_IMAGES_DIR="$tmp/images"
export OCVR_ROOTFS_GATEWAY="$tmp/rootfs-gateway" OCVR_ROOTFS_TICKETSVC="$tmp/rootfs-ticketsvc"
go test -count=1 ./deploy/imagebuild/...
# GOWORK=off: the chart tests decode with k8s.io/api v0.34 (their go.mod), the
# version of the API server that CI validates against; the workspace would
# select a newer one for other modules.
(cd helm/charttest && GOWORK=off go test -count=1 -timeout 10m ./...)

echo "test-chart: passed in $((SECONDS - start)) s"
