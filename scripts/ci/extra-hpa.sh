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

tmp=$(mktemp -d)
pids=()
cleanup() {
	local rc=$?
	# Last started first: the API server before its etcd.
	local i
	for ((i = ${#pids[@]} - 1; i >= 0; i--)); do
		kill "${pids[i]}" 2>/dev/null || true
		wait "${pids[i]}" 2>/dev/null || true
	done
	if [ $rc -ne 0 ]; then
		for f in "$tmp"/*.log; do
			[ -f "$f" ] || continue
			echo "--- last lines of $(basename "$f") ---"
			tail -25 "$f"
		done
	fi
	rm -rf "$tmp"
}
trap cleanup EXIT

# free_port: a loopback port nobody listens on.
free_port() {
	local p
	while :; do
		p=$((20000 + RANDOM % 20000))
		if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
			echo "$p"
			return
		fi
	done
}

# ---- certificates and credentials (self-signed, valid one day)
# ca: the API server's serving certificate. front-proxy-ca: the aggregation
# layer's client certificate, which the API server presents to the adapter
# (the adapter trusts the user headers of requests signed by it, the CA
# being published in kube-system/extension-apiserver-authentication).
(
	cd "$tmp"
	ca() { openssl req -x509 -newkey rsa:2048 -nodes -keyout "$1.key" -out "$1.crt" -days 1 -subj "/CN=$1" 2>/dev/null; }
	leaf() { # name CN CA extensions
		openssl req -newkey rsa:2048 -nodes -keyout "$1.key" -out "$1.csr" -subj "/CN=$2" 2>/dev/null
		printf '%s\n' "$4" >"$1.ext"
		openssl x509 -req -in "$1.csr" -CA "$3.crt" -CAkey "$3.key" -CAcreateserial -out "$1.crt" -days 1 -extfile "$1.ext" 2>/dev/null
	}
	ca ca
	ca front-proxy-ca
	leaf server kube-apiserver ca $'subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth'
	leaf front-proxy-client front-proxy-client front-proxy-ca 'extendedKeyUsage=clientAuth'
	openssl genrsa -out sa.key 2048 2>/dev/null
	openssl rsa -in sa.key -pubout -out sa.pub 2>/dev/null
	token=$(openssl rand -hex 24)
	echo "$token,ocvr-ci,ocvr-ci,system:masters" >tokens.csv
	echo "$token" >token
)

# ---- etcd
ETCD_PORT=$(free_port)
ETCD_PEER_PORT=$(free_port)
etcd --name ocvr-hpa --data-dir "$tmp/etcd" \
	--listen-client-urls "http://127.0.0.1:$ETCD_PORT" --advertise-client-urls "http://127.0.0.1:$ETCD_PORT" \
	--listen-peer-urls "http://127.0.0.1:$ETCD_PEER_PORT" --initial-advertise-peer-urls "http://127.0.0.1:$ETCD_PEER_PORT" \
	--initial-cluster "ocvr-hpa=http://127.0.0.1:$ETCD_PEER_PORT" >"$tmp/etcd.log" 2>&1 &
pids+=($!)

# ---- kube-apiserver, with the aggregation layer's flags
API_PORT=$(free_port)
"$APISERVER" \
	--etcd-servers "http://127.0.0.1:$ETCD_PORT" \
	--bind-address 127.0.0.1 --advertise-address 127.0.0.1 --secure-port "$API_PORT" \
	--tls-cert-file "$tmp/server.crt" --tls-private-key-file "$tmp/server.key" \
	--token-auth-file "$tmp/tokens.csv" --authorization-mode RBAC \
	--service-account-issuer https://kubernetes.default.svc.cluster.local \
	--service-account-key-file "$tmp/sa.pub" --service-account-signing-key-file "$tmp/sa.key" \
	--service-cluster-ip-range 10.96.0.0/16 \
	--requestheader-client-ca-file "$tmp/front-proxy-ca.crt" \
	--requestheader-allowed-names front-proxy-client \
	--requestheader-username-headers X-Remote-User \
	--requestheader-group-headers X-Remote-Group \
	--requestheader-extra-headers-prefix X-Remote-Extra- \
	--proxy-client-cert-file "$tmp/front-proxy-client.crt" --proxy-client-key-file "$tmp/front-proxy-client.key" \
	--client-ca-file "$tmp/ca.crt" \
	--cert-dir "$tmp/certs" --profiling=false >"$tmp/kube-apiserver.log" 2>&1 &
api_pid=$!
pids+=($api_pid)

cat >"$tmp/kubeconfig" <<EOF
apiVersion: v1
kind: Config
clusters:
  - name: ci
    cluster:
      server: https://127.0.0.1:$API_PORT
      certificate-authority: $tmp/ca.crt
users:
  - name: ci
    user:
      token: $(cat "$tmp/token")
contexts:
  - name: ci
    context: {cluster: ci, user: ci}
current-context: ci
EOF
export KUBECONFIG="$tmp/kubeconfig"

for i in $(seq 1 120); do
	if kubectl get --raw /readyz >/dev/null 2>&1; then
		break
	fi
	kill -0 "$api_pid" 2>/dev/null || { log "kube-apiserver exited"; exit 1; }
	[ "$i" -lt 120 ] || { log "kube-apiserver not ready after 60 s"; exit 1; }
	sleep 0.5
done
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
	--bind-address 127.0.0.1 --secure-port "$(free_port)" \
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
