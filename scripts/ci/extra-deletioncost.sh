#!/usr/bin/env bash
# CI only (.ci/run, after make test): the gateway's pod-deletion-cost client
# against a real Kubernetes API server with the chart's RBAC. The
# kube-apiserver of scripts/tools.sh (cached, as for extra-apiserver.sh) runs
# on 127.0.0.1 against Debian's etcd; the chart's ServiceAccount, Role and
# RoleBinding (helm template --show-only templates/serviceaccount.yaml) are
# applied for real, a Pod object is created (no kubelet: it stays Pending,
# its metadata is what matters), and a token of the service account is
# requested (TokenRequest). TestKubePodAgainstAPIServer then patches the
# pod's controller.kubernetes.io/pod-deletion-cost with that token, reads it
# back, and checks that a patch outside the Role (another namespace) is
# refused with the API server's RBAC reason. About 30 s with a warm cache.
set -euo pipefail
cd "$(dirname "$0")/../.."
export PATH="/usr/local/go/bin:$HOME/go/bin:$PATH"
start=$SECONDS
log() { echo "extra-deletioncost: $*"; }

NAMESPACE=ocvr
OTHER=elsewhere
RELEASE=ocvr-realtime
POD=ocvr-realtime-gateway-test-0

for c in etcd kubectl openssl; do
	command -v $c >/dev/null || { log "$c missing: run scripts/ci/install-k8s.sh"; exit 1; }
done
APISERVER=$(scripts/tools.sh kube-apiserver)
HELM=$(scripts/tools.sh helm)

tmp=$(mktemp -d)
pids=()
cleanup() {
	local rc=$?
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
	for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
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

(
	cd "$tmp"
	openssl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.crt -days 1 -subj /CN=ocvr-ci-ca 2>/dev/null
	openssl req -newkey rsa:2048 -nodes -keyout server.key -out server.csr -subj /CN=kube-apiserver 2>/dev/null
	printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n' >server.ext
	openssl x509 -req -in server.csr -CA ca.crt -CAkey ca.key -CAcreateserial -out server.crt -days 1 -extfile server.ext 2>/dev/null
	openssl genrsa -out sa.key 2048 2>/dev/null
	openssl rsa -in sa.key -pubout -out sa.pub 2>/dev/null
	token=$(openssl rand -hex 24)
	echo "$token,ocvr-ci,ocvr-ci,system:masters" >tokens.csv
	echo "$token" >admin-token
)

ETCD_PORT=$(free_port)
ETCD_PEER_PORT=$(free_port)
etcd --name ocvr-ci --data-dir "$tmp/etcd" \
	--listen-client-urls "http://127.0.0.1:$ETCD_PORT" --advertise-client-urls "http://127.0.0.1:$ETCD_PORT" \
	--listen-peer-urls "http://127.0.0.1:$ETCD_PEER_PORT" --initial-advertise-peer-urls "http://127.0.0.1:$ETCD_PEER_PORT" \
	--initial-cluster "ocvr-ci=http://127.0.0.1:$ETCD_PEER_PORT" >"$tmp/etcd.log" 2>&1 &
pids+=($!)

API_PORT=$(free_port)
"$APISERVER" \
	--etcd-servers "http://127.0.0.1:$ETCD_PORT" \
	--bind-address 127.0.0.1 --advertise-address 127.0.0.1 --secure-port "$API_PORT" \
	--tls-cert-file "$tmp/server.crt" --tls-private-key-file "$tmp/server.key" \
	--token-auth-file "$tmp/tokens.csv" --authorization-mode RBAC \
	--service-account-issuer https://kubernetes.default.svc.cluster.local \
	--service-account-key-file "$tmp/sa.pub" --service-account-signing-key-file "$tmp/sa.key" \
	--service-cluster-ip-range 10.96.0.0/16 \
	--cert-dir "$tmp/certs" --profiling=false >"$tmp/kube-apiserver.log" 2>&1 &
pids+=($!)

cat >"$tmp/kubeconfig" <<KC
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
      token: $(cat "$tmp/admin-token")
contexts:
  - name: ci
    context: {cluster: ci, user: ci}
current-context: ci
KC
export KUBECONFIG="$tmp/kubeconfig"
for i in $(seq 1 120); do
	kubectl get --raw /readyz >/dev/null 2>&1 && break
	kill -0 "${pids[1]}" 2>/dev/null || { log "kube-apiserver exited"; exit 1; }
	[ "$i" -lt 120 ] || { log "kube-apiserver not ready after 60 s"; exit 1; }
	sleep 0.5
done
log "API server ready on 127.0.0.1:$API_PORT after $((SECONDS - start)) s"

kubectl create namespace $NAMESPACE >/dev/null
kubectl create namespace $OTHER >/dev/null
# The chart's service account and RBAC, as helm install would create them.
"$HELM" template $RELEASE helm/ocvr-realtime --namespace $NAMESPACE --show-only templates/serviceaccount.yaml \
	>"$tmp/rbac.yaml" 2>"$tmp/helm.log"
kubectl apply -f "$tmp/rbac.yaml" >/dev/null
SA=$(kubectl -n $NAMESPACE get serviceaccount -o jsonpath='{.items[0].metadata.name}')
# No controller-manager here: the other namespace's default account by hand.
kubectl -n $OTHER create serviceaccount default >/dev/null
for ns in $NAMESPACE $OTHER; do
	sa=default
	[ $ns = $NAMESPACE ] && sa=$SA
	kubectl apply -f - >/dev/null <<POD
apiVersion: v1
kind: Pod
metadata: {name: $POD, namespace: $ns}
spec:
  serviceAccountName: $sa
  automountServiceAccountToken: false
  containers: [{name: gateway, image: ocvr-gateway:test}]
POD
done
kubectl -n $NAMESPACE create token "$SA" --duration 10m >"$tmp/sa-token"
log "chart RBAC applied ($(grep -c '^kind:' "$tmp/rbac.yaml") objects), pods created, token for $NAMESPACE/$SA"

out=$(OCVR_TEST_KUBE_API="https://127.0.0.1:$API_PORT" OCVR_TEST_KUBE_CA="$tmp/ca.crt" \
	OCVR_TEST_KUBE_TOKEN_FILE="$tmp/sa-token" OCVR_TEST_KUBE_ADMIN_TOKEN_FILE="$tmp/admin-token" \
	OCVR_TEST_KUBE_NAMESPACE=$NAMESPACE OCVR_TEST_KUBE_POD=$POD OCVR_TEST_KUBE_OTHER_NAMESPACE=$OTHER \
	go test -count=1 -run '^TestKubePodAgainstAPIServer$' -v ./gateway/internal/gateway/ 2>&1) || { echo "$out"; log FAILED; exit 1; }
echo "$out" | grep -E '^(---|ok|FAIL)' || true
grep -q -- '--- PASS: TestKubePodAgainstAPIServer' <<<"$out" || { echo "$out"; log "the test did not run (skipped?)"; exit 1; }
got=$(kubectl -n $NAMESPACE get pod $POD -o jsonpath='{.metadata.annotations.controller\.kubernetes\.io/pod-deletion-cost}')
[ "$got" = 987 ] || { log "kubectl sees pod-deletion-cost=$got, want 987"; exit 1; }
log "passed in $((SECONDS - start)) s (kubectl: pod-deletion-cost=$got)"
