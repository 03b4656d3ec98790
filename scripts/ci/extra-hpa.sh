#!/usr/bin/env bash
# CI only (.ci/run, after make test): the gateway autoscaling proven end to
# end with the real parts. The control plane runs here — etcd (Debian), a
# kube-apiserver with the aggregation layer on (front-proxy client
# certificates) and a kube-controller-manager running only the HPA controller,
# both built from the same k8s.io/kubernetes module (scripts/tools.sh; once,
# then cached outside the clone) — and the Go test
# deploy/deploytest TestHPAFollowsGatewayConnections runs the rest: real
# gateway processes holding known connections, a real Prometheus (Debian's)
# scraping them, a real prometheus-adapter (built from its Go module) with
# deploy/prometheus-adapter's rules registered as custom.metrics.k8s.io, and
# the chart's Deployment and HPA; it asserts the HPA's desiredReplicas.
# TestKEDAFallbackHoldsTheFleet runs the chart's ScaledObject (profile keda)
# under the real KEDA v2.21.0 operator and metrics server (built from its Go
# module) against the same kind of gateways and Prometheus, then stops
# Prometheus: KEDA's fallback must hold the fleet's size.
# Everything runs in a temp directory and is torn down at exit.
#
# Run it by hand the same way: bash scripts/ci/extra-hpa.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
export PATH="/usr/local/go/bin:$HOME/go/bin:$PATH"
start=$SECONDS
log() { echo "extra-hpa: $*"; }

command -v etcd >/dev/null || { log "etcd missing: run scripts/ci/install-k8s.sh"; exit 1; }
command -v kubectl >/dev/null || { log "kubectl missing: run scripts/ci/install-k8s.sh"; exit 1; }
command -v openssl >/dev/null || { log "openssl missing: run scripts/ci/install-k8s.sh"; exit 1; }
[ -x /usr/bin/prometheus ] || { log "prometheus missing: run scripts/ci/install-prometheus.sh"; exit 1; }

# The heavy one-off builds (≈2 GB RAM each) share the machine's bench lock,
# so that they never run beside a load test; once cached they return at once.
# In CI a build that would not fit in .ci/run's 30 minutes is not started
# (scripts/lib/ci-budget.sh): the whole check is skipped, loudly, when the
# HPA's tools are missing and do not fit, and only the KEDA test when KEDA's
# build (the largest: ≈ 16 min on a busy 2-core machine) does not.
. scripts/lib/ci-budget.sh
build() {
	scripts/tools.sh cached "$1" || flock /tmp/ocvr-bench.lock scripts/tools.sh "$1"
}
# Seconds a first build takes here (measured on 2 busy cores), plus the run.
need=120
scripts/tools.sh cached kube-apiserver >/dev/null || need=$((need + 420))
scripts/tools.sh cached kube-controller-manager >/dev/null || need=$((need + 540))
scripts/tools.sh cached prometheus-adapter >/dev/null || need=$((need + 240))
if ! ci_budget_allows "$need"; then
	log "SKIPPED: building the missing control-plane tools and running takes ≈ $need s, $(ci_budget_left) s are left of CI's 30 minutes; they are cached outside the clone once built (run: bash scripts/ci/extra-hpa.sh)"
	exit 0
fi
APISERVER=$(build kube-apiserver)
KCM=$(build kube-controller-manager)
ADAPTER=$(build prometheus-adapter)
KEDA_DIR=
if scripts/tools.sh cached keda >/dev/null || ci_budget_allows $((need + 1000)); then
	KEDA_DIR=$(build keda)
else
	log "KEDA's e2e SKIPPED: its first build takes ≈ 1000 s, $(ci_budget_left) s are left of CI's 30 minutes (cached once built)"
fi
KEDA_CRDS="$(scripts/tools.sh cache)/crds-prometheus-operator-v0.85.0-keda-v2.21.0"
if [ ! -d "$KEDA_CRDS" ]; then
	scripts/tools.sh crds "$KEDA_CRDS.tmp" && mv "$KEDA_CRDS.tmp" "$KEDA_CRDS"
fi
HELM=$(scripts/tools.sh helm)
log "kube-apiserver and kube-controller-manager v1.34.4, prometheus-adapter v0.12.0, KEDA v2.21.0 ($([ -n "$KEDA_DIR" ] && echo ready || echo skipped)), $(etcd --version | head -1), $(/usr/bin/prometheus --version 2>&1 | head -1), helm $("$HELM" version --short) (tools ready after $((SECONDS - start)) s)"

. scripts/lib/control-plane.sh
tmp=$(mktemp -d)
pids=()
trap cp_cleanup EXIT

cp_certs aggregation
# The API server with the aggregation layer's flags (the adapter and KEDA's
# metrics server register as APIServices).
cp_start "$APISERVER" \
	--requestheader-client-ca-file "$tmp/front-proxy-ca.crt" \
	--requestheader-allowed-names front-proxy-client \
	--requestheader-username-headers X-Remote-User \
	--requestheader-group-headers X-Remote-Group \
	--requestheader-extra-headers-prefix X-Remote-Extra- \
	--proxy-client-cert-file "$tmp/front-proxy-client.crt" --proxy-client-key-file "$tmp/front-proxy-client.key" \
	--client-ca-file "$tmp/ca.crt"
log "API server ready on 127.0.0.1:$API_PORT after $((SECONDS - start)) s"

# ---- KEDA's CRDs (from its Go module, as extra-apiserver.sh installs them)
kubectl apply --server-side -f <(cat "$KEDA_CRDS"/keda.sh_*.yaml) >/dev/null
kubectl wait --for condition=established --timeout=60s crd --all >/dev/null

# ---- kube-controller-manager: the HPA controller only (no Deployment or
# ReplicaSet controller: the test's pods are API objects it makes itself).
# A 2 s sync period instead of 15 s, so the run stays short.
"$KCM" \
	--kubeconfig "$tmp/kubeconfig" \
	--authentication-kubeconfig "$tmp/kubeconfig" --authorization-kubeconfig "$tmp/kubeconfig" \
	--controllers horizontal-pod-autoscaler-controller \
	--leader-elect=false --use-service-account-credentials=false \
	--horizontal-pod-autoscaler-sync-period 2s \
	--bind-address 127.0.0.1 --secure-port "$(cp_free_port)" \
	--cert-dir "$tmp/kcm-certs" --profiling=false >"$tmp/kube-controller-manager.log" 2>&1 &
pids+=($!)

# ---- the test
export OCVR_HPA_E2E=1 OCVR_HELM="$HELM" OCVR_PROMETHEUS_ADAPTER="$ADAPTER" OCVR_HPA_KUBECONFIG="$KUBECONFIG" OCVR_KEDA_DIR="$KEDA_DIR"
tests='TestHPAFollowsGatewayConnections|TestKEDAFallbackHoldsTheFleet'
[ -n "$KEDA_DIR" ] || tests='TestHPAFollowsGatewayConnections'
(cd deploy/deploytest && go test -count=1 -timeout 8m -run "^($tests)\$" -v . 2>&1) | tee "$tmp/test.out" | grep -E '^(=== RUN|--- |\s+(hpa|keda)_e2e_test.go|PASS|FAIL|ok|panic)' || true
if [ "$(grep -cE "^--- PASS: ($tests) " "$tmp/test.out")" -ne "$(echo "$tests" | tr '|' '\n' | wc -l)" ]; then
	# The test's own lines, without the gateways' JSON logs.
	grep -v '^\s*{"time"' "$tmp/test.out" | tail -80
	[ -z "${OCVR_HPA_OUT:-}" ] || cp "$tmp/test.out" "$OCVR_HPA_OUT"
	log "FAILED"
	exit 1
fi
log "passed in $((SECONDS - start)) s"
