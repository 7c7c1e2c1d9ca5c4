"""STAND-IN for the Sail operator.

The Sail operator does not run in the lab (its module is not served here). This module plays its
visible part, openly, so that code waiting on it runs against real API servers and a real
istiod (load-balancer addresses: lab/network/loadbalancer.py):

- for every `sailoperator.io/v1` `Istio`, istiod's objects rendered from Istio's own istiod chart
  with the resource's `spec.values` by Istio's own istioctl (`lab.operator.istio_chart`):
  ServiceAccount, RBAC, mesh ConfigMap, Services, the injection and validation webhooks, the
  `istiod` Deployment; the lab's node runs that Deployment's pod (lab/nodes/node.py). Objects
  rendered for an `Istio` that is gone are deleted, as a Helm uninstall would;
- every `Istio` gets the status the operator writes: Ready (conditions True, `state: Healthy`)
  only once its istiod Deployment reports an available replica for the current generation,
  else Ready False with reason `IstiodNotReady`; every `IstioCNI` is reported Ready at once
  (no CNI runs here: there are no pods to wire);

`lab up --no-standin` leaves the stand-ins out, for tests of behaviour while the operator has
not (yet) reported.

Run by `lab up` as `python -m lab.operator.sail --dir DIR`.
"""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

from mesh.plan import names

from .. import standin
from ..clusters.kubeapi import ApiError, KubeClient
from ..toolchain import istio_binaries
from . import istio_chart

_MESSAGE = "set by lab.operator.sail: no Sail operator runs in the lab"
# Condition types the Sail operator (api/v1) sets on each kind.
_KINDS = {
    "istios": ("Reconciled", "Ready", "DependenciesHealthy"),
    "istiocnis": ("Reconciled", "Ready"),
}


def operator_status(obj: dict, condition_types: tuple[str, ...], now: str, not_ready: str | None = None) -> dict:
    """The status the Sail operator reports for `obj`: healthy, or (with `not_ready`, the reason
    istiod is not ready) Ready False with reason IstiodNotReady."""
    old = {c.get("type"): c for c in obj.get("status", {}).get("conditions", [])}
    conditions = []
    for t in condition_types:
        prev = old.get(t, {})
        healthy = not (not_ready and t == "Ready")
        status = "True" if healthy else "False"
        # Like the operator: the transition time moves only when the status does.
        since = prev.get("lastTransitionTime") if prev.get("status") == status else None
        condition = {
            "type": t,
            "status": status,
            "message": _MESSAGE if healthy else f"{not_ready} ({_MESSAGE})",
            "lastTransitionTime": since or now,
        }
        if not healthy:
            condition["reason"] = "IstiodNotReady"
        conditions.append(condition)
    status = {
        "observedGeneration": obj["metadata"].get("generation", 1),
        "conditions": conditions,
        "state": "Healthy" if not not_ready else "NotReady",
    }
    if obj["kind"] == "Istio":
        # InPlace strategy: one revision, named after the Istio object.
        status["activeRevisionName"] = obj["metadata"]["name"]
        status["revisions"] = {"total": 1, "ready": 1, "inUse": 1}
    return status


def _needs_status(obj: dict, condition_types: tuple[str, ...], not_ready: str | None) -> bool:
    status = obj.get("status") or {}
    true = {c.get("type") for c in status.get("conditions", []) if c.get("status") == "True"}
    wanted = set(condition_types) - ({"Ready"} if not_ready else set())
    return (
        status.get("observedGeneration") != obj["metadata"].get("generation")
        or status.get("state") != ("NotReady" if not_ready else "Healthy")
        or true != wanted
    )


def istiod_deployment_name(istio: dict) -> str:
    """The istiod Deployment of an InPlace `Istio`, whose revision is named after it."""
    return names.istiod_deployment_name(istio["metadata"]["name"])


def istiod_not_ready(client: KubeClient, istio: dict) -> str | None:
    """Why the `Istio`'s istiod is not ready, or None when its Deployment has an available
    replica (the real Deployment controller counts it only while istiod's pod is Ready, which the
    node reports only while istiod answers its readiness probe)."""
    namespace = istio["spec"].get("namespace", "istio-system")
    name = istiod_deployment_name(istio)
    try:
        deployment = client.get(f"/apis/apps/v1/namespaces/{namespace}/deployments/{name}")
    except ApiError as error:
        if error.status == 404:
            return f"Deployment {namespace}/{name} not found"
        raise
    status = deployment.get("status") or {}
    if status.get("observedGeneration") != deployment["metadata"].get("generation") or not status.get(
        "availableReplicas"
    ):
        return f"istiod Deployment {namespace}/{name} has no available replica"
    return None


class StandIn(standin.Loop):
    def __init__(self, clients: dict[str, KubeClient], istioctl: str | None = None):
        super().__init__()
        self.clients = clients
        self.istioctl = istioctl
        # (cluster, Istio name) -> (spec hash, paths of what was applied for it)
        self._rendered: dict[tuple[str, str], tuple[str, list[str]]] = {}

    def cluster_names(self) -> list[str]:
        return list(self.clients)

    def reconcile_cluster(self, name: str) -> None:
        self._reconcile_cluster(name, self.clients[name])

    def _install(self, cluster: str, client: KubeClient, istios: list[dict]) -> None:
        """Apply istiod's rendered objects for each `Istio`; delete those of `Istio`s now gone."""
        for istio in istios:
            key = (cluster, istio["metadata"]["name"])
            digest = istio_chart.spec_hash(istio)
            if self._rendered.get(key, ("", []))[0] == digest:
                continue
            assert self.istioctl, "no istioctl: the operator stand-in cannot render istiod"
            paths = []
            for obj in istio_chart.render(istio, self.istioctl):
                path = client.path_of(obj)
                client.apply(path, obj, "lab.operator-standin")
                paths.append(path)
            for path in set(self._rendered.get(key, ("", []))[1]) - set(paths):
                client.delete(path, missing_ok=True)  # rendered last time, not any more
            self._rendered[key] = (digest, paths)
        names = {i["metadata"]["name"] for i in istios}
        for key in [k for k in self._rendered if k[0] == cluster and k[1] not in names]:
            for path in self._rendered.pop(key)[1]:
                client.delete(path, missing_ok=True)

    def _reconcile_cluster(self, cluster: str, client: KubeClient) -> None:
        now = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
        for plural, types in _KINDS.items():
            base = f"/apis/sailoperator.io/v1/{plural}"
            objects = client.get(base)["items"]
            if plural == "istios" and self.istioctl:
                self._install(cluster, client, objects)
            for obj in objects:
                not_ready = istiod_not_ready(client, obj) if plural == "istios" and self.istioctl else None
                if _needs_status(obj, types, not_ready):
                    client.merge_patch(
                        f"{base}/{obj['metadata']['name']}/status",
                        {"status": operator_status(obj, types, now, not_ready)},
                    )


def from_lab_dir(dir: Path) -> StandIn:
    return StandIn({p.name: p.client() for p in standin.lab_planes(dir)}, istio_binaries()["istioctl"])


if __name__ == "__main__":
    standin.main("lab.operator.sail", __doc__, from_lab_dir)
