"""Installing CustomResourceDefinitions into a cluster."""

from __future__ import annotations

import os
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import yaml

from ..toolchain import REPO
from .kubeapi import ApiError, KubeClient

_CRD_PATH = "/apis/apiextensions.k8s.io/v1/customresourcedefinitions"


def default_dir() -> Path:
    """The Sail and Istio CRDs the lab installs: the Sail operator's chart/crds at the pinned
    commit, which setup.sh links as .venv/crds (toolchain/sail-operator.sh); MESH_LAB_CRDS
    names another folder."""
    return Path(os.environ.get("MESH_LAB_CRDS") or REPO / ".venv" / "crds")


# libyaml parses the large Istio CRDs in a fraction of a second, pure Python in two.
_Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def load(dir: Path) -> list[dict]:
    crds = []
    for f in sorted(dir.glob("*.y*ml")):
        for doc in yaml.load_all(f.read_text(), Loader=_Loader):
            if doc and doc.get("kind") == "CustomResourceDefinition":
                crds.append(doc)
    if not crds:
        raise RuntimeError(
            f"no CustomResourceDefinition in {dir}: run `bash setup.sh` (it links the Sail operator's CRDs "
            "as .venv/crds), or set MESH_LAB_CRDS to a folder of CRDs"
        )
    return crds


def install(client: KubeClient, crds: list[dict]) -> None:
    """Server-side apply every CRD, then wait until all can be used.

    Server-side, because the Istio CRDs exceed the 256 KiB annotation that
    client-side apply would store.
    """
    # In parallel: each apply waits mostly on the server compiling the schema.
    with ThreadPoolExecutor(4) as pool:
        list(pool.map(lambda crd: client.apply(f"{_CRD_PATH}/{crd['metadata']['name']}", crd, "mesh-lab"), crds))
    wait_usable(client, crds)


def installed(client: KubeClient) -> list[dict]:
    return client.get(_CRD_PATH)["items"]


def wait_usable(client: KubeClient, crds: list[dict], timeout: float = 60) -> None:
    pending = {crd["metadata"]["name"] for crd in crds}
    deadline = time.monotonic() + timeout
    while pending and time.monotonic() < deadline:
        for name in sorted(pending):
            try:
                conds = (client.get(f"{_CRD_PATH}/{name}").get("status") or {}).get("conditions") or []
            except ApiError:
                continue
            if any(c["type"] == "Established" and c["status"] == "True" for c in conds):
                pending.discard(name)
        if pending:
            time.sleep(0.2)
    if pending:
        raise RuntimeError(f"CRDs not Established after {timeout:.0f}s: {sorted(pending)}")
    # Established still precedes usable: for a moment (also after an apiserver
    # restart) the resources answer 429 "storage is (re)initializing", which
    # clients without retries (the Python kubernetes client) report as failure.
    pending = {_collection(crd) for crd in crds}
    while pending and time.monotonic() < deadline:
        for path in sorted(pending):
            try:
                client.get(path)
                pending.discard(path)
            except ApiError:
                pass
        if pending:
            time.sleep(0.2)
    if pending:
        raise RuntimeError(f"custom resources not served after {timeout:.0f}s: {sorted(pending)}")


def _collection(crd: dict) -> str:
    spec = crd["spec"]
    version = next(v["name"] for v in spec["versions"] if v.get("storage"))
    return f"/apis/{spec['group']}/{version}/{spec['names']['plural']}?limit=1"
