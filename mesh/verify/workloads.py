"""The sample pods: each sample Deployment of a cluster has a Ready pod."""

from __future__ import annotations

from typing import Any, Mapping

from ..plan import samples
from ..config import ClusterConfig
from .results import NO_NODE, SAMPLE_PODS, Result, _result

# --- sample apps --------------------------------------------------------------------------


def sample_deployments(cluster: ClusterConfig) -> dict[str, dict]:
    """The sample Deployments on `cluster`, by name, exactly as the program creates them."""
    return {
        m["metadata"]["name"]: m
        for m in samples.sample_manifests(cluster.helloworld_version)
        if m["kind"] == "Deployment"
    }


def _selector(deployment: Mapping[str, Any]) -> str:
    return ",".join(f"{k}={v}" for k, v in deployment["spec"]["selector"]["matchLabels"].items())


def pod_ready(pod) -> bool:
    """The pod's Ready condition is True."""
    return any(c.type == "Ready" and c.status == "True" for c in pod.status.conditions or [])


def ready_pods(core, deployment: Mapping[str, Any]) -> tuple[list, list]:
    """(Ready pods, all pods) of a sample Deployment."""
    pods = core.list_namespaced_pod(samples.NAMESPACE, label_selector=_selector(deployment)).items
    return [p for p in pods if pod_ready(p) and not p.metadata.deletion_timestamp], pods


def check_sample_pods(core, cluster: ClusterConfig, nodeless: bool = False) -> list[Result]:
    results = []
    for name, deployment in sample_deployments(cluster).items():
        ready, pods = ready_pods(core, deployment)
        problems = []
        if not ready:
            seen = ", ".join(f"{p.metadata.name} {p.status.phase}" for p in pods) or "none"
            where = NO_NODE if nodeless else f"look at `kubectl -n {samples.NAMESPACE} describe pod`"
            problems.append(f"no Ready pod (pods: {seen}); {where}")
        results.append(_result(SAMPLE_PODS, cluster.name, f"Deployment {name}", problems, f"{len(ready)} Ready"))
    return results
