"""Where the lab finds the binaries it runs: the scripts under toolchain/ build them once
(pinned in toolchain/versions.env) and print their folders; PATH is the fallback for a checkout
without those scripts."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
KUBERNETES = ("etcd", "kube-apiserver", "kube-controller-manager")
ISTIO = ("pilot-discovery", "istioctl", "pilot-agent", "install-cni", "istio-cni")
CERT_MANAGER = ("cert-manager-controller",)
KUBELET_API = ("lab-kubelet-api",)
SAIL_OPERATOR = "sail-operator"


VERSIONS = REPO / "toolchain" / "versions.env"


def versions() -> dict[str, str]:
    """toolchain/versions.env, read as toolchain/versions.sh reads it: KEY=value lines, `#`
    comment lines, nothing quoted."""
    found = {}
    for line in VERSIONS.read_text(encoding="utf-8").splitlines():
        if line and not line.startswith("#"):
            key, separator, value = line.partition("=")
            if not separator or not key.isidentifier() or not value or value != value.strip():
                raise ValueError(f"{VERSIONS}: not a KEY=value line: {line!r}")
            found[key] = value
    return found


def _script_dirs(script: str, *args: str) -> list[str]:
    """The folders a toolchain script prints (building what is missing first), or none when the
    checkout has no such script."""
    path = REPO / "toolchain" / script
    if not path.exists():
        return []
    # stderr passes through: a cold build takes minutes and should say so.
    return subprocess.run([str(path), *args], check=True, stdout=subprocess.PIPE, text=True).stdout.split()


def _find(script: str, names: tuple[str, ...]) -> dict[str, str]:
    dirs = _script_dirs(script)
    search = os.pathsep.join(dirs + [os.environ.get("PATH", "")])
    found = {name: shutil.which(name, path=search) for name in names}
    missing = [n for n, p in found.items() if not p]
    if missing:
        raise RuntimeError(f"not found: {', '.join(missing)}; run toolchain/{script}")
    return found  # type: ignore[return-value]


def kubernetes_binaries() -> dict[str, str]:
    """etcd, kube-apiserver, kube-controller-manager (toolchain/kubernetes.sh)."""
    return _find("kubernetes.sh", KUBERNETES)


def istio_binaries() -> dict[str, str]:
    """Istio's pilot-discovery (istiod), istioctl, pilot-agent, install-cni and the istio-cni
    plugin (toolchain/istio.sh)."""
    return _find("istio.sh", ISTIO)


def istio_proxy_files() -> dict[str, Path]:
    """What Istio's proxyv2 image holds beside pilot-agent and Envoy, by its path in the image
    (toolchain/istio.sh gathers it from the Istio module: Envoy's bootstrap template)."""
    dirs = _script_dirs("istio.sh")
    if not dirs:
        raise RuntimeError("Istio's proxy files come from toolchain/istio.sh, which this checkout lacks")
    image = Path(dirs[0]).parent / "proxyv2"
    return {str(f.relative_to(image)): f for f in sorted(image.rglob("*")) if f.is_file()}


def cert_manager_binaries() -> dict[str, str]:
    """cert-manager's controller: our main over the cert-manager module's controllers
    (toolchain/cert-manager.sh)."""
    return _find("cert-manager.sh", CERT_MANAGER)


def kubelet_api_binaries() -> dict[str, str]:
    """The lab node's kubelet HTTPS API (exec and logs): our main over virtual-kubelet's node/api
    (toolchain/kubelet-api.sh)."""
    return _find("kubelet-api.sh", KUBELET_API)


def sail_operator_binary() -> str:
    """The Sail operator's manager (toolchain/sail-operator.sh builds it beside its source:
    `<source>/../bin/sail-operator`); PATH is the fallback."""
    dirs = _script_dirs("sail-operator.sh")
    candidates = [str(Path(d).parent / "bin") for d in dirs]
    found = shutil.which(SAIL_OPERATOR, path=os.pathsep.join(candidates + [os.environ.get("PATH", "")]))
    if not found:
        raise RuntimeError(f"not found: {SAIL_OPERATOR}; run toolchain/sail-operator.sh")
    return found


def cert_manager_crds() -> Path:
    """The folder of cert-manager's CRDs (the module's deploy/crds, as toolchain/cert-manager.sh
    gathers them)."""
    dirs = _script_dirs("cert-manager.sh", "--crds")
    if not dirs:
        raise RuntimeError("cert-manager's CRDs come from toolchain/cert-manager.sh, which this checkout lacks")
    return Path(dirs[0])
