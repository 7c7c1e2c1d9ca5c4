#!/usr/bin/env bash
# Builds the lab node's kubelet HTTPS API (exec and logs: what the kube-apiserver calls for
# `kubectl exec` and `kubectl logs`) from the github.com/virtual-kubelet/virtual-kubelet Go
# module, cached outside the repo; prints the bin dir.
#
# The binary, lab-kubelet-api, is our small main (toolchain/go/kubelet-api) over the module's
# node/api package: virtual-kubelet's streaming handlers, our exec and log readers over the
# node agent's pod.json files (its header says what it serves and what of the kubelet it does
# not). It is rebuilt when that Go changes: a hash of it is kept in the .complete stamp.
#
# Usage:
#   toolchain/kubelet-api.sh                  build what is missing (progress on stderr), print the bin dir
#   toolchain/kubelet-api.sh --write-src DIR  write our module into DIR/kubelet-api as it is built
#                                             (go.mod given versions.env's version; builds nothing)
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source-path=SCRIPTDIR source=versions.sh
source "$HERE/versions.sh" VIRTUAL_KUBELET_VERSION
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$HERE/lib.sh"

MODULE=github.com/virtual-kubelet/virtual-kubelet
CACHE=${MESH_TOOLCHAIN_CACHE:-$HOME/.cache/mesh-toolchain}
HOME_DIR=$CACHE/kubelet-api-v$VIRTUAL_KUBELET_VERSION
export GOMODCACHE=$CACHE/go/mod GOCACHE=$CACHE/go/build
export GOTOOLCHAIN=local GOFLAGS="-mod=mod -buildvcs=false" CGO_ENABLED=0

log() { echo "kubelet-api.sh: $*" >&2; }

write_src() { # write_src DIR: toolchain/go/kubelet-api, its go.mod requiring the pinned module
  cp -r "$HERE/go/kubelet-api/." "$1/"
  (cd "$1" && go mod edit -require="$MODULE@v$VIRTUAL_KUBELET_VERSION")
}

build() {
  local stage=$HOME_DIR.building started=$SECONDS
  log "building the lab kubelet API (virtual-kubelet v$VIRTUAL_KUBELET_VERSION) into $HOME_DIR (cold: a few minutes)"
  rm -rf "$stage" && mkdir -p "$stage/src" "$stage/bin"
  write_src "$stage/src"
  # tidy resolves the graph from virtual-kubelet's own go.mod (MVS keeps its versions).
  (cd "$stage/src" && go mod tidy \
    && go build -trimpath -o "$stage/bin/lab-kubelet-api" -ldflags "-s -w" .)
  go_source_hash kubelet-api >"$stage/.complete"
  rm -rf "$HOME_DIR" && mv "$stage" "$HOME_DIR"
  log "built in $((SECONDS - started)) s"
}

case ${1:-} in
  --write-src) mkdir -p "${2:?--write-src needs a folder}/kubelet-api"; write_src "$2/kubelet-api"; exit 0 ;;
  "") ;;
  *) log "unknown argument: $1 (see the usage at the top of $0)"; exit 2 ;;
esac

mkdir -p "$CACHE"
exec 9>"$CACHE/.kubelet-api.lock"
flock 9   # one builder at a time; a second caller waits and then finds the cache filled
# Ours over virtual-kubelet's library: nothing to download, always built.
piece="lab kubelet API (virtual-kubelet v$VIRTUAL_KUBELET_VERSION)"
how="built from Go modules ($MODULE@v$VIRTUAL_KUBELET_VERSION, our main in toolchain/go/kubelet-api)"
if [[ "$(cat "$HOME_DIR/.complete" 2>/dev/null)" == "$(go_source_hash kubelet-api)" ]]; then
  report "$piece" "$how (cached)"
else
  need_go "$piece"
  (build)
  report "$piece" "$how"
fi
flock -u 9
echo "$HOME_DIR/bin"
