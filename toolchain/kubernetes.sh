#!/usr/bin/env bash
# Provides kube-apiserver, kube-controller-manager, kubectl and etcd, cached outside the repo
# one folder per tool and version, and prints their bin dirs.
#
# First the official release binaries, the way envtest users get them: dl.k8s.io's
# kube-apiserver, kube-controller-manager and kubectl, each checked against its published
# .sha256, and etcd's release tarball from GitHub, checked against that release's SHA256SUMS.
# Where those sites are unreachable (a machine that reaches only package registries), the same
# binaries are built from the Go module proxy (tens of minutes, once). A checksum that does not
# match stops the script instead: that is not a network failure but a download that is not what
# the release published, and a silent build would hide it (MESH_K8S_RELEASE_URL=none or
# MESH_ETCD_RELEASE_URL=none builds instead, on purpose). Each folder's .origin says how its
# binaries were got, so later runs report it without probing again.
#
# Usage:
#   toolchain/kubernetes.sh              get what is missing, print the bin dirs
#   toolchain/kubernetes.sh --print-env  get what is missing, print `export PATH=...`
#                                        (eval "$(toolchain/kubernetes.sh --print-env)")
#   toolchain/kubernetes.sh --no-build   download what can be, build nothing: report what would
#                                        be built and exit 3 if anything would
# Environment: MESH_K8S_RELEASE_URL (default https://dl.k8s.io/release), MESH_ETCD_RELEASE_URL
# (default https://github.com/etcd-io/etcd/releases/download): base URLs of the releases, laid
# out as those sites lay them out; `none` skips the download.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source-path=SCRIPTDIR source=versions.sh
source "$HERE/versions.sh" KUBERNETES_VERSION ETCD_VERSION
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$HERE/lib.sh"

CACHE=${MESH_TOOLCHAIN_CACHE:-$HOME/.cache/mesh-toolchain}
K8S_HOME=$CACHE/kubernetes-v$KUBERNETES_VERSION
ETCD_HOME=$CACHE/etcd-v$ETCD_VERSION
K8S_RELEASE_URL=${MESH_K8S_RELEASE_URL:-https://dl.k8s.io/release}
ETCD_RELEASE_URL=${MESH_ETCD_RELEASE_URL:-https://github.com/etcd-io/etcd/releases/download}
K8S_WHY="" ETCD_WHY=""
K8S_PIECE="kube-apiserver, kube-controller-manager, kubectl v$KUBERNETES_VERSION"
ETCD_PIECE="etcd v$ETCD_VERSION"
case $(uname -m) in
  x86_64 | amd64) ARCH=amd64 ;;
  aarch64 | arm64) ARCH=arm64 ;;
  *) ARCH=$(uname -m) ;;
esac

# Module and build caches live beside the binaries so a rebuild after a version
# bump reuses most downloads and compiled packages. GOTOOLCHAIN=local: the proxy
# does not serve toolchains we could switch to, so fail rather than try.
export GOMODCACHE=$CACHE/go/mod GOCACHE=$CACHE/go/build
export GOTOOLCHAIN=local GOFLAGS=-mod=mod CGO_ENABLED=0

log() { echo "kubernetes.sh: $*" >&2; }

# A folder counts only once its .complete stamp exists, so an interrupted
# build or download is redone rather than half-trusted.
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
  write_origin "$K8S_HOME" "built from Go modules ($K8S_WHY)"
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
  write_origin "$ETCD_HOME" "built from Go modules ($ETCD_WHY)"
  touch "$ETCD_HOME/.complete"
}

refuse() { # refuse STAGE PIECE SETTING: a download that is not what the release published
  rm -rf "$1"
  echo "toolchain: error: $2: REFUSED, nothing installed: $DOWNLOAD_ERROR." \
    "A download that does not match the release's checksum is not a network failure, so this" \
    "does not fall back to building by itself; $3=none builds from Go modules instead." >&2
  exit 1
}

# Stage in a sibling folder and move it into place whole: the folder counts only with .complete.
download_kubernetes() {
  local base=$K8S_RELEASE_URL/v$KUBERNETES_VERSION/bin/linux/$ARCH stage=$K8S_HOME.download name rc
  if [[ $K8S_RELEASE_URL == none ]]; then
    K8S_WHY="downloads turned off: MESH_K8S_RELEASE_URL=none"
    return 1
  fi
  rm -rf "$stage" && mkdir -p "$stage/bin"
  for name in kube-apiserver kube-controller-manager kubectl; do
    rc=0
    download_verified "$base/$name" "$base/$name.sha256" "$stage/bin/$name" || rc=$?
    case $rc in
      0) chmod +x "$stage/bin/$name" ;;
      1) rm -rf "$stage"; K8S_WHY=$DOWNLOAD_ERROR; return 1 ;;
      *) refuse "$stage" "$K8S_PIECE" MESH_K8S_RELEASE_URL ;;
    esac
  done
  write_origin "$stage" "downloaded from $base, sha256 verified"
  touch "$stage/.complete"
  rm -rf "$K8S_HOME" && mv "$stage" "$K8S_HOME"
}

download_etcd() {
  local base=$ETCD_RELEASE_URL/v$ETCD_VERSION stage=$ETCD_HOME.download rc=0
  local name=etcd-v$ETCD_VERSION-linux-$ARCH
  if [[ $ETCD_RELEASE_URL == none ]]; then
    ETCD_WHY="downloads turned off: MESH_ETCD_RELEASE_URL=none"
    return 1
  fi
  rm -rf "$stage" && mkdir -p "$stage/bin"
  download_verified "$base/$name.tar.gz" "$base/SHA256SUMS" "$stage/$name.tar.gz" "$name.tar.gz" || rc=$?
  case $rc in
    0) ;;
    1) rm -rf "$stage"; ETCD_WHY=$DOWNLOAD_ERROR; return 1 ;;
    *) refuse "$stage" "$ETCD_PIECE" MESH_ETCD_RELEASE_URL ;;
  esac
  if ! tar -xzf "$stage/$name.tar.gz" -C "$stage" "$name/etcd" 2>/dev/null; then
    rm -rf "$stage"
    ETCD_WHY="$base/$name.tar.gz has no $name/etcd"
    return 1
  fi
  mv "$stage/$name/etcd" "$stage/bin/etcd" && rm -rf "${stage:?}/$name" "$stage/$name.tar.gz"
  write_origin "$stage" "downloaded from $base/$name.tar.gz, sha256 verified"
  touch "$stage/.complete"
  rm -rf "$ETCD_HOME" && mv "$stage" "$ETCD_HOME"
}

PRINT_ENV=0
for arg in "$@"; do
  case $arg in
    --print-env) PRINT_ENV=1 ;;
    --no-build) NO_BUILD=1 ;;
    *) echo "kubernetes.sh: unknown argument: $arg" >&2; exit 2 ;;
  esac
done

mkdir -p "$CACHE"
# Two concurrent callers (a test run and CI, say) must not fill the same folder.
exec 9>"$CACHE/.kubernetes.lock"
flock 9
to_build=()
if built "$ETCD_HOME"; then report "$ETCD_PIECE" "$(origin_of "$ETCD_HOME") (cached)"
elif download_etcd; then report "$ETCD_PIECE" "$(origin_of "$ETCD_HOME")"
else to_build+=(etcd); fi
if built "$K8S_HOME"; then report "$K8S_PIECE" "$(origin_of "$K8S_HOME") (cached)"
elif download_kubernetes; then report "$K8S_PIECE" "$(origin_of "$K8S_HOME")"
else to_build+=(kubernetes); fi

if ((${#to_build[@]})); then
  if ((NO_BUILD)); then
    for piece in "${to_build[@]}"; do
      case $piece in
        etcd) would_build "$ETCD_PIECE" "$ETCD_WHY" ;;
        kubernetes) would_build "$K8S_PIECE" "$K8S_WHY" ;;
      esac
    done
    exit 3
  fi
  names=()
  for piece in "${to_build[@]}"; do
    case $piece in
      etcd) names+=("$ETCD_PIECE ($ETCD_WHY)") ;;
      kubernetes) names+=("$K8S_PIECE ($K8S_WHY)") ;;
    esac
  done
  need_go "${names[@]}"
  for piece in "${to_build[@]}"; do
    case $piece in
      etcd) (build_etcd); report "$ETCD_PIECE" "$(origin_of "$ETCD_HOME")" ;;
      kubernetes) (build_kubernetes); report "$K8S_PIECE" "$(origin_of "$K8S_HOME")" ;;
    esac
  done
fi
flock -u 9

if ((PRINT_ENV)); then
  echo "export PATH=$K8S_HOME/bin:$ETCD_HOME/bin:\$PATH"
else
  echo "$K8S_HOME/bin"
  echo "$ETCD_HOME/bin"
fi
