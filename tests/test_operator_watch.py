"""The watch beside `up` (mesh/operator_watch.py): it reports an operator's refusal at once, and it
never outlives the update it watches. Under the Automation API the next inline program runs in the
same process: a watch still polling after its update failed would end its program later, inside
the next one's run (seen in CI: the next stack's outputs failed with "attached to a different
loop"). The cluster reads and the engine's monitor are replaced; the rest is the module's own."""

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


class Engine:
    """The engine's resource monitor as the watch sees it: answering, until the update ends."""

    def __init__(self, answers_for: float):
        self.until = time.monotonic() + answers_for

    def SupportsFeature(self, request, timeout=None):  # noqa: N802 - the gRPC stub's name
        import grpc

        if time.monotonic() > self.until:
            raise grpc.RpcError("the update is over")
        return None


def run_watch(settings, monkeypatch, answers, engine):
    reads = []

    def read(_settings, clients):
        reads.append(time.monotonic())
        return {(cluster, "Istio"): answers() for cluster in clients}

    logged = []
    monkeypatch.setattr(operator_watch, "read", read)
    monkeypatch.setattr("pulumi.log.error", logged.append)
    monkeypatch.setattr("pulumi.runtime.settings.get_monitor", lambda: engine)

    async def main():
        start = time.monotonic()
        await operator_watch.watch(settings, {"east": object(), "west": object()}, interval=0.05)
        return time.monotonic() - start

    return asyncio.run(main()), reads, logged


def test_the_watch_ends_with_the_update_even_if_never_reconciled(settings, monkeypatch):
    took, reads, logged = run_watch(settings, monkeypatch, lambda: istio(settings, None), Engine(answers_for=0.2))
    assert took < 2, f"the watch outlived its update by {took:.1f} s (readyTimeout 60 s)"
    assert reads and not logged


def test_a_refusal_is_reported_at_once_with_the_key(settings, monkeypatch):
    refused = {"status": "False", "message": f'version "{settings.istio_version}" is end-of-life'}

    took, _, logged = run_watch(settings, monkeypatch, lambda: istio(settings, refused), Engine(answers_for=3600))
    assert took < 2
    assert len(logged) == 1 and logged[0].startswith(f"config {operator_versions.VERSION_KEY}:")
    assert "end-of-life" in logged[0]


def test_the_watch_ends_when_every_cluster_has_reconciled(settings, monkeypatch):
    accepted = {"status": "True"}
    took, reads, logged = run_watch(settings, monkeypatch, lambda: istio(settings, accepted), Engine(3600))
    assert took < 2 and len(reads) == 2 and not logged
