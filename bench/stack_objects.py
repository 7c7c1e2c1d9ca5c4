"""The Kubernetes objects a stack made, per cluster, as manifests: read from the stack's own
state (`pulumi stack export --show-secrets`), so that the floor applies exactly what `up` did."""

from __future__ import annotations

import json
from typing import Any

_SECRET_SIG = "4dabf18193072939515e22adb298388d"  # Pulumi's marker of a secret value in state


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        if value.get(_SECRET_SIG) == "1b47061264138c4ac30d75fd1eb44270":
            return _plain(json.loads(value["plaintext"]))
        return {k: _plain(v) for k, v in value.items() if not k.startswith("__")}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


def manifests_by_cluster(export: dict[str, Any]) -> dict[str, list[dict[str, Any]]]:
    """cluster name -> its objects in the order the stack registered them."""
    resources = export["deployment"]["resources"]
    clusters = {
        f"{r['urn']}::{r['id']}": _plain(r["inputs"])["clusterIdentifier"]
        for r in resources
        if r["type"] == "pulumi:providers:kubernetes"
    }
    found: dict[str, list[dict[str, Any]]] = {name: [] for name in clusters.values()}
    for r in resources:
        if r["type"].startswith("kubernetes:") and r.get("provider") in clusters:
            found[clusters[r["provider"]]].append(_plain(r["inputs"]))
    return found
