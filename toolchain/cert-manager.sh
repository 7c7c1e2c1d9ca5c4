#!/usr/bin/env bash
# Builds cert-manager's controller from the github.com/cert-manager/cert-manager Go module and
# gathers its CRDs, cached outside the repo; prints the bin dir (or, with --crds, the CRD dir).
#
# Upstream's controller main (cmd/controller) is a module of its own that the proxy does not
# serve, so the binary is our small main (toolchain/go/cert-manager) over the module's library
# packages: upstream's controllers, our wiring (its header says what it leaves out). It is
# rebuilt when that Go changes: a hash of it is kept in the .complete stamp.
# The CRDs are the module's deploy/crds: plain YAML from controller-gen, whose specs are the
# Helm chart's CRD templates without the chart's labels and `helm.sh/resource-policy` (checked
# for v1.21.2), so they are copied as they are.
#
# Usage:
#   toolchain/cert-manager.sh                  build what is missing (progress on stderr), print the bin dir
#   toolchain/cert-manager.sh --crds           the same, then print the CRD dir instead
#   toolchain/cert-manager.sh --write-src DIR  write our module into DIR/cert-manager as it is built
#                                              (go.mod given versions.env's version; builds nothing)
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source-path=SCRIPTDIR source=versions.sh
source "$HERE/versions.sh" CERT_MANAGER_VERSION
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$HERE/lib.sh"

MODULE=github.com/cert-manager/cert-manager
CACHE=${MESH_TOOLCHAIN_CACHE:-$HOME/.cache/mesh-toolchain}
HOME_DIR=$CACHE/cert-manager-v$CERT_MANAGER_VERSION
export GOMODCACHE=$CACHE/go/mod GOCACHE=$CACHE/go/build
export GOTOOLCHAIN=local GOFLAGS="-mod=mod -buildvcs=false" CGO_ENABLED=0

log() { echo "cert-manager.sh: $*" >&2; }

write_src() { # write_src DIR: toolchain/go/cert-manager, its go.mod requiring the pinned module
  cp -r "$HERE/go/cert-manager/." "$1/"
  (cd "$1" && go mod edit -require="$MODULE@v$CERT_MANAGER_VERSION")
}

build() {
  local stage=$HOME_DIR.building started=$SECONDS module_dir
  log "building the cert-manager controller v$CERT_MANAGER_VERSION into $HOME_DIR (cold: a few minutes)"
  rm -rf "$stage" && mkdir -p "$stage/src" "$stage/bin" "$stage/crds"
  write_src "$stage/src"
  # tidy resolves the graph from cert-manager's own go.mod (MVS keeps its versions). Packages
  # we do not import are not needed, so github.com/Venafi/vcert/v5 (403 on the proxy) is not.
  (cd "$stage/src" && go mod tidy \
    && go build -trimpath -o "$stage/bin/cert-manager-controller" \
      -ldflags "-s -w -X $MODULE/pkg/util.AppVersion=v$CERT_MANAGER_VERSION" .)
  module_dir=$(go mod download -json "$MODULE@v$CERT_MANAGER_VERSION" | sed -n 's/^\s*"Dir": "\(.*\)",\?$/\1/p')
  [[ -d $module_dir/deploy/crds ]] || { log "no deploy/crds in $MODULE@v$CERT_MANAGER_VERSION"; exit 1; }
  cp "$module_dir"/deploy/crds/*.yaml "$stage/crds/" && chmod -R u+w "$stage/crds"
  go_source_hash cert-manager >"$stage/.complete"
  rm -rf "$HOME_DIR" && mv "$stage" "$HOME_DIR"
  log "built in $((SECONDS - started)) s"
}

case ${1:-} in
  --write-src) mkdir -p "${2:?--write-src needs a folder}/cert-manager"; write_src "$2/cert-manager"; exit 0 ;;
  ""|--crds) ;;
  *) log "unknown argument: $1 (see the usage at the top of $0)"; exit 2 ;;
esac

mkdir -p "$CACHE"
exec 9>"$CACHE/.cert-manager.lock"
flock 9   # one builder at a time; a second caller waits and then finds the cache filled
# cert-manager ships its controller only as a container image: always built.
piece="cert-manager controller v$CERT_MANAGER_VERSION"
how="built from Go modules ($MODULE@v$CERT_MANAGER_VERSION, our main in toolchain/go/cert-manager)"
if [[ "$(cat "$HOME_DIR/.complete" 2>/dev/null)" == "$(go_source_hash cert-manager)" ]]; then
  report "$piece" "$how (cached)"
else
  need_go "$piece"
  (build)
  report "$piece" "$how"
fi
flock -u 9
if [[ ${1:-} == --crds ]]; then echo "$HOME_DIR/crds"; else echo "$HOME_DIR/bin"; fi
