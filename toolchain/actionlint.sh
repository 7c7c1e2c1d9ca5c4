#!/usr/bin/env bash
# Builds actionlint (the GitHub workflow linter) from its Go module, cached outside the repo,
# and prints its bin dir.
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source-path=SCRIPTDIR source=versions.sh
source "$HERE/versions.sh" ACTIONLINT_VERSION
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$HERE/lib.sh"
CACHE=${MESH_TOOLCHAIN_CACHE:-$HOME/.cache/mesh-toolchain}
BIN=$CACHE/actionlint-v$ACTIONLINT_VERSION/bin
how="built from Go modules (go install github.com/rhysd/actionlint/cmd/actionlint@v$ACTIONLINT_VERSION)"
if [ -x "$BIN/actionlint" ]; then
  report "actionlint v$ACTIONLINT_VERSION" "$how (cached)"
else
  need_go "actionlint v$ACTIONLINT_VERSION"
  GOBIN=$BIN GOMODCACHE=$CACHE/go/mod GOCACHE=$CACHE/go/build GOTOOLCHAIN=local \
    go install "github.com/rhysd/actionlint/cmd/actionlint@v$ACTIONLINT_VERSION" >&2
  report "actionlint v$ACTIONLINT_VERSION" "$how"
fi
echo "$BIN"
