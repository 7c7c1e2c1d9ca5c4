"""STAND-IN for the Sail operator and a cloud load-balancer controller.

Neither can run in the lab: there is no container runtime for the Sail operator
to deploy istiod into, and no cloud to hand out load-balancer addresses. This
module plays their visible part, openly, so that code waiting on them can be
exercised against real API servers:

- every `sailoperator.io/v1` `Istio` and `IstioCNI` gets the status the operator
  writes once the control plane is healthy (conditions True, `state: Healthy`,
  `observedGeneration`), through the status subresource;
- every Service of `type: LoadBalancer`, in any namespace, gets
  `status.loadBalancer.ingress: [{ip: 127.0.0.<n>}]`, unique across the lab.

Nothing is installed or checked: a Ready Istio here says only that the object
was accepted by the API server. `lab up --no-standin` leaves it out, for tests
of behaviour while the operator has not (yet) reported.

Run by `lab up` as `python -m lab.operator_standin --dir DIR`.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
from datetime import datetime, timezone
from pathlib import Path

from .controlplane import ControlPlane
from .kubeapi import KubeClient

_MESSAGE = "set by lab.operator_standin: no Sail operator runs in the lab"
# Condition types the Sail operator (api/v1) sets on each kind.
_KINDS = {
    "istios": ("Reconciled", "Ready", "DependenciesHealthy"),
    "istiocnis": ("Reconciled", "Ready"),
}


def operator_status(obj: dict, condition_types: tuple[str, ...], now: str) -> dict:
    """The status the Sail operator reports for a healthy `obj`."""
    old = {c.get("type"): c for c in obj.get("status", {}).get("conditions", [])}
    conditions = []
    for t in condition_types:
        prev = old.get(t, {})
        # Like the operator: the transition time moves only when the status does.
        since = prev.get("lastTransitionTime") if prev.get("status") == "True" else None
        conditions.append({"type": t, "status": "True", "message": _MESSAGE,
                           "lastTransitionTime": since or now})
    status = {"observedGeneration": obj["metadata"].get("generation", 1),
              "conditions": conditions, "state": "Healthy"}
    if obj["kind"] == "Istio":
        # InPlace strategy: one revision, named after the Istio object.
        status["activeRevisionName"] = obj["metadata"]["name"]
        status["revisions"] = {"total": 1, "ready": 1, "inUse": 1}
    return status


def _needs_status(obj: dict, condition_types: tuple[str, ...]) -> bool:
    status = obj.get("status") or {}
    true = {c.get("type") for c in status.get("conditions", []) if c.get("status") == "True"}
    return (status.get("observedGeneration") != obj["metadata"].get("generation")
            or status.get("state") != "Healthy" or not set(condition_types) <= true)


class StandIn:
    def __init__(self, clients: dict[str, KubeClient]):
        self.clients = clients
        # Remembered across rounds so that a cluster that is briefly unreachable
        # does not free its addresses for reuse elsewhere.
        self._used_ips: set[str] = set()
        self._errors: dict[str, str] = {}

    def reconcile(self) -> None:
        for name, client in self.clients.items():
            try:
                self._reconcile_cluster(client)
                self._errors.pop(name, None)
            except Exception as e:  # a stopped cluster is expected; log each change once
                if self._errors.get(name) != str(e):
                    print(f"{name}: {str(e).strip()}", file=sys.stderr, flush=True)
                    self._errors[name] = str(e)

    def _reconcile_cluster(self, client: KubeClient) -> None:
        now = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
        for plural, types in _KINDS.items():
            base = f"/apis/sailoperator.io/v1/{plural}"
            for obj in client.get(base)["items"]:
                if _needs_status(obj, types):
                    client.merge_patch(f"{base}/{obj['metadata']['name']}/status",
                                       {"status": operator_status(obj, types, now)})
        services = client.get("/api/v1/services")["items"]
        for svc in services:
            for ing in svc.get("status", {}).get("loadBalancer", {}).get("ingress") or []:
                if ing.get("ip"):
                    self._used_ips.add(ing["ip"])
        for svc in services:
            if svc["spec"].get("type") != "LoadBalancer":
                continue
            if svc.get("status", {}).get("loadBalancer", {}).get("ingress"):
                continue
            md = svc["metadata"]
            client.merge_patch(
                f"/api/v1/namespaces/{md['namespace']}/services/{md['name']}/status",
                {"status": {"loadBalancer": {"ingress": [{"ip": self._next_ip()}]}}})

    def _next_ip(self) -> str:
        # 127.0.0.1 is the API servers' own address; start above it.
        for n in range(2, 255):
            ip = f"127.0.0.{n}"
            if ip not in self._used_ips:
                self._used_ips.add(ip)
                return ip
        raise RuntimeError("no free 127.0.0.<n> address left")

    def run(self, stop: threading.Event, interval: float = 1.0) -> None:
        while not stop.is_set():
            self.reconcile()
            stop.wait(interval)


def from_lab_dir(dir: Path) -> StandIn:
    state = json.loads((dir / "lab.json").read_text())
    planes = [ControlPlane.from_json(c) for c in state["clusters"]]
    return StandIn({p.name: p.client() for p in planes})


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m lab.operator_standin", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dir", type=Path, required=True, help="the lab's state dir")
    parser.add_argument("--interval", type=float, default=1.0)
    args = parser.parse_args(argv)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    print("operator stand-in running", flush=True)
    from_lab_dir(args.dir.resolve()).run(stop, args.interval)


if __name__ == "__main__":
    main()
