"""The watch beside `up` (mesh/operator_watch.py): it reports an operator's refusal at once, and it
never outlives the update it watches. Under the Automation API the next inline program runs in the
same process: a watch still polling after its update failed would end its program later, inside
the next one's run (seen in CI: the next stack's outputs failed with "attached to a different
loop"). The cluster reads are replaced; everything else is the module's own."""

from __future__ import annotations

import asyncio
import time

import pytest

from mesh import config, operator_watch
from mesh.plan import operator_versions


@pytest.fixture
def settings(east_west):
    raw = dict(east_west)
    raw["readyTimeout"] = 60
    return config.parse(raw)


def istio(settings, reconciled: dict | None) -> dict:
    obj = {"spec": {"version": settings.istio_version}, "metadata": {"generation": 1}}
    if reconciled is not None:
        obj["status"] = {"observedGeneration": 1, "conditions": [{"type": "Reconciled", **reconciled}]}
    return obj


def run_watch(settings, monkeypatch, answers, settled, interval=0.05):
    reads = []

    def read(_settings, clients):
        reads.append(time.monotonic())
        return {(cluster, "Istio"): answers() for cluster in clients}

    logged = []
    monkeypatch.setattr(operator_watch, "read", read)
    monkeypatch.setattr("pulumi.log.error", logged.append)

    async def main():
        start = time.monotonic()
        await operator_watch.watch(settings, {"east": object(), "west": object()}, settled(), interval)
        return time.monotonic() - start

    return asyncio.run(main()), reads, logged


def test_the_watch_ends_once_the_engine_is_done_with_the_resources_even_if_never_reconciled(settings, monkeypatch):
    async def settled_soon():
        await asyncio.sleep(0.2)

    took, reads, logged = run_watch(settings, monkeypatch, lambda: istio(settings, None), settled_soon)
    assert took < 2, f"the watch outlived its update by {took:.1f} s (readyTimeout 60 s)"
    assert reads and not logged


def test_a_refusal_is_reported_at_once_with_the_key(settings, monkeypatch):
    refused = {"status": "False", "message": f'version "{settings.istio_version}" is end-of-life'}

    async def never():
        await asyncio.sleep(3600)

    took, _, logged = run_watch(settings, monkeypatch, lambda: istio(settings, refused), never)
    assert took < 2
    assert len(logged) == 1 and logged[0].startswith(f"config {operator_versions.VERSION_KEY}:")
    assert "end-of-life" in logged[0]


def test_the_watch_ends_when_every_cluster_has_reconciled(settings, monkeypatch):
    async def never():
        await asyncio.sleep(3600)

    took, reads, logged = run_watch(settings, monkeypatch, lambda: istio(settings, {"status": "True"}), never)
    assert took < 2 and len(reads) == 2 and not logged
