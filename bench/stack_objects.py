"""The Kubernetes objects a stack made, per cluster, as manifests: read from the stack's own
state (`pulumi stack export --show-secrets`), so that the floor applies exactly what `up` did."""

from __future__ import annotations

import json
from typing import Any, Callable

SECRET_SIG = "4dabf18193072939515e22adb298388d"  # Pulumi's marker of a secret value in state
SECRET_VALUE = "1b47061264138c4ac30d75fd1eb44270"


def from_state(value: Any, secret: Callable[[Any], Any] = lambda plain: plain) -> Any:
    """A value of `pulumi stack export --show-secrets` as the program gave it: internal `__`
    keys dropped, each secret's plaintext decoded and passed through `secret` (by default
    kept plain)."""
    if isinstance(value, dict):
        if value.get(SECRET_SIG) == SECRET_VALUE:
            return secret(from_state(json.loads(value["plaintext"]), secret))
        return {k: from_state(v, secret) for k, v in value.items() if not k.startswith("__")}
    if isinstance(value, list):
        return [from_state(v, secret) for v in value]
    return value


def manifests_by_cluster(export: dict[str, Any]) -> dict[str, list[dict[str, Any]]]:
    """cluster name -> its objects in the order the stack registered them."""
    resources = export["deployment"]["resources"]
    clusters = {
        f"{r['urn']}::{r['id']}": from_state(r["inputs"])["clusterIdentifier"]
        for r in resources
        if r["type"] == "pulumi:providers:kubernetes"
    }
    found: dict[str, list[dict[str, Any]]] = {name: [] for name in clusters.values()}
    for r in resources:
        if r["type"].startswith("kubernetes:") and r.get("provider") in clusters:
            found[clusters[r["provider"]]].append(from_state(r["inputs"]))
    return found
