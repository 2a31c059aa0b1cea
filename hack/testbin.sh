#!/usr/bin/env bash
# Builds the real control plane used by integration and e2e tests (internal/testenv) into bin/:
#
#   bin/k8s/{kube-apiserver,kube-controller-manager,kube-scheduler,kubectl,etcd}
#                                                                   (envtest's BinaryAssetsDirectory)
#   bin/kwok/kwok                                                   (fake Node and Pods, no kubelet)
#   bin/flux/{source-controller,helm-controller}
#   bin/flux/crds/*.yaml                                            (Flux CRDs, from the module cache)
#   bin/controller-gen
#
# Nothing can be downloaded as a binary on the build machines (no setup-envtest, kind or Docker),
# so everything is compiled from the Go module proxy using the pinned tools modules under
# hack/tools/<module>/ (each with its own go.mod and go.sum).
#
# Usage: hack/testbin.sh [target...]
#   targets: kube-apiserver kube-controller-manager kube-scheduler kubectl etcd kwok
#            source-controller helm-controller flux-crds controller-gen, or the groups k8s,
#            flux, all (default).
#
# A binary is rebuilt only when its stamp (bin/.../.<name>.stamp) no longer matches: the stamp
# records the package, the pinned version, the Go version, the link flags and the sha256 of the
# tools module's go.mod and go.sum. Set TESTBIN_FORCE=1 to rebuild anyway. KWOK's stage files
# are not copied: internal/testenv reads them from hack/tools/kwok's module in the module cache.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
TOOLS="$ROOT/hack/tools"
BIN="$ROOT/bin"
export GOTOOLCHAIN=local
# Static binaries, as upstream releases them; also keeps the build independent of a C toolchain.
export CGO_ENABLED=0
# The tools modules must resolve exactly as their go.mod/go.sum say, whatever the caller's GOFLAGS.
export GOFLAGS="-mod=readonly -buildvcs=false"

KUBE_VERSION=v1.36.3
# A fixed date keeps the build reproducible; it is only reported by /version.
KUBE_BUILD_DATE=2026-01-01T00:00:00Z
KUBE_LDFLAGS="-s -w \
 -X k8s.io/component-base/version.gitVersion=${KUBE_VERSION} \
 -X k8s.io/component-base/version.gitMajor=1 \
 -X k8s.io/component-base/version.gitMinor=36 \
 -X k8s.io/component-base/version.gitTreeState=clean \
 -X k8s.io/component-base/version.buildDate=${KUBE_BUILD_DATE} \
 -X k8s.io/client-go/pkg/version.gitVersion=${KUBE_VERSION} \
 -X k8s.io/client-go/pkg/version.gitMajor=1 \
 -X k8s.io/client-go/pkg/version.gitMinor=36 \
 -X k8s.io/client-go/pkg/version.gitTreeState=clean \
 -X k8s.io/client-go/pkg/version.buildDate=${KUBE_BUILD_DATE}"

log() { printf '[testbin] %s\n' "$*" >&2; }
die() { printf '[testbin] ERROR: %s\n' "$*" >&2; exit 1; }

command -v go >/dev/null || die "go is not on PATH"
GO_VERSION="$(go env GOVERSION)"

# Version of module $2 as pinned by tools module $1.
pinned_version() {
	(cd "$TOOLS/$1" && go list -m -f '{{if .Replace}}{{.Replace.Version}}{{else}}{{.Version}}{{end}}' "$2")
}

mod_hash() {
	cat "$TOOLS/$1/go.mod" "$TOOLS/$1/go.sum" | sha256sum | cut -d' ' -f1
}

# build <name> <tools module> <module path (for the version)> <package> <output> <ldflags> <cold estimate>
build() {
	local name="$1" toolmod="$2" module="$3" pkg="$4" out="$5" ldflags="$6" estimate="$7"
	local version stamp stampfile start
	version="$(pinned_version "$toolmod" "$module")" || die "cannot resolve $module in hack/tools/$toolmod"
	stamp="$pkg@$version $GO_VERSION cgo=$CGO_ENABLED mod=$(mod_hash "$toolmod") ldflags=$(printf '%s' "$ldflags" | sha256sum | cut -c1-16)"
	stampfile="$(dirname "$out")/.$(basename "$out").stamp"
	if [[ "${TESTBIN_FORCE:-0}" != 1 && -x "$out" && -f "$stampfile" && "$(cat "$stampfile")" == "$stamp" ]]; then
		log "$name $version is up to date (${out#"$ROOT"/})"
		return 0
	fi
	mkdir -p "$(dirname "$out")"
	log "building $name $version (cold build takes ~$estimate)…"
	start=$SECONDS
	rm -f "$stampfile"
	if ! (cd "$TOOLS/$toolmod" && go build -trimpath -ldflags "$ldflags" -o "$out.tmp" "$pkg"); then
		rm -f "$out.tmp"
		die "building $name from hack/tools/$toolmod failed"
	fi
	mv -f "$out.tmp" "$out"
	printf '%s\n' "$stamp" >"$stampfile"
	log "built $name $version in $((SECONDS - start))s -> ${out#"$ROOT"/}"
}

# flux_crds copies the CRD manifests that ship inside the pinned Flux controller modules into
# bin/flux/crds (never into the repository).
flux_crds() {
	local dest="$BIN/flux/crds" toolmod module dir version f
	# Start empty so manifests of a previously pinned version never linger.
	rm -rf "$dest"
	mkdir -p "$dest"
	for toolmod in source-controller helm-controller; do
		module="github.com/fluxcd/$toolmod"
		version="$(pinned_version "$toolmod" "$module")"
		dir="$(cd "$TOOLS/$toolmod" && go mod download -json "$module" | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",*$/\1/p')"
		[[ -n "$dir" && -d "$dir/config/crd/bases" ]] || die "no CRDs found for $module@$version (go mod download failed?)"
		for f in "$dir"/config/crd/bases/*.yaml; do
			install -m 0644 "$f" "$dest/$(basename "$f")"
		done
		printf '%s@%s\n' "$module" "$version" >"$dest/.$toolmod.version"
		log "flux CRDs of $toolmod $version -> ${dest#"$ROOT"/}"
	done
	check_api_versions
}

# check_api_versions warns when the Flux controllers differ from the API modules the root module
# compiles against, since the controllers then serve a different CRD schema than the code expects.
check_api_versions() {
	local toolmod api want have
	for toolmod in source-controller helm-controller; do
		api="github.com/fluxcd/$toolmod/api"
		want="$(cd "$ROOT" && go list -m -f '{{.Version}}' "$api" 2>/dev/null || true)"
		have="$(pinned_version "$toolmod" "github.com/fluxcd/$toolmod")"
		if [[ -n "$want" && "$want" != "$have" ]]; then
			log "WARNING: root go.mod uses $api $want but hack/tools/$toolmod pins $have"
		fi
	done
}

run_target() {
	case "$1" in
	kube-apiserver)
		build kube-apiserver kube k8s.io/kubernetes k8s.io/kubernetes/cmd/kube-apiserver \
			"$BIN/k8s/kube-apiserver" "$KUBE_LDFLAGS" "4 min" ;;
	kube-controller-manager)
		build kube-controller-manager kube k8s.io/kubernetes k8s.io/kubernetes/cmd/kube-controller-manager \
			"$BIN/k8s/kube-controller-manager" "$KUBE_LDFLAGS" "2 min, 1 min after kube-apiserver" ;;
	kube-scheduler)
		build kube-scheduler kube k8s.io/kubernetes k8s.io/kubernetes/cmd/kube-scheduler \
			"$BIN/k8s/kube-scheduler" "$KUBE_LDFLAGS" "2 min, 1 min after kube-apiserver" ;;
	kubectl)
		build kubectl kube k8s.io/kubernetes k8s.io/kubernetes/cmd/kubectl \
			"$BIN/k8s/kubectl" "$KUBE_LDFLAGS" "1 min after kube-apiserver" ;;
	etcd)
		build etcd etcd go.etcd.io/etcd/server/v3 go.etcd.io/etcd/server/v3 \
			"$BIN/k8s/etcd" "-s -w" "1 min" ;;
	kwok)
		build kwok kwok sigs.k8s.io/kwok sigs.k8s.io/kwok/cmd/kwok \
			"$BIN/kwok/kwok" "-s -w" "1.5 min" ;;
	source-controller)
		build source-controller source-controller github.com/fluxcd/source-controller github.com/fluxcd/source-controller \
			"$BIN/flux/source-controller" "-s -w" "4 min" ;;
	helm-controller)
		build helm-controller helm-controller github.com/fluxcd/helm-controller github.com/fluxcd/helm-controller \
			"$BIN/flux/helm-controller" "-s -w" "3 min" ;;
	flux-crds) flux_crds ;;
	controller-gen)
		build controller-gen controller-gen sigs.k8s.io/controller-tools sigs.k8s.io/controller-tools/cmd/controller-gen \
			"$BIN/controller-gen" "-s -w" "1 min" ;;
	k8s) for t in kube-apiserver kube-controller-manager kube-scheduler kubectl etcd; do run_target "$t"; done ;;
	flux) for t in flux-crds source-controller helm-controller; do run_target "$t"; done ;;
	all) for t in k8s kwok flux controller-gen; do run_target "$t"; done ;;
	-h | --help) sed -n '2,23p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 0 ;;
	*) die "unknown target '$1' (see hack/testbin.sh --help)" ;;
	esac
}

[[ $# -gt 0 ]] || set -- all

mkdir -p "$BIN"
# Several engineers (and parallel `make` runs) share one checkout: serialise builds into bin/.
exec 9>"$BIN/.testbin.lock"
if ! flock -n 9; then
	log "another hack/testbin.sh is running; waiting for it…"
	flock 9
fi

total=$SECONDS
for target in "$@"; do
	run_target "$target"
done
log "done in $((SECONDS - total))s"
