# Sourced by the scripts/ci/extra-*.sh checks that need a Kubernetes control
# plane on 127.0.0.1: Debian's etcd and a kube-apiserver built from the
# k8s.io/kubernetes module (scripts/tools.sh), with self-signed certificates
# valid one day and an admin token (system:masters) in $tmp/token.
#
# The caller defines log(), sets tmp (a fresh temp dir) and pids=(), and
# installs cp_cleanup as its EXIT trap; every process started here is added to
# pids and logs to $tmp/<name>.log (printed when the script fails).

# cp_cleanup: stops what was started, last first (the API server before its
# etcd), prints the logs' last lines when the script failed, removes $tmp.
# KEEP=1 leaves a passing run's control plane up and prints how to use it.
cp_cleanup() {
	local rc=$? i f
	if [ "${KEEP:-}" = 1 ] && [ $rc -eq 0 ]; then
		log "KEEP=1: control plane left running; export KUBECONFIG=$tmp/kubeconfig; stop with: kill ${pids[*]}"
		return
	fi
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

# cp_free_port: a loopback port nobody listens on.
cp_free_port() {
	local p
	while :; do
		p=$((20000 + RANDOM % 20000))
		if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
			echo "$p"
			return
		fi
	done
}

# cp_certs [aggregation]: the serving CA and certificate, the service-account
# key pair and the admin token. With "aggregation" also the front-proxy CA and
# the client certificate the API server presents to aggregated API servers
# (they trust the user headers of requests signed by it, the CA being
# published in kube-system/extension-apiserver-authentication).
cp_certs() {
	(
		cd "$tmp"
		ca() { openssl req -x509 -newkey rsa:2048 -nodes -keyout "$1.key" -out "$1.crt" -days 1 -subj "/CN=$1" 2>/dev/null; }
		leaf() { # name CN CA extensions
			openssl req -newkey rsa:2048 -nodes -keyout "$1.key" -out "$1.csr" -subj "/CN=$2" 2>/dev/null
			printf '%s\n' "$4" >"$1.ext"
			openssl x509 -req -in "$1.csr" -CA "$3.crt" -CAkey "$3.key" -CAcreateserial -out "$1.crt" -days 1 -extfile "$1.ext" 2>/dev/null
		}
		ca ca
		leaf server kube-apiserver ca $'subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth'
		if [ "${1:-}" = aggregation ]; then
			ca front-proxy-ca
			leaf front-proxy-client front-proxy-client front-proxy-ca 'extendedKeyUsage=clientAuth'
		fi
		openssl genrsa -out sa.key 2048 2>/dev/null
		openssl rsa -in sa.key -pubout -out sa.pub 2>/dev/null
		token=$(openssl rand -hex 24)
		echo "$token,ocvr-ci,ocvr-ci,system:masters" >tokens.csv
		echo "$token" >token
	)
}

# cp_start APISERVER [extra kube-apiserver flags...]: etcd and the API server
# (cp_certs first), $tmp/kubeconfig exported as KUBECONFIG, back once /readyz
# answers. Sets API_PORT and api_pid.
cp_start() {
	local apiserver=$1 etcd_port etcd_peer i
	shift
	etcd_port=$(cp_free_port)
	etcd_peer=$(cp_free_port)
	etcd --name ocvr-ci --data-dir "$tmp/etcd" \
		--listen-client-urls "http://127.0.0.1:$etcd_port" --advertise-client-urls "http://127.0.0.1:$etcd_port" \
		--listen-peer-urls "http://127.0.0.1:$etcd_peer" --initial-advertise-peer-urls "http://127.0.0.1:$etcd_peer" \
		--initial-cluster "ocvr-ci=http://127.0.0.1:$etcd_peer" >"$tmp/etcd.log" 2>&1 &
	pids+=($!)

	API_PORT=$(cp_free_port)
	"$apiserver" \
		--etcd-servers "http://127.0.0.1:$etcd_port" \
		--bind-address 127.0.0.1 --advertise-address 127.0.0.1 --secure-port "$API_PORT" \
		--tls-cert-file "$tmp/server.crt" --tls-private-key-file "$tmp/server.key" \
		--token-auth-file "$tmp/tokens.csv" --authorization-mode RBAC \
		--service-account-issuer https://kubernetes.default.svc.cluster.local \
		--service-account-key-file "$tmp/sa.pub" --service-account-signing-key-file "$tmp/sa.key" \
		--service-cluster-ip-range 10.96.0.0/16 \
		--cert-dir "$tmp/certs" --profiling=false "$@" >"$tmp/kube-apiserver.log" 2>&1 &
	api_pid=$!
	pids+=($api_pid)

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
      token: $(cat "$tmp/token")
contexts:
  - name: ci
    context: {cluster: ci, user: ci}
current-context: ci
KC
	export KUBECONFIG="$tmp/kubeconfig"
	for i in $(seq 1 120); do
		kubectl get --raw /readyz >/dev/null 2>&1 && return 0
		kill -0 "$api_pid" 2>/dev/null || { log "kube-apiserver exited"; return 1; }
		sleep 0.5
	done
	log "kube-apiserver not ready after 60 s"
	return 1
}
