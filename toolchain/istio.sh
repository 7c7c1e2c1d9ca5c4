#!/usr/bin/env bash
# Builds Istio's own control plane (pilot-discovery, i.e. istiod), istioctl, the proxy agent
# (pilot-agent, which runs Envoy in the lab's sidecars and gateways) and the CNI node agent
# (install-cni, with the istio-cni plugin it installs: the istio-cni-node DaemonSet's image) from the istio.io/istio Go
# module, cached outside the repo, and prints the bin dir. Beside bin/, proxyv2/ holds what Istio's
# proxyv2 image adds to those binaries and the lab's pods need: Envoy's bootstrap template, at the
# path pilot-agent reads it from (var/lib/istio/envoy/envoy_bootstrap_tmpl.json).
#
# The Go module proxy serves istio.io/istio only at one master pseudo-version (no release tag),
# so the lab runs that Istio (VERSION 1.31-dev); see docs/toolchain.md.
# The module has no replace directives, so a plain module-mode build works.
#
# Usage: toolchain/istio.sh     build what is missing (progress on stderr), print the bin dir
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source-path=SCRIPTDIR source=versions.sh
source "$HERE/versions.sh" ISTIO_MODULE_VERSION ISTIO_BUILD_VERSION
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$HERE/lib.sh"

CACHE=${MESH_TOOLCHAIN_CACHE:-$HOME/.cache/mesh-toolchain}
HOME_DIR=$CACHE/istio-$ISTIO_BUILD_VERSION
export GOMODCACHE=$CACHE/go/mod GOCACHE=$CACHE/go/build
export GOTOOLCHAIN=local GOFLAGS="-mod=mod -buildvcs=false" CGO_ENABLED=0

log() { echo "istio.sh: $*" >&2; }

# What a complete build holds; a cache built before pilot-agent was added (an older stamp) is
# rebuilt, mostly from the Go build cache.
COMPLETE="pilot-discovery istioctl pilot-agent install-cni istio-cni proxyv2"

build_istio() {
  local src=$HOME_DIR/src started=$SECONDS
  log "building istio.io/istio@$ISTIO_MODULE_VERSION (pilot-discovery, istioctl, pilot-agent, install-cni, istio-cni) into $HOME_DIR (cold: ~20 min)"
  rm -rf "$HOME_DIR" && mkdir -p "$src" "$HOME_DIR/bin"
  cd "$src"
  # A wrapper module, so both binaries build in one go with one resolved dependency graph
  # (the one istio.io/istio's own go.mod names: no replaces, MVS keeps its versions).
  local gomod
  gomod=$(go mod download -json "istio.io/istio@$ISTIO_MODULE_VERSION" | sed -n 's/^\s*"GoMod": "\(.*\)",\?$/\1/p')
  printf 'module mesh.local/istio-build\n\ngo %s\n\nrequire istio.io/istio %s\n' \
    "$(sed -n 's/^go //p' "$gomod")" "$ISTIO_MODULE_VERSION" > go.mod
  local v=istio.io/istio/pkg/version rev=${ISTIO_MODULE_VERSION##*-}
  go build -trimpath -o "$HOME_DIR/bin/" -ldflags "-s -w -X $v.buildVersion=$ISTIO_BUILD_VERSION \
    -X $v.buildGitRevision=$rev -X $v.buildStatus=Clean -X $v.buildTag=$ISTIO_MODULE_VERSION" \
    istio.io/istio/pilot/cmd/pilot-discovery istio.io/istio/istioctl/cmd/istioctl \
    istio.io/istio/pilot/cmd/pilot-agent istio.io/istio/cni/cmd/install-cni istio.io/istio/cni/cmd/istio-cni
  local module_dir template=$HOME_DIR/proxyv2/var/lib/istio/envoy/envoy_bootstrap_tmpl.json
  module_dir=$(go mod download -json "istio.io/istio@$ISTIO_MODULE_VERSION" | sed -n 's/^\s*"Dir": "\(.*\)",\?$/\1/p')
  mkdir -p "$(dirname "$template")"
  cp "$module_dir/tools/packaging/common/envoy_bootstrap.json" "$template" && chmod 0644 "$template"
  echo "$COMPLETE" > "$HOME_DIR/.complete"
  log "built in $((SECONDS - started)) s"
}

mkdir -p "$CACHE"
exec 9>"$CACHE/.istio.lock"
flock 9
# Istio ships istiod only as a container image, never as a standalone binary: always built.
piece="pilot-discovery (istiod), istioctl, pilot-agent, install-cni $ISTIO_BUILD_VERSION"
how="built from Go modules (istio.io/istio@$ISTIO_MODULE_VERSION; Istio ships istiod, pilot-agent and install-cni only in container images)"
if [[ "$(cat "$HOME_DIR/.complete" 2>/dev/null)" == "$COMPLETE" ]]; then
  report "$piece" "$how (cached)"
else
  need_go "$piece"
  (build_istio)
  report "$piece" "$how"
fi
flock -u 9
echo "$HOME_DIR/bin"
