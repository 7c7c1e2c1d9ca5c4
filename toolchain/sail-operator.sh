#!/usr/bin/env bash
# The Sail operator's source at the pinned commit (SAIL_OPERATOR_COMMIT), cached per commit; prints
# its folder. The lab's CRDs are its chart/crds (the Sail and Istio CRDs of that commit).
#
# From its public home (git fetch of the commit from github.com/istio-ecosystem/sail-operator: git
# checks the content against the commit's hash) where that answers; else from the unmodified
# snapshot of the same commit beside the checkout (../shared/upstream/sail-operator, or
# $MESH_UPSTREAM_DIR/sail-operator), on machines that reach package registries only. The Go module
# proxy does not serve this module (403).
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source-path=SCRIPTDIR source=versions.sh
source "$HERE/versions.sh" SAIL_OPERATOR_COMMIT
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$HERE/lib.sh"
CACHE=${MESH_TOOLCHAIN_CACHE:-$HOME/.cache/mesh-toolchain}
SHORT=${SAIL_OPERATOR_COMMIT:0:9}
OUT=$CACHE/sail-operator-$SHORT/src
HOME_URL=${MESH_SAIL_OPERATOR_URL:-https://github.com/istio-ecosystem/sail-operator}
SNAPSHOT=${MESH_UPSTREAM_DIR:-$HERE/../../shared/upstream}/sail-operator/sail-operator-$SHORT.tar.gz

if [ -f "$OUT/.complete" ]; then
  report "Sail operator source $SHORT" "$(origin_of "$OUT") (cached)"
  echo "$OUT"
  exit 0
fi
rm -rf "$OUT" && mkdir -p "$OUT"
why=
if command -v git >/dev/null \
  && git -C "$OUT" init -q \
  && out=$(timeout 300 git -C "$OUT" -c http.lowSpeedLimit=1000 -c http.lowSpeedTime=20 \
    fetch -q --depth 1 "$HOME_URL" "$SAIL_OPERATOR_COMMIT" 2>&1) \
  && git -C "$OUT" checkout -q FETCH_HEAD; then
  rm -rf "$OUT/.git"
  how="from its public home ($HOME_URL, commit $SAIL_OPERATOR_COMMIT)"
else
  why=${out:-git not found}
  why=${why//$'\n'/ }
  rm -rf "$OUT" && mkdir -p "$OUT"
  if [ ! -f "$SNAPSHOT" ]; then
    echo "sail-operator.sh: $HOME_URL cannot be had (${why:0:300}) and there is no snapshot at $SNAPSHOT" >&2
    exit 1
  fi
  tar -xzf "$SNAPSHOT" -C "$OUT" --strip-components=1
  how="from the snapshot of commit $SHORT beside the checkout ($(host_of "$HOME_URL") unreachable: ${why:0:160})"
fi
[ -d "$OUT/chart/crds" ] || { echo "sail-operator.sh: $OUT has no chart/crds" >&2; exit 1; }
write_origin "$OUT" "$how"
touch "$OUT/.complete"
report "Sail operator source $SHORT" "$how"
echo "$OUT"
