#!/usr/bin/env bash
# CI only (.ci/run, after make test): the Helm chart checked by a real
# Kubernetes API server. A kube-apiserver built from the k8s.io/kubernetes
# module (scripts/tools.sh; once, then cached outside the clone in
# ${OCVR_TOOLS_CACHE:-$HOME/.cache/ocvr-tools}) runs on 127.0.0.1 against
# Debian's etcd (scripts/ci/install-k8s.sh), with the prometheus-operator,
# KEDA and Gateway API CRDs installed from their Go modules; every manifest that helm
# template renders for the default values and each profile (the set of
# helm/charttest: profiles/*.yaml and charttest/testdata/values-*.yaml) must
# pass `kubectl apply --dry-run=server --validate=strict`: schema, defaulting,
# validation and admission, as on a real cluster. Everything runs in a temp
# directory and is torn down at exit.
#
# Run it by hand the same way: bash scripts/ci/extra-apiserver.sh
# (KEEP=1 leaves the API server running and prints its kubeconfig.)
set -euo pipefail
cd "$(dirname "$0")/../.."
export PATH="/usr/local/go/bin:$HOME/go/bin:$PATH"
start=$SECONDS
log() { echo "extra-apiserver: $*"; }

KUBE_VERSION=1.34.4
NAMESPACE=ocvr
RELEASE=ocvr-realtime

command -v etcd >/dev/null || { log "etcd missing: run scripts/ci/install-k8s.sh"; exit 1; }
command -v kubectl >/dev/null || { log "kubectl missing: run scripts/ci/install-k8s.sh"; exit 1; }
command -v openssl >/dev/null || { log "openssl missing: run scripts/ci/install-k8s.sh"; exit 1; }

# In CI a first build that would not fit in 30 minutes is not started
# (scripts/lib/ci-budget.sh); once cached it always runs.
. scripts/lib/ci-budget.sh
if ! scripts/tools.sh cached kube-apiserver >/dev/null && ! ci_budget_allows 540; then
	log "SKIPPED: building kube-apiserver (≈ 420 s) and the check take ≈ 540 s, $(ci_budget_left) s are left of CI's 30 minutes; it is cached outside the clone once built (run: bash scripts/ci/extra-apiserver.sh)"
	exit 0
fi
APISERVER=$(scripts/tools.sh kube-apiserver)
HELM=$(scripts/tools.sh helm)
CACHE=$(scripts/tools.sh cache)
CRDS="$CACHE/crds-prometheus-operator-v0.85.0-keda-v2.21.0"
if [ ! -d "$CRDS" ]; then
	scripts/tools.sh crds "$CRDS.tmp" && mv "$CRDS.tmp" "$CRDS"
fi
# The Gateway API CRDs for the chart's HTTPRoute (scripts/ci/crds-gateway-api.sh).
GWAPI_CRDS="$CACHE/crds-gateway-api-v1.6.3"
if [ ! -d "$GWAPI_CRDS" ]; then
	rm -rf "$GWAPI_CRDS.tmp"
	bash scripts/ci/crds-gateway-api.sh "$GWAPI_CRDS.tmp" && mv "$GWAPI_CRDS.tmp" "$GWAPI_CRDS"
fi
log "kube-apiserver $KUBE_VERSION from k8s.io/kubernetes ($APISERVER), $(etcd --version | head -1), kubectl $(kubectl version --client -o json | sed -n 's/.*"gitVersion": "\(.*\)".*/\1/p' | head -1), helm $("$HELM" version --short)"

. scripts/lib/control-plane.sh
tmp=$(mktemp -d)
pids=()
trap cp_cleanup EXIT

cp_certs
cp_start "$APISERVER"
log "API server ready on 127.0.0.1:$API_PORT after $((SECONDS - start)) s"

# ---- CRDs (server-side apply: the prometheus-operator CRDs are too large
# for the last-applied annotation of a client-side apply)
kubectl apply --server-side --force-conflicts -f "$CRDS" >/dev/null
kubectl apply --server-side --force-conflicts -f "$GWAPI_CRDS" >/dev/null
kubectl wait --for condition=established --timeout=60s crd --all >/dev/null
log "$(kubectl get crd -o name | wc -l) CRDs established: $(kubectl get crd -o jsonpath='{range .items[*]}{.spec.names.kind} {end}')"
# The release namespace, and Grafana's for dashboards.namespace (testdata).
kubectl create namespace "$NAMESPACE" >/dev/null
kubectl create namespace monitoring >/dev/null

# ---- sanity: the server does refuse what is invalid
cat >"$tmp/bad.yaml" <<EOF
apiVersion: autoscaling/v2
kind: HorizontalPodAutoscaler
metadata: {name: bad, namespace: $NAMESPACE}
spec:
  scaleTargetRef: {apiVersion: apps/v1, kind: Deployment, name: x}
  minReplicas: 5
  maxReplicas: 2
EOF
if kubectl apply --dry-run=server --validate=strict -f "$tmp/bad.yaml" >"$tmp/bad.out" 2>&1; then
	log "the API server accepted an HPA with minReplicas > maxReplicas: the check would prove nothing"
	exit 1
fi

# ---- every profile
profiles=("default:")
for f in helm/ocvr-realtime/profiles/*.yaml helm/charttest/testdata/values-*.yaml; do
	[ -e "$f" ] || continue
	profiles+=("$(basename "$f" .yaml):$f")
done
failed=0
total=0
for entry in "${profiles[@]}"; do
	name=${entry%%:*}
	file=${entry#*:}
	args=()
	[ -n "$file" ] && args=(-f "$file")
	out="$tmp/render-$name.yaml"
	if ! "$HELM" template "$RELEASE" helm/ocvr-realtime --namespace "$NAMESPACE" --kube-version "$KUBE_VERSION" "${args[@]}" >"$out" 2>"$tmp/helm-$name.err"; then
		log "$name: helm template failed:"
		grep -v 'found symbolic link' "$tmp/helm-$name.err" || true
		failed=1
		continue
	fi
	n=$(grep -c '^kind: ' "$out" || true)
	# A Pod (the helm test hook) is admitted only if its service account
	# exists, and a dry run creates nothing: create the accounts the render
	# names for real first (the chart's own, or an existing one it is given).
	for sa in $(sed -n 's/^ *serviceAccountName: *"\{0,1\}\([^"]*\)"\{0,1\} *$/\1/p' "$out" | sort -u); do
		kubectl -n "$NAMESPACE" create serviceaccount "$sa" --dry-run=client -o yaml | kubectl apply -f - >/dev/null
	done
	# Every rendered object carries its namespace (helm template --namespace).
	if res=$(kubectl apply --dry-run=server --validate=strict -f "$out" 2>&1); then
		accepted=$(grep -c 'server dry run' <<<"$res" || true)
		if [ "$accepted" -ne "$n" ]; then
			log "$name: $accepted of $n objects reported"
			echo "$res"
			failed=1
		else
			log "$name: $n objects accepted ($(grep '^kind: ' "$out" | sort | uniq -c | awk '{printf "%s%s×%s", sep, $3, $1; sep=", "}'))"
		fi
		total=$((total + n))
	else
		log "$name: REJECTED by the API server:"
		echo "$res" | grep -v 'server dry run' || true
		failed=1
	fi
done

if [ $failed -ne 0 ]; then
	log "FAILED"
	exit 1
fi
log "${#profiles[@]} profiles, $total objects accepted by kube-apiserver $KUBE_VERSION in $((SECONDS - start)) s"
