"""Turns a Kubernetes manifest (a plain dict, as the planning modules return) into a resource.

The planning modules describe objects as data so that they can be tested without Pulumi and
compared with the upstream YAML; this is the one place where data becomes a resource.

Every object is registered as pulumi-kubernetes' own classes register it: under the provider's
type token for its kind (`kubernetes:core/v1:Secret`, `kubernetes:sailoperator.io/v1:Istio`),
with its fields as they are in the manifest, and a Secret's data kept secret. The provider keys
its readiness logic on that type token, so a Service or a Deployment is awaited as with the
typed classes. The typed classes themselves are not imported: their generated input and
output types cost some 0.7 s of import on every `preview` and `up` (measured: bench/), for
nothing this program uses.
"""

from __future__ import annotations

from typing import Any, Mapping, Optional

import pulumi
from pulumi_kubernetes import _utilities

# Kinds whose typed classes declare a `status` output (read back after create or update).
_WITH_STATUS = {"Namespace", "Service", "Deployment", "PodDisruptionBudget", "HorizontalPodAutoscaler", "Istio"}


def type_token(api_version: str, kind: str) -> str:
    """pulumi-kubernetes' type token: the core group is written `core/v1`."""
    return f"kubernetes:{api_version if '/' in api_version else 'core/' + api_version}:{kind}"


class KubernetesObject(pulumi.CustomResource):
    """One Kubernetes object; its fields (and `status`, where the kind has one) are Outputs
    named as in the manifest (`metadata`, `data`, `status`, ...)."""

    def __init__(self, name: str, fields: Mapping[str, Any], opts: pulumi.ResourceOptions):
        props = dict(fields)
        kind = props["kind"]
        if kind in _WITH_STATUS:
            props.setdefault("status", None)
        own = pulumi.ResourceOptions(version=_utilities.get_version())
        if kind == "Secret":
            props.setdefault("data", None)  # filled in by the cluster (a token secret's token)
            for key in ("data", "stringData"):
                if props.get(key) is not None:
                    props[key] = pulumi.Output.secret(props[key])
            own.additional_secret_outputs = ["data", "stringData"]
        super().__init__(type_token(props["apiVersion"], kind), name, props, pulumi.ResourceOptions.merge(opts, own))


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
) -> KubernetesObject:
    """Register `manifest` on `cluster`; `overrides` replaces top-level fields with Outputs.

    The logical name comes from the manifest, so an override of `metadata.name` (a rotation
    suffix) changes the object, not the resource's identity in the stack.
    """
    return KubernetesObject(resource_name(cluster, manifest), {**manifest, **(overrides or {})}, opts)
