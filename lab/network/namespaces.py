"""The lab's network: each cluster a network of its own, and nothing between them but load balancers.

Every address below lives in network namespaces this module makes (and in the one veth end it
gives the host, so the host can reach them); nothing is routed off the machine. A lab takes a
block 10.B.0.0/16 that no other lab on this host uses (B is recorded in lab.json), and names
every namespace and host interface after it (`ml<B>-...`), so two labs never meet and `down`
finds everything of its own.

    host (API servers, kubectl, pulumi, tests: the operator's machine)
      | veth ml<B>h 10.B.255.1/30 -- host 10.B.255.2/30; route 10.B.0.0/16 via 10.B.255.2
    ml<B>-wan: the network between the clusters; routes to every pod network, forwards only
      |   replies, anything from the host, and connections to a load balancer's address from a
      |   source its Service admits (`loadBalancerSourceRanges`; cloud load balancers drop others)
      | veth n<i> 10.B.254.(4i+1)/30 -- wan 10.B.254.(4i+2)/30: the node's address
    ml<B>-n<i>: the node of cluster i: bridge cbr0 10.B.(i+1).1/24 for its pods; what pods send
      |   out is masqueraded to the node's address, the cluster's egress address (`egressCidrs`)
      | veth per pod, eth0 10.B.(i+1).n/24 in the pod's namespace ml<B>-n<i>-p<n>
    pods

So a pod of one cluster reaches a pod IP of another only through that cluster's east-west
gateway's load-balancer address: a broken gateway or a wrong network label shows.
Load-balancer addresses are 10.B.253.n, translated in ml<B>-wan to the Service's ready pods
(lab/network/loadbalancer.py keeps that translation; `set_load_balancers` here writes it).

Needs root (network namespaces, veth pairs, iptables); `ip` (iproute2) and iptables.
"""

from __future__ import annotations

import fcntl
import ipaddress
import json
import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Mapping, Sequence

NETNS_DIR = Path("/run/netns")
# `ip netns exec NAME` bind-mounts each file of /etc/netns/NAME over /etc (resolv.conf, hosts):
# how a pod's DNS configuration reaches its processes.
ETC_NETNS = Path("/etc/netns")
LOCK = Path("/run/lock/mesh-lab-network.lock")
BLOCKS = range(100, 250)  # 10.B.0.0/16 for B in here
MAX_CLUSTERS = 63  # node links are /30s of 10.B.254.0/24
LB_THIRD_OCTET, NODE_THIRD_OCTET, HOST_THIRD_OCTET = 253, 254, 255


class NetworkError(RuntimeError):
    """A command that sets up the lab's network failed; the message has its output."""


def run(*argv: str, input: str | None = None, check: bool = True) -> str:
    done = subprocess.run(argv, input=input, capture_output=True, text=True)
    if check and done.returncode != 0:
        raise NetworkError(f"{' '.join(argv)}: {(done.stderr or done.stdout).strip()}")
    return done.stdout


def ip(*args: str, netns: str | None = None, check: bool = True) -> str:
    return run("ip", *(("-n", netns) if netns else ()), *args, check=check)


def in_netns(netns: str, *argv: str, input: str | None = None, check: bool = True) -> str:
    return run("ip", "netns", "exec", netns, *argv, input=input, check=check)


def sysctl(netns: str, key: str, value: str) -> None:
    in_netns(netns, "sysctl", "-q", "-w", f"{key}={value}")


def netns_exists(name: str) -> bool:
    return (NETNS_DIR / name).exists()


def netns_inode(name: str) -> int | None:
    try:
        return (NETNS_DIR / name).stat().st_ino
    except OSError:
        return None


def process_netns_inode(pid: int) -> int | None:
    try:
        return os.stat(f"/proc/{pid}/ns/net").st_ino
    except OSError:
        return None


def remove_netns(name: str) -> None:
    """Kill every process in the namespace, then delete it and its /etc/netns files."""
    if netns_exists(name):
        for pid in run("ip", "netns", "pids", name, check=False).split():
            try:
                os.kill(int(pid), 9)
            except (ProcessLookupError, ValueError):
                pass
        ip("netns", "delete", name, check=False)
    shutil.rmtree(ETC_NETNS / name, ignore_errors=True)


def write_etc(netns: str, files: Mapping[str, str]) -> None:
    """The namespace's own /etc files (`ip netns exec` mounts them over /etc). Written in place, not
    replaced: a process already running has the old file's inode bind-mounted."""
    folder = ETC_NETNS / netns
    folder.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        path = folder / name
        if not path.exists() or path.read_text() != text:
            with open(path, "w") as out:
                out.write(text)


@dataclass(frozen=True)
class LoadBalancer:
    """One load-balancer address: its ports, each to the ready pod IPs and target port behind it,
    and the source ranges it admits (empty: everyone)."""

    address: str
    ports: Mapping[int, tuple[Sequence[str], int]]
    source_ranges: Sequence[str] = ()


class LabNetwork:
    """The network of one lab: `block` B of 10.B.0.0/16, and its clusters in order."""

    def __init__(self, block: int, clusters: Sequence[str]):
        if block not in BLOCKS:
            raise ValueError(f"network block {block} is not one of 10.{BLOCKS.start}..{BLOCKS.stop - 1}")
        if len(clusters) > MAX_CLUSTERS:
            raise ValueError(f"at most {MAX_CLUSTERS} clusters in one lab network")
        self.block = block
        self.clusters = list(clusters)

    # -- names and addresses ---------------------------------------------------------------

    @property
    def prefix(self) -> str:
        return f"ml{self.block}"

    @property
    def wan(self) -> str:
        return f"{self.prefix}-wan"

    @property
    def host_link(self) -> str:
        return f"{self.prefix}h"

    @property
    def host_address(self) -> str:
        """The host's address on the lab network (where the API servers' calls come from)."""
        return f"10.{self.block}.{HOST_THIRD_OCTET}.1"

    @property
    def cidr(self) -> str:
        return f"10.{self.block}.0.0/16"

    def index(self, cluster: str) -> int:
        return self.clusters.index(cluster)

    def node(self, cluster: str) -> str:
        return f"{self.prefix}-n{self.index(cluster)}"

    def node_address(self, cluster: str) -> str:
        """The node's address towards the other clusters: every pod's traffic to them leaves from it."""
        return f"10.{self.block}.{NODE_THIRD_OCTET}.{4 * self.index(cluster) + 2}"

    def egress_cidrs(self, cluster: str) -> list[str]:
        return [f"{self.node_address(cluster)}/32"]

    def pod_cidr(self, cluster: str) -> ipaddress.IPv4Network:
        return ipaddress.IPv4Network(f"10.{self.block}.{self.index(cluster) + 1}.0/24")

    def pod_gateway(self, cluster: str) -> str:
        return str(self.pod_cidr(cluster).network_address + 1)

    def pod_addresses(self, cluster: str) -> Iterable[str]:
        """The addresses pods of `cluster` may get, lowest first (the gateway's excluded)."""
        return (str(a) for a in list(self.pod_cidr(cluster).hosts())[1:])

    def pod_netns(self, cluster: str, number: int) -> str:
        return f"{self.node(cluster)}-p{number}"

    def load_balancer_addresses(self) -> Iterable[str]:
        return (f"10.{self.block}.{LB_THIRD_OCTET}.{n}" for n in range(1, 255))

    def to_json(self) -> dict:
        return {"block": self.block, "clusters": self.clusters}

    @classmethod
    def from_json(cls, data: Mapping) -> "LabNetwork":
        return cls(int(data["block"]), list(data["clusters"]))

    # -- set up and tear down ------------------------------------------------------------------

    @classmethod
    def allocate(cls, clusters: Sequence[str]) -> "LabNetwork":
        """A network on a block no other lab of this host has, made at once (under a host-wide lock,
        so two labs starting together never take the same block)."""
        LOCK.parent.mkdir(parents=True, exist_ok=True)
        with open(LOCK, "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            used = {int(name[2:].split("-")[0].rstrip("h")) for name in _lab_names() if name[2:5].isdigit()}
            routes = run("ip", "-j", "route", "show").strip()
            for route in json.loads(routes or "[]"):
                dst = route.get("dst", "")
                if dst.startswith("10."):
                    used.add(int(dst.split(".")[1]))
            free = next((b for b in BLOCKS if b not in used), None)
            if free is None:
                raise NetworkError(
                    f"no free 10.B.0.0/16 block for another lab (B in {BLOCKS.start}..{BLOCKS.stop - 1})"
                )
            network = cls(free, clusters)
            network.up()
            return network

    def up(self) -> None:
        try:
            self._up()
        except BaseException:
            self.down()
            raise

    def _up(self) -> None:
        wan = self.wan
        ip("netns", "add", wan)
        ip("link", "set", "lo", "up", netns=wan)
        sysctl(wan, "net.ipv4.ip_forward", "1")
        ip("link", "add", self.host_link, "type", "veth", "peer", "name", "host", "netns", wan)
        ip("addr", "add", f"{self.host_address}/30", "dev", self.host_link)
        ip("link", "set", self.host_link, "up")
        ip("addr", "add", f"10.{self.block}.{HOST_THIRD_OCTET}.2/30", "dev", "host", netns=wan)
        ip("link", "set", "host", "up", netns=wan)
        ip("route", "add", self.cidr, "via", f"10.{self.block}.{HOST_THIRD_OCTET}.2")
        for cluster in self.clusters:
            self._node_up(cluster)
        self.set_load_balancers([])

    def _node_up(self, cluster: str) -> None:
        node, i, wan = self.node(cluster), self.index(cluster), self.wan
        link = f"n{i}"
        wan_side = f"10.{self.block}.{NODE_THIRD_OCTET}.{4 * i + 1}"
        ip("netns", "add", node)
        ip("link", "set", "lo", "up", netns=node)
        sysctl(node, "net.ipv4.ip_forward", "1")
        ip("link", "add", link, "type", "veth", "peer", "name", "wan", "netns", node, netns=wan)
        ip("addr", "add", f"{wan_side}/30", "dev", link, netns=wan)
        ip("link", "set", link, "up", netns=wan)
        ip("route", "add", str(self.pod_cidr(cluster)), "via", self.node_address(cluster), netns=wan)
        ip("addr", "add", f"{self.node_address(cluster)}/30", "dev", "wan", netns=node)
        ip("link", "set", "wan", "up", netns=node)
        ip("route", "add", "default", "via", wan_side, netns=node)
        ip("link", "add", "cbr0", "type", "bridge", netns=node)
        ip("addr", "add", f"{self.pod_gateway(cluster)}/24", "dev", "cbr0", netns=node)
        ip("link", "set", "cbr0", "up", netns=node)
        pods = str(self.pod_cidr(cluster))
        in_netns(
            node,
            "iptables-restore",
            input="*nat\n:PREROUTING ACCEPT [0:0]\n:INPUT ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n"
            ":POSTROUTING ACCEPT [0:0]\n"
            f"-A POSTROUTING -s {pods} ! -d {pods} -o wan -j MASQUERADE\nCOMMIT\n",
        )

    def down(self) -> None:
        """Remove every namespace, host interface and route of this lab's block (also those of a
        lab whose `up` died half way), killing what runs in them."""
        for name in _lab_names():
            if name == self.prefix or name.startswith(self.prefix + "-"):
                remove_netns(name)
        ip("link", "delete", self.host_link, check=False)  # takes its route along
        for folder in ETC_NETNS.glob(f"{self.prefix}-*"):
            shutil.rmtree(folder, ignore_errors=True)

    # -- pods --------------------------------------------------------------------------------------

    def add_pod(self, cluster: str, netns: str, address: str) -> None:
        """A pod's namespace on the node's bridge with `address`, default route via the node."""
        node = self.node(cluster)
        remove_netns(netns)
        host_side = "v" + netns.rsplit("-p", 1)[1]
        ip("link", "delete", host_side, netns=node, check=False)
        ip("netns", "add", netns)
        ip("link", "set", "lo", "up", netns=netns)
        ip("link", "add", host_side, "type", "veth", "peer", "name", "eth0", "netns", netns, netns=node)
        ip("link", "set", host_side, "master", "cbr0", "up", netns=node)
        ip("addr", "add", f"{address}/{self.pod_cidr(cluster).prefixlen}", "dev", "eth0", netns=netns)
        ip("link", "set", "eth0", "up", netns=netns)
        ip("route", "add", "default", "via", self.pod_gateway(cluster), netns=netns)

    def remove_pod(self, cluster: str, netns: str) -> None:
        remove_netns(netns)  # its veth goes with it
        ip("link", "delete", "v" + netns.rsplit("-p", 1)[1], netns=self.node(cluster), check=False)

    # -- load balancers ----------------------------------------------------------------------------

    def set_load_balancers(self, balancers: Sequence[LoadBalancer]) -> None:
        """The whole translation and filter of the network between the clusters, at once."""
        nat = ["*nat", ":PREROUTING ACCEPT [0:0]", ":INPUT ACCEPT [0:0]", ":OUTPUT ACCEPT [0:0]",
               ":POSTROUTING ACCEPT [0:0]"]  # fmt: skip
        admit = []
        for lb in balancers:
            for port, (targets, target_port) in sorted(lb.ports.items()):
                targets = sorted(targets)
                for n, target in enumerate(targets):
                    # Spread new connections evenly: the n-th rule takes 1/(left) of what reaches it.
                    left = len(targets) - n
                    spread = (
                        ["-m", "statistic", "--mode", "nth", "--every", str(left), "--packet", "0"] if left > 1 else []
                    )
                    nat.append(
                        " ".join(
                            ["-A PREROUTING -d", lb.address, "-p tcp --dport", str(port), *spread,
                             "-j DNAT --to-destination", f"{target}:{target_port}"]
                        )
                    )  # fmt: skip
            for source in lb.source_ranges or ("0.0.0.0/0",):
                admit.append(f"-A FORWARD -m conntrack --ctstate DNAT --ctorigdst {lb.address} -s {source} -j ACCEPT")
        nat.append("COMMIT")
        filter_ = [
            "*filter",
            ":INPUT ACCEPT [0:0]",
            ":FORWARD DROP [0:0]",
            ":OUTPUT ACCEPT [0:0]",
            "-A FORWARD -m conntrack --ctstate ESTABLISHED,RELATED -j ACCEPT",
            *admit,
            # A load balancer drops a source outside its ranges, whoever sends it.
            "-A FORWARD -m conntrack --ctstate DNAT -j DROP",
            # The operator's machine reaches every pod (the API servers' webhook calls, tests).
            "-A FORWARD -i host -j ACCEPT",
            "COMMIT",
        ]
        in_netns(self.wan, "iptables-restore", input="\n".join(nat + filter_) + "\n")

    # -- partitions --------------------------------------------------------------------------------

    def blackhole(self, address: str) -> None:
        """Every packet to `address` (a load balancer's) dropped where the clusters meet, open
        connections too, as when a cloud's load balancer or the link to its region is lost: a
        client's connect times out. In the raw table, which the load balancers' rewrite of nat and
        filter leaves alone, and before connection tracking, so its translation never applies."""
        if address not in self.blackholed():
            in_netns(self.wan, "iptables", "-t", "raw", "-A", "PREROUTING", "-d", f"{address}/32", "-j", "DROP")

    def restore(self, address: str) -> None:
        """Undo `blackhole`."""
        while address in self.blackholed():
            in_netns(self.wan, "iptables", "-t", "raw", "-D", "PREROUTING", "-d", f"{address}/32", "-j", "DROP")

    def blackholed(self) -> list[str]:
        rules = in_netns(self.wan, "iptables", "-t", "raw", "-S", "PREROUTING")
        return [line.split()[3].removesuffix("/32") for line in rules.splitlines() if line.endswith("-j DROP")]


def leftovers(prefix: str) -> list[str]:
    """The namespaces and host links of a lab's block still on this host (none after its `down`)."""
    return [n for n in _lab_names() if n == f"{prefix}h" or n.startswith(f"{prefix}-")]


def _lab_names() -> list[str]:
    """Every lab namespace and host link on this host (any lab's)."""
    names = [p.name for p in NETNS_DIR.iterdir()] if NETNS_DIR.is_dir() else []
    for link in json.loads(run("ip", "-j", "link", "show").strip() or "[]"):
        names.append(link.get("ifname", ""))
    return [n for n in names if n.startswith("ml") and n[2:5].isdigit()]
