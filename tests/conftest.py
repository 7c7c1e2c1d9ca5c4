"""Shared fixtures: a kubeconfig file with the contexts a config names, and stack configs."""

from __future__ import annotations

import copy
import pathlib
from typing import Mapping, Optional

import pytest
import yaml

REPO = pathlib.Path(__file__).resolve().parent.parent


def write_kubeconfig(
    path: pathlib.Path, contexts: list[str], servers: Optional[Mapping[str, str]] = None
) -> pathlib.Path:
    """A kubeconfig with one context per name; its server `servers[name]`, or a name that never resolves."""
    servers = servers or {}
    document = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": c, "cluster": {"server": servers.get(c, f"https://{c}.invalid:6443")}} for c in contexts],
        "users": [{"name": c, "user": {"token": "unused"}} for c in contexts],
        "contexts": [{"name": c, "context": {"cluster": c, "user": c}} for c in contexts],
        "current-context": contexts[0],
    }
    path.write_text(yaml.safe_dump(document))
    return path


def stack_config(name: str) -> dict:
    """The `mesh:` keys of Pulumi.<name>.yaml, without the prefix."""
    document = yaml.safe_load((REPO / f"Pulumi.{name}.yaml").read_text())
    return {key.split(":", 1)[1]: value for key, value in document["config"].items() if key.startswith("mesh:")}


@pytest.fixture
def east_west(tmp_path) -> dict:
    """Pulumi.east-west.yaml's config, pointed at a kubeconfig file that has its contexts."""
    raw = copy.deepcopy(stack_config("east-west"))
    kubeconfig = write_kubeconfig(tmp_path / "kubeconfig", [c["context"] for c in raw["clusters"]])
    for cluster in raw["clusters"]:
        cluster["kubeconfig"] = str(kubeconfig)
    return raw


@pytest.fixture
def three_clusters(east_west) -> dict:
    """East-west plus a third cluster, `south`, on its own network."""
    raw = copy.deepcopy(east_west)
    kubeconfig = pathlib.Path(raw["clusters"][0]["kubeconfig"])
    write_kubeconfig(kubeconfig, ["east", "west", "south"])
    raw["clusters"].append(
        {
            "name": "south",
            "kubeconfig": str(kubeconfig),
            "context": "south",
            "clusterName": "cluster3",
            "network": "network3",
            "apiServerUrl": "https://api.south.example.com:6443",
            "egressCidrs": ["192.0.2.0/24"],
        }
    )
    return raw
