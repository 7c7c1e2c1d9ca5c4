"""What each reachable cluster's Sail operator says about `mesh:istioVersion`, read from the
`Istio` and `IstioCNI` resources the program makes.

An end-of-life version passes the CRD's enum and is refused by the operator only at reconcile: the
resource keeps the old istiod running and Ready and reports Reconciled False with the operator's
reason. `up` waits for Reconciled (mesh/plan/control_plane.py), but pulumi-kubernetes says only
that it timed out, after `mesh:readyTimeout`. So:

- before anything changes (preview and up), a resource that already carries the version and was
  refused for it stops the run with the operator's reason (`refusals`, from mesh/program.py);
- while `up` runs, `watch` reads the resources every few seconds and, as soon as an operator
  refuses the version, says so as an error of the update with its reason and the key (the update
  itself ends when pulumi-kubernetes's wait times out: the engine lets a step in flight finish).
"""

from __future__ import annotations

import asyncio
import time
from typing import Any, Optional

from .config import MeshConfig
from .plan import operator_versions
from .plan.control_plane import sail_manifests

INTERVAL_SECONDS = 2.0


def _read(client: Any, manifest: dict[str, Any]) -> Optional[dict]:
    import kubernetes

    from .verify.control_plane import sail_object

    try:
        return sail_object(kubernetes.client.CustomObjectsApi(client), manifest)
    except kubernetes.client.exceptions.ApiException as error:
        if error.status == 404:
            return None
        raise


def read(settings: MeshConfig, clients: dict[str, Any]) -> dict[tuple[str, str], Optional[dict]]:
    """(cluster, kind) -> each reachable cluster's `Istio` (and `IstioCNI`) as it is, None where
    there is none yet."""
    by_name = {c.name: c for c in settings.clusters}
    return {
        (cluster, manifest["kind"]): _read(client, manifest)
        for cluster, client in clients.items()
        for manifest in sail_manifests(settings, by_name[cluster])
    }


def verdicts(
    settings: MeshConfig, found: dict[tuple[str, str], Optional[dict]]
) -> dict[tuple[str, str], Optional[str]]:
    """(cluster, kind) -> what its operator said about the version (operator_versions.reconcile_verdict)."""
    return {key: operator_versions.reconcile_verdict(obj, settings.istio_version) for key, obj in found.items()}


def refusals(found: dict[tuple[str, str], Optional[str]]) -> list[tuple[str, str, str]]:
    return [
        (cluster, kind, said)
        for (cluster, kind), said in found.items()
        if said is not None and said != operator_versions.ACCEPTED
    ]


def engine_answers(monitor: Any) -> bool:
    """Whether the engine that runs this program still answers: when its update ends, failed or
    not, its resource monitor goes away."""
    import grpc
    from pulumi.runtime.proto import resource_pb2

    try:
        monitor.SupportsFeature(resource_pb2.SupportsFeatureRequest(id="secrets"), timeout=5)
        return True
    except grpc.RpcError:
        return False


async def watch(settings: MeshConfig, clients: dict[str, Any], interval: float = INTERVAL_SECONDS) -> None:
    """Until every reachable cluster's resources are reconciled at the version, mesh:readyTimeout
    has passed, or the update is over: report as soon as an operator refuses the version.

    A program must not outlive its update: after a failed update the engine never answers the
    program's last registrations, and under the Automation API the next update runs in the same
    process, whose engine connection (process-wide in the Python SDK) the late program would use."""
    import pulumi

    loop = asyncio.get_running_loop()
    monitor = pulumi.runtime.settings.get_monitor()
    deadline = time.monotonic() + settings.ready_timeout_seconds
    pending = dict(clients)
    while pending and time.monotonic() < deadline:
        for cluster in list(pending):
            try:
                objects = await loop.run_in_executor(None, read, settings, {cluster: pending[cluster]})
                found = verdicts(settings, objects)
            except Exception:  # noqa: BLE001 - a cluster that stops answering is the engine's to report
                pending.pop(cluster)
                continue
            refused = refusals(found)
            if refused:
                # Said now: the engine ends the update only once its wait on the refused resource
                # times out (it waits for steps in flight whatever the program says).
                pulumi.log.error(operator_versions.refused_at_reconcile(settings.istio_version, refused))
                return
            if all(said == operator_versions.ACCEPTED for said in found.values()):
                pending.pop(cluster)
        if pending:
            await asyncio.sleep(interval)
            if pulumi.runtime.settings.get_monitor() is not monitor:
                return  # another program runs in this process now
            if not await loop.run_in_executor(None, engine_answers, monitor):
                return
