"""Which objects must wait for a cluster's control plane (its `Istio` resource Ready), and
which need only the namespace they live in.

Two kinds of object need istiod itself:
- a pod template (a Deployment and the like): injection happens when a pod is created, through
  istiod's webhook; a pod created before istiod runs gets no sidecar or gateway proxy;
- an Istio API object (`networking.istio.io`, ...): istiod's validating webhook checks it.
Everything else (service accounts, roles, Services, budgets, autoscalers, the `sample`
namespace) is made without waiting: `up` makes it while istiod starts, and a `preview` has a
shorter chain of steps that wait on each other.
"""

from __future__ import annotations

from typing import Any, Mapping, TypeVar

POD_TEMPLATE_KINDS = frozenset({"Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job", "CronJob", "Pod"})
ISTIO_API_GROUPS = ("networking.istio.io/", "security.istio.io/", "telemetry.istio.io/", "extensions.istio.io/")


def waits_for_control_plane(manifest: Mapping[str, Any]) -> bool:
    """Whether `manifest` may only be created once the cluster's istiod runs."""
    return manifest["kind"] in POD_TEMPLATE_KINDS or str(manifest["apiVersion"]).startswith(ISTIO_API_GROUPS)


T = TypeVar("T")


def prerequisites(manifest: Mapping[str, Any], namespace: T, control_plane: T) -> list[T]:
    """What `manifest` waits for: the namespace it lives in, and the control plane too when
    `waits_for_control_plane`."""
    return [namespace, control_plane] if waits_for_control_plane(manifest) else [namespace]
