#!/usr/bin/env bash
# Builds kube-apiserver, kube-controller-manager, kubectl and etcd from Go modules.
#
# This machine reaches only package registries (no GitHub releases, no dl.k8s.io,
# no container images), so the binaries a laptop would download are compiled here
# from the Go module proxy instead. Results are cached outside the repo, one folder
# per tool and version, so only the first run pays the cold build.
#
# Usage:
#   toolchain/kubernetes.sh              build what is missing, print the bin dirs
#   toolchain/kubernetes.sh --print-env  build what is missing, print `export PATH=...`
#                                        (eval "$(toolchain/kubernetes.sh --print-env)")
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source-path=SCRIPTDIR source=versions.sh
source "$HERE/versions.sh" KUBERNETES_VERSION ETCD_VERSION

CACHE=${MESH_TOOLCHAIN_CACHE:-$HOME/.cache/mesh-toolchain}
K8S_HOME=$CACHE/kubernetes-v$KUBERNETES_VERSION
ETCD_HOME=$CACHE/etcd-v$ETCD_VERSION

# Module and build caches live beside the binaries so a rebuild after a version
# bump reuses most downloads and compiled packages. GOTOOLCHAIN=local: the proxy
# does not serve toolchains we could switch to, so fail rather than try.
export GOMODCACHE=$CACHE/go/mod GOCACHE=$CACHE/go/build
export GOTOOLCHAIN=local GOFLAGS=-mod=mod CGO_ENABLED=0

log() { echo "kubernetes.sh: $*" >&2; }

# A folder counts as built only once its .complete stamp exists, so an
# interrupted build is redone rather than half-trusted.
built() { [[ -f $1/.complete ]]; }

build_kubernetes() {
  local v=$KUBERNETES_VERSION minor=${KUBERNETES_VERSION#*.}
  minor=${minor%%.*}
  local src=$K8S_HOME/src staging_v=v0.${KUBERNETES_VERSION#*.}
  log "building kubernetes v$v into $K8S_HOME (cold: tens of minutes)"
  rm -rf "$K8S_HOME" && mkdir -p "$src" "$K8S_HOME/bin"
  cd "$src"
  # k8s.io/kubernetes' own go.mod points every k8s.io/* staging module at
  # ./staging/..., which module zips omit; pin each to its published v0.X.Y instead.
  local gomod
  gomod=$(go mod download -json "k8s.io/kubernetes@v$v" | sed -n 's/^\s*"GoMod": "\(.*\)",\?$/\1/p')
  {
    echo "module mesh.local/kubernetes-build"
    echo
    echo "go $(sed -n 's/^go //p' "$gomod")"
    echo
    echo "require k8s.io/kubernetes v$v"
    echo
    echo "replace ("
    grep -oE '^\s*k8s.io/[a-z0-9-]+ => \./staging/' "$gomod" | awk -v sv="$staging_v" '{print "\t" $1 " => " $1 " " sv}'
    echo ")"
  } > go.mod
  local pkg=k8s.io/component-base/version cpkg=k8s.io/client-go/pkg/version x=""
  for p in $pkg $cpkg; do
    x+=" -X $p.gitVersion=v$v -X $p.gitMajor=1 -X $p.gitMinor=$minor -X $p.gitTreeState=clean"
    x+=" -X $p.buildDate=$(date -u +%Y-%m-%dT%H:%M:%SZ)"
  done
  go build -trimpath -ldflags "-s -w$x" -o "$K8S_HOME/bin/" \
    k8s.io/kubernetes/cmd/kube-apiserver \
    k8s.io/kubernetes/cmd/kube-controller-manager \
    k8s.io/kubernetes/cmd/kubectl
  touch "$K8S_HOME/.complete"
}

build_etcd() {
  local v=$ETCD_VERSION src=$ETCD_HOME/src
  log "building etcd v$v into $ETCD_HOME"
  rm -rf "$ETCD_HOME" && mkdir -p "$src" "$ETCD_HOME/bin"
  cd "$src"
  # The server module's own replaces (../api, ...) are ignored outside its repo,
  # so its sibling modules must be required at the same version explicitly.
  cat > go.mod <<MOD
module mesh.local/etcd-build

go 1.24.0

require (
	go.etcd.io/etcd/server/v3 v$v
	go.etcd.io/etcd/api/v3 v$v
	go.etcd.io/etcd/client/pkg/v3 v$v
	go.etcd.io/etcd/client/v3 v$v
	go.etcd.io/etcd/pkg/v3 v$v
)
MOD
  # go.etcd.io/etcd/server/v3 is itself the etcd main package (server/main.go).
  go build -trimpath -ldflags "-s -w" -o "$ETCD_HOME/bin/etcd" go.etcd.io/etcd/server/v3
  touch "$ETCD_HOME/.complete"
}

mkdir -p "$CACHE"
# Two concurrent callers (a test run and CI, say) must not build into the same folder.
exec 9>"$CACHE/.kubernetes.lock"
flock 9
built "$ETCD_HOME" || (build_etcd)
built "$K8S_HOME" || (build_kubernetes)
flock -u 9

if [[ ${1:-} == --print-env ]]; then
  echo "export PATH=$K8S_HOME/bin:$ETCD_HOME/bin:\$PATH"
else
  echo "$K8S_HOME/bin"
  echo "$ETCD_HOME/bin"
fi
