#!/usr/bin/env bash
# Provides the tools the lab and the integration tests run, at the pinned versions, and links
# them into the virtualenv: the Pulumi CLI, language host and provider plugins; kube-apiserver,
# kube-controller-manager, kubectl and etcd; Istio's pilot-discovery (istiod) and istioctl;
# actionlint; OpenShift's CRD manifests for the benchmark.
#
# Each piece is taken, in this order, from what the machine has (an official pulumi on PATH),
# from its official download (Pulumi's plugin acquisition; dl.k8s.io and etcd's GitHub release,
# checksums verified), or else built from Go modules: a machine that reaches package registries
# only builds everything. What is got is cached in ${MESH_TOOLCHAIN_CACHE:-~/.cache/mesh-toolchain},
# one folder per tool and version, and reused from there; the first build takes tens of minutes
# (docs/toolchain.md), later runs seconds. Each piece's way is reported on stderr (`toolchain: ...`).
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# Every piece says how it was got, also one the cache already has (lib.sh: report).
export MESH_TOOLCHAIN_REPORT=all
VENV=${1:?usage: toolchain/install.sh VENV_DIR}

link_dir() {  # link_dir DIR [PREFIX]: link every executable of DIR (named PREFIX*) into the venv's bin
  local f
  # A script that failed inside $(...) hands over no folder, and set -e does not see it: stop
  # here rather than link whatever "/" holds.
  [[ -n $1 && -d $1 ]] || { echo "install.sh: a toolchain script gave no folder (${1:-nothing}); see above" >&2; exit 1; }
  for f in "$1/${2:-}"*; do
    [ -x "$f" ] && [ -f "$f" ] && ln -sfn "$f" "$VENV/bin/$(basename "$f")"
  done
  return 0
}

for dir in $(bash "$HERE/kubernetes.sh"); do link_dir "$dir"; done
link_dir "$(bash "$HERE/actionlint.sh")"
link_dir "$(bash "$HERE/istio.sh")"
link_dir "$(bash "$HERE/cert-manager.sh")"  # cert-manager's controller (the lab runs one per cluster)
link_dir "$(bash "$HERE/kubelet-api.sh")"  # the lab node's kubelet HTTPS API (exec and logs; virtual-kubelet's node/api)
# The Sail operator (the lab runs one per cluster), built from its source at the pinned commit; the
# Sail and Istio CRDs the lab installs are that source's chart/crds.
sail=$(bash "$HERE/sail-operator.sh")
link_dir "$sail/../bin"
ln -sfn "$sail/chart/crds" "$VENV/crds"
# OpenShift's CRDs, for the benchmark's API servers of OpenShift size (bench/).
ln -sfn "$(bash "$HERE/openshift-crds.sh")" "$VENV/openshift-crds"

# pulumi.sh prints `export PATH="DIRS:$PATH"; export PULUMI_HOME=...`: DIRS are the CLI's
# (official or built) and the built plugins' only, so link exactly those. The official CLI's
# folder may be a shared one (/usr/local/bin): only its pulumi* files.
path_before=$PATH
eval "$(bash "$HERE/pulumi.sh" --print-env)"
added=${PATH%"$path_before"}
# Links of an earlier run go first: a plugin now downloaded into PULUMI_HOME, found there by its
# exact version, must not stay on PATH, where the engine would prefer it.
find "$VENV/bin" -maxdepth 1 -type l -name 'pulumi*' -delete
IFS=: read -r -a path_dirs <<< "${added%:}"
for dir in "${path_dirs[@]}"; do link_dir "$dir" pulumi; done
ln -sfn "$PULUMI_HOME" "$VENV/pulumi-home"
"$VENV/bin/pulumi" version >&2
