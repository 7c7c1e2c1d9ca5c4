#!/usr/bin/env bash
# Provides the tools the lab and the integration tests run, at the pinned versions, and links
# them into the virtualenv: the Pulumi CLI, language host and provider plugins; kube-apiserver,
# kube-controller-manager, kubectl and etcd; Istio's pilot-discovery (istiod) and istioctl;
# actionlint; OpenShift's CRD manifests for the benchmark.
#
# The official installers download from sites this machine cannot reach, so each piece is
# built from Go modules into ${MESH_TOOLCHAIN_CACHE:-~/.cache/mesh-toolchain}, one folder per
# tool and version, and reused from there. The first build takes tens of minutes (README);
# later runs take seconds.
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
VENV=${1:?usage: toolchain/install.sh VENV_DIR}

link_dir() {  # link every executable of $1 into the venv's bin
  local f
  for f in "$1"/*; do
    [ -x "$f" ] && [ -f "$f" ] && ln -sfn "$f" "$VENV/bin/$(basename "$f")"
  done
  return 0
}

for dir in $(bash "$HERE/kubernetes.sh"); do link_dir "$dir"; done
link_dir "$(bash "$HERE/actionlint.sh")"
link_dir "$(bash "$HERE/istio.sh")"
link_dir "$(bash "$HERE/cert-manager.sh")"  # cert-manager's controller (the lab runs one per cluster)
# OpenShift's CRDs, for the benchmark's API servers of OpenShift size (bench/).
ln -sfn "$(bash "$HERE/openshift-crds.sh")" "$VENV/openshift-crds"

# pulumi.sh prints `export PATH=...` and `export PULUMI_HOME=...` once everything is built.
eval "$(bash "$HERE/pulumi.sh" --print-env)"
IFS=: read -r -a path_dirs <<< "$PATH"
for dir in "${path_dirs[@]}"; do
  case "$dir" in "${MESH_TOOLCHAIN_CACHE:-$HOME/.cache/mesh-toolchain}"/*) link_dir "$dir" ;; esac
done
ln -sfn "$PULUMI_HOME" "$VENV/pulumi-home"
"$VENV/bin/pulumi" version >&2
