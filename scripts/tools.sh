#!/usr/bin/env bash
# Pinned tools built from the Go module proxy and cached OUTSIDE the clone, so
# a fresh clone (CI) on the same machine reuses them.
#
#   scripts/tools.sh helm             build helm once, print its path
#   scripts/tools.sh kube-apiserver   build kube-apiserver once, print its path
#   scripts/tools.sh kube-controller-manager
#                                     build kube-controller-manager (same module) once
#   scripts/tools.sh prometheus-adapter
#                                     build prometheus-adapter once, print its path
#   scripts/tools.sh keda             build KEDA's operator and metrics adapter once,
#                                     print the directory holding keda and keda-adapter
#   scripts/tools.sh crds DIR         copy the prometheus-operator and KEDA CRDs into DIR
#   scripts/tools.sh cached TOOL      print TOOL's path (keda: its directory) if it is
#                                     built, else fail
#                                     (no build: a caller may take a lock first)
#   scripts/tools.sh cache            print the cache directory
#
# Cache: ${OCVR_TOOLS_CACHE:-$HOME/.cache/ocvr-tools}. Delete a tool's folder to rebuild it.
# Build logs go to stderr; stdout carries only the answer.
set -euo pipefail

HELM_VERSION=v3.22.0
K8S_VERSION=v1.34.4          # k8s.io/kubernetes; its staging modules are v0.34.4
K8S_STAGING_VERSION=v0.34.4
PROM_OPERATOR_VERSION=v0.85.0
KEDA_VERSION=v2.21.0
# sigs.k8s.io/prometheus-adapter: v0.12.0 is the newest version the module
# proxy serves (the chart's appVersion for it is v0.12.0 too).
PROM_ADAPTER_VERSION=v0.12.0

CACHE=${OCVR_TOOLS_CACHE:-$HOME/.cache/ocvr-tools}
export PATH="/usr/local/go/bin:$PATH"
export GOWORK=off GOFLAGS=-buildvcs=false

log() { echo "tools.sh: $*" >&2; }

# The build directory of the tool being built (global: the EXIT trap that
# removes it runs after the function has returned).
tmp=

# lock NAME: serialise concurrent builds of one tool (two test runs at once).
lock() {
	mkdir -p "$CACHE"
	exec {lockfd}>"$CACHE/.$1.lock"
	flock "$lockfd"
}

helm_bin() {
	# "-k8sdefault": built with the Kubernetes version ldflags (below).
	local dir="$CACHE/helm-$HELM_VERSION-k8sdefault" bin
	bin="$dir/helm"
	if [ ! -x "$bin" ]; then
		lock helm
		if [ ! -x "$bin" ]; then
			log "building helm $HELM_VERSION from the Go module proxy (once: ≈5 min on an idle machine, more under load) into $dir"
			local start=$SECONDS
			tmp=$(mktemp -d "$CACHE/helm-build.XXXXXX")
			trap 'rm -rf "$tmp"' EXIT
			# A private build cache: a `go clean -cache` elsewhere on the
			# machine must not break the link step of this one-off build.
			export GOCACHE="$tmp/gocache"
			# As helm's own Makefile does: the version, and the default
			# Kubernetes version of lint and template (1.<client-go minor>;
			# without it helm assumes v1.20).
			local ldflags="-s -w -X helm.sh/helm/v3/internal/version.version=$HELM_VERSION -X helm.sh/helm/v3/internal/version.gitTreeState=clean"
			local kv
			kv=$(cd "$tmp" && go mod download -json "helm.sh/helm/v3@$HELM_VERSION" | sed -n 's/^\t"GoMod": "\(.*\)",$/\1/p' | xargs sed -n 's#^\s*k8s.io/client-go v0\.\([0-9]*\)\..*#\1#p')
			[ -n "$kv" ] || { log "cannot find helm's client-go version"; exit 1; }
			for p in helm.sh/helm/v3/pkg/lint/rules helm.sh/helm/v3/pkg/chartutil; do
				ldflags="$ldflags -X $p.k8sVersionMajor=1 -X $p.k8sVersionMinor=$kv"
			done
			CGO_ENABLED=0 GOBIN="$tmp" go install -ldflags "$ldflags" \
				"helm.sh/helm/v3/cmd/helm@$HELM_VERSION" >&2
			mkdir -p "$dir"
			mv "$tmp/helm" "$bin"
			log "helm built in $((SECONDS - start)) s"
		fi
	fi
	echo "$bin"
}

# kube_bin NAME: a binary of k8s.io/kubernetes/cmd/NAME (kube-apiserver,
# kube-controller-manager), from a throwaway module requiring k8s.io/kubernetes
# with each of its staging modules (k8s.io/api, k8s.io/apiserver, …) replaced
# by the released version, exactly as the kubernetes go.mod lists them. Both
# come from the same module version, so they speak the same API.
kube_bin() {
	local name=$1
	local dir="$CACHE/$name-$K8S_VERSION" bin
	bin="$dir/$name"
	if [ ! -x "$bin" ]; then
		lock "$name"
		if [ ! -x "$bin" ]; then
			log "building $name $K8S_VERSION from the Go module proxy (once: ≈6-10 min on an idle machine, up to 30 under load; ≈2 GB RAM) into $dir"
			local start=$SECONDS gomod
			tmp=$(mktemp -d "$CACHE/$name-build.XXXXXX")
			trap 'rm -rf "$tmp"' EXIT
			export GOCACHE="$tmp/gocache"
			gomod=$(cd "$tmp" && go mod download -json "k8s.io/kubernetes@$K8S_VERSION" | sed -n 's/^\t"GoMod": "\(.*\)",$/\1/p')
			[ -f "$gomod" ] || { log "cannot find the go.mod of k8s.io/kubernetes@$K8S_VERSION"; exit 1; }
			(
				cd "$tmp"
				cat >go.mod <<-EOF
					module ocvr.local/$name-build

					go 1.24

					require k8s.io/kubernetes $K8S_VERSION
				EOF
				# Every "k8s.io/x => ./staging/src/k8s.io/x" becomes "k8s.io/x => k8s.io/x v0.y.z".
				sed -n 's#^\s*\(k8s\.io/[a-z0-9.-]*\) => \./staging/src/k8s\.io/[a-z0-9.-]*$#\1#p' "$gomod" | sort -u | while read -r m; do
					echo "replace $m => $m $K8S_STAGING_VERSION" >>go.mod
				done
				n=$(grep -c '^replace ' go.mod)
				log "$n staging modules replaced by $K8S_STAGING_VERSION"
				[ "$n" -ge 25 ] || { log "expected ~31 staging modules, found $n"; exit 1; }
				cat >tools.go <<-EOF
					//go:build tools

					package tools

					import _ "k8s.io/kubernetes/cmd/$name"
				EOF
				go mod tidy -e >&2 2>&1 | tail -5 >&2 || true
				# The version the server reports (its feature defaults follow
				# component-base's DefaultKubeBinaryVersion, 1.34, either way).
				v=k8s.io/component-base/version
				minor=${K8S_VERSION#v1.}
				minor=${minor%%.*}
				CGO_ENABLED=0 go build -trimpath \
					-ldflags "-s -w -X $v.gitVersion=$K8S_VERSION -X $v.gitMajor=1 -X $v.gitMinor=$minor -X $v.gitTreeState=clean" \
					-o "$name" "k8s.io/kubernetes/cmd/$name" >&2
			)
			mkdir -p "$dir"
			mv "$tmp/$name" "$bin"
			log "$name built in $((SECONDS - start)) s"
		fi
	fi
	echo "$bin"
}

# prometheus-adapter: its command built from a throwaway module that requires
# the released module (its go.mod has no replace directives, so the
# dependency versions are the release's). Not `go install …@version`: that
# asks the proxy for the module's version list (for deprecations), which the
# proxy here refuses for this module.
prometheus_adapter_bin() {
	local dir="$CACHE/prometheus-adapter-$PROM_ADAPTER_VERSION" bin
	bin="$dir/prometheus-adapter"
	if [ ! -x "$bin" ]; then
		lock prometheus-adapter
		if [ ! -x "$bin" ]; then
			log "building prometheus-adapter $PROM_ADAPTER_VERSION from the Go module proxy (once: ≈3 min) into $dir"
			local start=$SECONDS
			tmp=$(mktemp -d "$CACHE/prometheus-adapter-build.XXXXXX")
			trap 'rm -rf "$tmp"' EXIT
			export GOCACHE="$tmp/gocache"
			(
				cd "$tmp"
				cat >go.mod <<-EOF
					module ocvr.local/prometheus-adapter-build

					go 1.24

					require sigs.k8s.io/prometheus-adapter $PROM_ADAPTER_VERSION
				EOF
				cat >tools.go <<-'EOF'
					//go:build tools

					package tools

					import _ "sigs.k8s.io/prometheus-adapter/cmd/adapter"
				EOF
				go mod tidy -e >&2 2>&1 | tail -5 >&2 || true
				CGO_ENABLED=0 go build -trimpath -ldflags "-s -w" \
					-o prometheus-adapter sigs.k8s.io/prometheus-adapter/cmd/adapter >&2
			)
			mkdir -p "$dir"
			mv "$tmp/prometheus-adapter" "$bin"
			log "prometheus-adapter built in $((SECONDS - start)) s"
		fi
	fi
	echo "$bin"
}

# keda: KEDA's operator (keda) and metrics API server (keda-adapter), built
# inside a copy of the released module (its go.mod, go.sum and replace
# directive as released), as KEDA's Makefile does.
keda_bin() {
	local dir="$CACHE/keda-$KEDA_VERSION"
	if [ ! -x "$dir/keda" ] || [ ! -x "$dir/keda-adapter" ]; then
		lock keda
		if [ ! -x "$dir/keda" ] || [ ! -x "$dir/keda-adapter" ]; then
			log "building KEDA $KEDA_VERSION (operator and metrics adapter) from the Go module proxy (once: ≈15 min, ≈3 GB RAM) into $dir"
			local start=$SECONDS src
			tmp=$(mktemp -d "$CACHE/keda-build.XXXXXX")
			trap 'rm -rf "$tmp"' EXIT
			export GOCACHE="$tmp/gocache"
			src=$(cd "$tmp" && go mod download -json "github.com/kedacore/keda/v2@$KEDA_VERSION" | sed -n 's/^\t"Dir": "\(.*\)",$/\1/p')
			[ -f "$src/go.mod" ] || { log "cannot find the source of github.com/kedacore/keda/v2@$KEDA_VERSION"; exit 1; }
			cp -r "$src" "$tmp/src"
			chmod -R u+w "$tmp/src"
			(
				cd "$tmp/src"
				v=github.com/kedacore/keda/v2/version
				CGO_ENABLED=0 go build -trimpath -ldflags "-s -w -X=$v.Version=${KEDA_VERSION#v} -X=$v.GitCommit=module" -o "$tmp/keda" ./cmd/operator >&2
				CGO_ENABLED=0 go build -trimpath -ldflags "-s -w -X=$v.Version=${KEDA_VERSION#v} -X=$v.GitCommit=module" -o "$tmp/keda-adapter" ./cmd/adapter >&2
			)
			mkdir -p "$dir"
			mv "$tmp/keda" "$tmp/keda-adapter" "$dir/"
			log "KEDA built in $((SECONDS - start)) s"
		fi
	fi
	echo "$dir"
}

# crds DIR: the CustomResourceDefinitions the chart may render (ServiceMonitor,
# PodMonitor, PrometheusRule; KEDA's ScaledObject and TriggerAuthentication),
# from the Go modules of the projects that own them.
crds() {
	local out=$1 tmp po keda
	mkdir -p "$out"
	tmp=$(mktemp -d)
	trap 'rm -rf "$tmp"' RETURN
	po=$(cd "$tmp" && go mod download -json "github.com/prometheus-operator/prometheus-operator@$PROM_OPERATOR_VERSION" | sed -n 's/^\t"Dir": "\(.*\)",$/\1/p')
	keda=$(cd "$tmp" && go mod download -json "github.com/kedacore/keda/v2@$KEDA_VERSION" | sed -n 's/^\t"Dir": "\(.*\)",$/\1/p')
	[ -d "$po/example/prometheus-operator-crd" ] || { log "no CRDs in $po"; exit 1; }
	[ -d "$keda/config/crd/bases" ] || { log "no CRDs in $keda"; exit 1; }
	cp "$po"/example/prometheus-operator-crd/*.yaml "$out/"
	cp "$keda"/config/crd/bases/*.yaml "$out/"
	chmod u+w "$out"/*.yaml
}

case "${1:-}" in
helm) helm_bin ;;
kube-apiserver | kube-controller-manager) kube_bin "$1" ;;
prometheus-adapter) prometheus_adapter_bin ;;
keda) keda_bin ;;
crds) crds "${2:?usage: tools.sh crds DIR}" ;;
cache) echo "$CACHE" ;;
cached)
	case "${2:-}" in
	helm) p="$CACHE/helm-$HELM_VERSION-k8sdefault/helm" ;;
	kube-apiserver | kube-controller-manager) p="$CACHE/$2-$K8S_VERSION/$2" ;;
	prometheus-adapter) p="$CACHE/prometheus-adapter-$PROM_ADAPTER_VERSION/prometheus-adapter" ;;
	keda) # the directory holding keda and keda-adapter
		p="$CACHE/keda-$KEDA_VERSION"
		[ -x "$p/keda" ] && [ -x "$p/keda-adapter" ] || p=/nonexistent
		;;
	*)
		echo "usage: $0 cached helm|kube-apiserver|kube-controller-manager|prometheus-adapter|keda" >&2
		exit 2
		;;
	esac
	[ -x "$p" ] && echo "$p"
	;;
*)
	echo "usage: $0 helm|kube-apiserver|kube-controller-manager|prometheus-adapter|keda|crds DIR|cached TOOL|cache" >&2
	exit 2
	;;
esac
