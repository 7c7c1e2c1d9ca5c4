"""STAND-IN for a cloud's load-balancer controller (or MetalLB) on the lab's network.

For every Service of `type: LoadBalancer` in any cluster of the lab:
- an address from the lab's load-balancer range (10.B.253.n, lab/network/namespaces.py), unique
  across the lab and kept for the Service's life, written to `status.loadBalancer.ingress` as a
  cloud's controller writes it;
- in the network between the clusters, each Service port of that address forwards new
  connections to the Service's ready endpoints (its EndpointSlices, as the real endpointslice
  controller writes them), spread evenly, to the endpoint's port; with no ready endpoint the
  port answers nothing;
- `spec.loadBalancerSourceRanges` is applied as cloud load balancers apply it: a connection from
  a source outside the ranges is dropped (no ranges: every source). The source is what the
  sending cluster's node masquerades its pods to: that cluster's egress address.

A cluster whose API server is down keeps its load balancers as they were (a cloud's load balancer
does not depend on the cluster's API server).

Run by `lab up` as `python -m lab.network.loadbalancer --dir DIR`.
"""

from __future__ import annotations

import json
from pathlib import Path

from .. import standin
from ..clusters.kubeapi import KubeClient
from .namespaces import LabNetwork, LoadBalancer


def _ready_targets(slices: list[dict], port_name: str) -> tuple[list[str], int | None]:
    targets: list[str] = []
    target_port = None
    for s in slices:
        port = next((p for p in s.get("ports") or [] if (p.get("name") or "") == port_name), None)
        if port is None:
            continue
        target_port = port["port"]
        for endpoint in s.get("endpoints") or []:
            if (endpoint.get("conditions") or {}).get("ready"):
                targets.extend(endpoint["addresses"])
    return sorted(set(targets)), target_port


class LoadBalancers(standin.Loop):
    def __init__(self, clients: dict[str, KubeClient], lab_network: LabNetwork):
        super().__init__()
        self.clients, self.network = clients, lab_network
        self._by_cluster: dict[str, list[LoadBalancer]] = {}
        self._used: set[str] = set()
        self._applied: str | None = None

    def cluster_names(self) -> list[str]:
        return list(self.clients)

    def reconcile(self) -> None:
        super().reconcile()
        balancers = [lb for name in self.clients for lb in self._by_cluster.get(name, [])]
        key = json.dumps([[lb.address, sorted((p, list(t), tp) for p, (t, tp) in lb.ports.items()), list(lb.source_ranges)]
                          for lb in balancers])  # fmt: skip
        if key != self._applied:
            self.network.set_load_balancers(balancers)
            self._applied = key

    def reconcile_cluster(self, name: str) -> None:
        client = self.clients[name]
        every = client.get("/api/v1/services")["items"]
        services = [s for s in every if s["spec"].get("type") == "LoadBalancer"]
        for svc in every:
            for ingress in (svc.get("status") or {}).get("loadBalancer", {}).get("ingress") or []:
                if ingress.get("ip"):
                    self._used.add(ingress["ip"])
        found = []
        for svc in services:
            md = svc["metadata"]
            ingress = (svc.get("status") or {}).get("loadBalancer", {}).get("ingress") or []
            address = ingress[0].get("ip") if ingress else None
            if not address or not address.startswith(f"10.{self.network.block}."):
                address = self._next_address()
                client.merge_patch(
                    f"/api/v1/namespaces/{md['namespace']}/services/{md['name']}/status",
                    {"status": {"loadBalancer": {"ingress": [{"ip": address, "ipMode": "VIP"}]}}},
                )
            slices = client.get(
                f"/apis/discovery.k8s.io/v1/namespaces/{md['namespace']}/endpointslices"
                f"?labelSelector=kubernetes.io/service-name={md['name']}"
            )["items"]
            ports = {}
            for port in svc["spec"].get("ports") or []:
                targets, target_port = _ready_targets(slices, port.get("name") or "")
                if targets and target_port:
                    ports[port["port"]] = (targets, target_port)
            found.append(LoadBalancer(address, ports, tuple(svc["spec"].get("loadBalancerSourceRanges") or ())))
        self._by_cluster[name] = found

    def _next_address(self) -> str:
        for address in self.network.load_balancer_addresses():
            if address not in self._used:
                self._used.add(address)
                return address
        raise RuntimeError("no free load-balancer address left in the lab's range")


def from_lab_dir(dir: Path) -> LoadBalancers:
    state = json.loads((dir / "lab.json").read_text())
    return LoadBalancers({p.name: p.client() for p in standin.lab_planes(dir)}, LabNetwork.from_json(state["network"]))


if __name__ == "__main__":
    standin.main("lab.network.loadbalancer", __doc__, from_lab_dir)
