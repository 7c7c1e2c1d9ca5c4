#!/usr/bin/env bash
# The Sail operator (OpenShift Service Mesh 3's upstream) at the pinned commit
# (SAIL_OPERATOR_COMMIT): its source, and its manager built from it, cached per commit. Prints the
# source folder; the binary is bin/sail-operator beside it (../bin). The lab's CRDs are the
# source's chart/crds (the Sail and Istio CRDs of that commit).
#
# The source comes from its public home (git fetch of the commit from
# github.com/istio-ecosystem/sail-operator: git checks the content against the commit's hash)
# where that answers; else from the unmodified snapshot of the same commit beside the checkout
# (../shared/upstream/sail-operator, or $MESH_UPSTREAM_DIR/sail-operator), on machines that reach
# package registries only. The Go module proxy does not serve this module (403).
#
# The build takes the modules the source's go.mod pins; where the proxy refuses one of them (here:
# istio.io/istio, istio.io/client-go, istio.io/api and github.com/openshift/api at the commit's
# pseudo-versions), the served neighbour on the same track replaces it (SAIL_OPERATOR_REPLACES:
# the istio.io/istio one is the version toolchain/istio.sh builds; upstream's envtest suite passes
# with them), and the `toolchain:` line says so.
#
# Usage: toolchain/sail-operator.sh [--source-only]
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source-path=SCRIPTDIR source=versions.sh
source "$HERE/versions.sh" SAIL_OPERATOR_COMMIT SAIL_OPERATOR_REPLACES
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$HERE/lib.sh"
CACHE=${MESH_TOOLCHAIN_CACHE:-$HOME/.cache/mesh-toolchain}
SHORT=${SAIL_OPERATOR_COMMIT:0:9}
HOME_DIR=$CACHE/sail-operator-$SHORT
OUT=$HOME_DIR/src
HOME_URL=${MESH_SAIL_OPERATOR_URL:-https://github.com/istio-ecosystem/sail-operator}
SNAPSHOT=${MESH_UPSTREAM_DIR:-$HERE/../../shared/upstream}/sail-operator/sail-operator-$SHORT.tar.gz

get_source() {
  rm -rf "$OUT" && mkdir -p "$OUT"
  local why='' out='' rc=0
  if ! command -v git >/dev/null; then
    why="git not found"
  elif ! git -C "$OUT" init -q; then
    why="git init failed"
  elif ! out=$(timeout 300 git -C "$OUT" -c http.lowSpeedLimit=1000 -c http.lowSpeedTime=20 \
    fetch -q --depth 1 "$HOME_URL" "$SAIL_OPERATOR_COMMIT" 2>&1); then
    rc=$?
    why="git fetch of the commit failed (exit $rc${out:+: $out})"
    ((rc == 124)) && why="git fetch of the commit took more than 300 s"
  elif ! out=$(git -C "$OUT" checkout -q FETCH_HEAD 2>&1); then
    why="git checkout of the fetched commit failed: $out"
  fi
  if [[ -z $why ]]; then
    rm -rf "$OUT/.git"
    how="from its public home ($HOME_URL, commit $SAIL_OPERATOR_COMMIT)"
  else
    why=${why//$'\n'/ }
    rm -rf "$OUT" && mkdir -p "$OUT"
    if [ ! -f "$SNAPSHOT" ]; then
      echo "sail-operator.sh: $HOME_URL cannot be had (${why:0:300}) and there is no snapshot at $SNAPSHOT" >&2
      exit 1
    fi
    tar -xzf "$SNAPSHOT" -C "$OUT" --strip-components=1
    how="from the snapshot of commit $SHORT beside the checkout (its public home failed: ${why:0:200})"
  fi
  [ -d "$OUT/chart/crds" ] || { echo "sail-operator.sh: $OUT has no chart/crds" >&2; exit 1; }
  write_origin "$OUT" "$how"
  touch "$OUT/.complete"
}

build_manager() {
  # The operator's own build (Makefile: CGO_ENABLED=0 go build ./cmd/), in a copy of the source.
  local stage=$HOME_DIR/build started=$SECONDS replaced=() pin module
  export GOMODCACHE=$CACHE/go/mod GOCACHE=$CACHE/go/build GOTOOLCHAIN=local GOFLAGS="-mod=mod -buildvcs=false" CGO_ENABLED=0
  rm -rf "$stage" && cp -r "$OUT" "$stage"
  local out
  for pin in ${SAIL_OPERATOR_REPLACES//,/ }; do
    module=${pin%@*}
    # Its pin, from go.mod as written (resolving the graph would fetch the refused ones).
    if ! out=$(cd "$stage" && go mod download "$module@$(awk -v m="$module" '$1 == m { print $2; exit }' go.mod)" 2>&1); then
      # Only a refusal is replaced; a network failure must not be built (and cached) as one.
      if [[ $out != *403* && $out != *410* && $out != *"not available"* ]]; then
        echo "sail-operator.sh: go mod download of $module failed: $out" >&2
        exit 1
      fi
      (cd "$stage" && go mod edit -replace "$module=$pin")
      replaced+=("$pin")
    fi
  done
  echo "sail-operator.sh: building the Sail operator $SHORT (cold: several minutes)" >&2
  (cd "$stage" && go build -trimpath -ldflags "-s -w" -o "$HOME_DIR/bin/sail-operator" ./cmd/)
  rm -rf "$stage"
  if ((${#replaced[@]})); then
    built="built from its source with Go modules (the proxy refuses its pins of ${replaced[*]%@*}: their served neighbours ${replaced[*]})"
  else
    built="built from its source with Go modules (its own pins)"
  fi
  echo "$built" >"$HOME_DIR/bin/.origin"
  echo "$SAIL_OPERATOR_REPLACES" >"$HOME_DIR/bin/.replaces"
  echo "sail-operator.sh: built in $((SECONDS - started)) s" >&2
}

mkdir -p "$CACHE"
exec 9>"$CACHE/.sail-operator.lock"
flock 9
if [ -f "$OUT/.complete" ]; then
  report "Sail operator source $SHORT" "$(origin_of "$OUT") (cached)"
else
  get_source
  report "Sail operator source $SHORT" "$how"
fi
if [[ ${1:-} != --source-only ]]; then
  # Built with the same replaces (versions.env may name other neighbours later): reused.
  if [ -x "$HOME_DIR/bin/sail-operator" ] && [[ "$(cat "$HOME_DIR/bin/.replaces" 2>/dev/null)" == "$SAIL_OPERATOR_REPLACES" ]]; then
    report "Sail operator $SHORT" "$(cat "$HOME_DIR/bin/.origin") (cached)"
  else
    need_go "the Sail operator $SHORT"
    build_manager
    report "Sail operator $SHORT" "$built"
  fi
fi
flock -u 9
echo "$OUT"
