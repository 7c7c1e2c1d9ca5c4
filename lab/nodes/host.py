"""The lab node's own file system, as its pods' `hostPath` volumes see it, and how a container is
given its mounts.

A real node has a root file system of its own; the lab's nodes share this host's, so each node
gets a folder that stands for its root (`<lab>/<cluster>/host`): `hostPath: /etc/cni/net.d` of a
pod on `east-node` is `<lab>/east/host/etc/cni/net.d`. Two exceptions are this host's own, because
on the lab's node they are the same thing: `/proc` (the node's processes are this host's
processes) and `/dev`.

What the node puts there itself, as a node's network set-up would: the primary CNI network's
config in `/etc/cni/net.d` (`10-lab.conflist`), the file a chained CNI plugin such as Istio's
`install-cni` waits for and appends itself to. It describes the network lab/network/namespaces.py
builds for the node's pods (a bridge, addresses from the node's pod range); the lab does not call
CNI plugins when it starts a pod (it wires the pod itself), so a chained plugin is installed, as on
any node, but not invoked.

Mounts: each container runs in a mount namespace of its own (`ip netns exec` makes one, and keeps
its mounts from reaching this host), so its `hostPath` volumes are bind mounts made there, over the
mount path under the pod's root. A program that expects the image's file system at `/` (a static
binary with absolute paths, such as `install-cni`) is started with the pod's root as its root
(chroot): there it finds the image's files, its volumes and its host mounts where the container
would.
"""

from __future__ import annotations

import ipaddress
import json
import shlex
from dataclasses import dataclass
from pathlib import Path

# Paths a hostPath volume reaches on this host itself, not under the node's folder.
SHARED_WITH_THIS_HOST = ("/proc", "/dev")
PRIMARY_CNI_CONFIG = "10-lab.conflist"


@dataclass(frozen=True)
class NodeHost:
    """One node's root folder (`<lab>/<cluster>/host`)."""

    root: Path

    def path(self, host_path: str) -> Path:
        """Where `hostPath.path` of a pod on this node is."""
        clean = "/" + host_path.strip("/")
        if any(clean == p or clean.startswith(p + "/") for p in SHARED_WITH_THIS_HOST):
            return Path(clean)
        return self.root / clean.lstrip("/")

    def write_primary_cni_config(self, network_name: str, bridge: str, pod_cidr: str) -> Path:
        """The node's primary CNI network config (what a cluster's network add-on writes)."""
        folder = self.path("/etc/cni/net.d")
        folder.mkdir(parents=True, exist_ok=True)
        gateway = str(next(ipaddress.ip_network(pod_cidr).hosts()))
        config = {
            "cniVersion": "1.0.0",
            "name": network_name,
            "plugins": [
                {
                    "type": "bridge",
                    "bridge": bridge,
                    "isGateway": True,
                    "ipam": {"type": "host-local", "ranges": [[{"subnet": pod_cidr, "gateway": gateway}]]},
                }
            ],
        }
        path = folder / PRIMARY_CNI_CONFIG
        if not path.exists():  # a chained plugin rewrites it: never take that back
            path.write_text(json.dumps(config, indent=2) + "\n")
        return path


@dataclass(frozen=True)
class Mount:
    source: Path
    target: str  # the container's path
    read_only: bool = False


def container_command(
    root: Path, mounts: list[Mount], command: list[str], uid: int, gid: int, chroot: bool
) -> list[str]:
    """The command, run inside the container's mount namespace as root, that becomes the
    container's process as `uid:gid`: setpriv alone, or (host mounts to make, or `chroot`: the
    pod's root as `/`) a shell that makes the mounts first (same pid: `exec`)."""
    setpriv = ["setpriv", f"--reuid={uid}", f"--regid={gid}", "--clear-groups", "--"]
    if not mounts and not chroot:
        return [*setpriv, *command]
    steps = []
    for m in mounts:
        target = shlex.quote(str(root / m.target.lstrip("/")))
        steps.append(f"mount --rbind {shlex.quote(str(m.source))} {target}")
        if m.read_only:
            steps.append(f"mount -o remount,bind,ro {target}")
    if chroot:
        steps.append(f'exec chroot --userspec={uid}:{gid} {shlex.quote(str(root))} "$@"')
    else:
        steps.append(f'exec {shlex.join(setpriv)} "$@"')
    return ["sh", "-ec", "\n".join(steps), "container", *command]
