#!/usr/bin/env bash
# Fetches github.com/openshift/api from the Go module proxy and gathers the CRDs of OpenShift's
# default feature set (its zz_generated.crd-manifests, without the TechPreview, DevPreview,
# CustomNoUpgrade and OKD variants) into one folder, cached per version; prints that folder.
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source-path=SCRIPTDIR source=versions.sh
source "$HERE/versions.sh" OPENSHIFT_API_VERSION
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$HERE/lib.sh"
CACHE=${MESH_TOOLCHAIN_CACHE:-$HOME/.cache/mesh-toolchain}
OUT=$CACHE/openshift-api-$OPENSHIFT_API_VERSION/crds
how="from the Go module proxy (github.com/openshift/api@$OPENSHIFT_API_VERSION, go mod download)"
if [ -f "$OUT/.complete" ]; then
  report "OpenShift CRDs" "$how (cached)"
else
  need_go "OpenShift's CRD folder (go mod download of github.com/openshift/api)"
  module=$(GOMODCACHE=$CACHE/go/mod GOTOOLCHAIN=local GOFLAGS=-mod=mod \
    go mod download -json "github.com/openshift/api@$OPENSHIFT_API_VERSION" | sed -n 's/^\t"Dir": "\(.*\)",$/\1/p')
  [ -d "$module" ] || { echo "openshift-crds.sh: github.com/openshift/api@$OPENSHIFT_API_VERSION not downloaded" >&2; exit 1; }
  rm -rf "$OUT" && mkdir -p "$OUT"
  find "$module" -path '*zz_generated.crd-manifests*' -name '*.crd.yaml' \
    | grep -v -E -- '-(TechPreviewNoUpgrade|DevPreviewNoUpgrade|CustomNoUpgrade|OKD)\.crd\.yaml$' \
    | while read -r file; do
        # Several API groups use the same file names: keep <group folder>-<version>- in the name.
        version_dir=$(dirname "$(dirname "$file")")
        cp "$file" "$OUT/$(basename "$(dirname "$version_dir")")-$(basename "$version_dir")-$(basename "$file")"
      done
  touch "$OUT/.complete"
  report "OpenShift CRDs" "$how"
fi
echo "$OUT"
