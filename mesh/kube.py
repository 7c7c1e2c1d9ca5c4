"""Turns a Kubernetes manifest (a plain dict, as the planning functions return) into a resource.

The planning modules describe objects as data so that they can be tested without Pulumi and
compared with the upstream YAML; this is the one place where data becomes a resource. Built-in
kinds map to their typed classes, so that pulumi-kubernetes applies its own readiness logic;
anything else (Istio, IstioCNI, Gateway) becomes a CustomResource.
"""

from __future__ import annotations

from typing import Any, Mapping, Optional

import pulumi
import pulumi_kubernetes as k8s

_TYPED = {
    ("v1", "Namespace"): k8s.core.v1.Namespace,
    ("v1", "ServiceAccount"): k8s.core.v1.ServiceAccount,
    ("v1", "Secret"): k8s.core.v1.Secret,
    ("v1", "Service"): k8s.core.v1.Service,
    ("apps/v1", "Deployment"): k8s.apps.v1.Deployment,
    ("policy/v1", "PodDisruptionBudget"): k8s.policy.v1.PodDisruptionBudget,
    ("autoscaling/v2", "HorizontalPodAutoscaler"): k8s.autoscaling.v2.HorizontalPodAutoscaler,
    ("rbac.authorization.k8s.io/v1", "Role"): k8s.rbac.v1.Role,
    ("rbac.authorization.k8s.io/v1", "RoleBinding"): k8s.rbac.v1.RoleBinding,
    ("rbac.authorization.k8s.io/v1", "ClusterRole"): k8s.rbac.v1.ClusterRole,
    ("rbac.authorization.k8s.io/v1", "ClusterRoleBinding"): k8s.rbac.v1.ClusterRoleBinding,
}

# Manifest field -> keyword argument of the typed classes.
_FIELDS = {
    "metadata": "metadata",
    "spec": "spec",
    "data": "data",
    "stringData": "string_data",
    "type": "type",
    "rules": "rules",
    "roleRef": "role_ref",
    "subjects": "subjects",
}


def resource_name(cluster: str, manifest: Mapping[str, Any]) -> str:
    """A stack-unique logical name: cluster, kind, namespace (if any) and object name."""
    metadata = manifest["metadata"]
    parts = [cluster, manifest["kind"].lower()]
    if metadata.get("namespace"):
        parts.append(metadata["namespace"])
    parts.append(metadata["name"])
    return "-".join(parts)


def create(
    cluster: str,
    manifest: Mapping[str, Any],
    opts: pulumi.ResourceOptions,
    overrides: Optional[Mapping[str, Any]] = None,
) -> pulumi.CustomResource:
    """Register `manifest` on `cluster`; `overrides` replaces top-level fields with Outputs.

    The logical name comes from the manifest, so an override of `metadata.name` (a rotation
    suffix) changes the object, not the resource's identity in the stack.
    """
    fields = dict(manifest)
    fields.update(overrides or {})
    name = resource_name(cluster, manifest)
    api_version, kind = fields.pop("apiVersion"), fields.pop("kind")
    cls = _TYPED.get((api_version, kind))
    if cls is None:
        return k8s.apiextensions.CustomResource(name, api_version=api_version, kind=kind, opts=opts, **fields)
    unknown = set(fields) - set(_FIELDS)
    if unknown:
        raise ValueError(f"{kind} {name}: fields {sorted(unknown)} have no mapping in mesh.kube")
    return cls(name, opts=opts, **{_FIELDS[key]: value for key, value in fields.items()})
