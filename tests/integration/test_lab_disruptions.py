"""Failures under steady traffic on a real two-cluster lab: what each costs, counted request by
request from both sides, and how long until every request succeeds again.

- istiod restarted in one cluster, an east-west gateway pod restarted, a rollout of the gateway
  Deployment: the failed requests are counted and bounded, and the time to recover measured;
- failover: helloworld stopped in west then brought back, and west's whole gateway made
  unreachable (every packet to its load-balancer address dropped) then reachable, first with
  `mesh:failover` off (Istio's defaults: what users see), then on for helloworld (outlier
  detection and a 1 s connect timeout): east, the surviving side, must recover within a bound.

Tests run in the order written and share one `up` and one stream of traffic; each prints its
figures (docs/benchmark.md takes them from bench/without_downtime.py).
"""

from __future__ import annotations

import time

import kubernetes
import pytest

from mesh.verify import steady

from .conftest import Traffic, deploy, update, wait_for

CLUSTERS = ["east", "west"]
SETTLE_SECONDS = 10
"""Traffic counted after each event is over, to see that it stays recovered."""
OUTAGE_SECONDS = 20
"""How long helloworld stays stopped, or the gateway unreachable."""


@pytest.fixture(scope="module")
def mesh(tmp_path_factory):
    yield from deploy("disruptions", CLUSTERS, tmp_path_factory)


@pytest.fixture(scope="module")
def traffic(mesh):
    with Traffic(mesh, fresh=False) as running:
        running.phase("before")
        time.sleep(5)
        yield running
    print(running.table())


FIGURES: dict[str, dict] = {}


def measured(traffic: Traffic, label: str, since: float, sources=None) -> dict:
    """The event's figures: requests and failures in its phase (both sides), recovery time."""
    tallies = traffic.tallies(label)
    end = next(m.at for m in traffic.run.marks if m.at > since and m.label != label)
    figures = {
        "sent": sum(t.sent for t in tallies.values()),
        "failed": sum(t.failed for t in tallies.values()),
        "failedBySource": {s: sum(t.failed for (src, _), t in tallies.items() if src == s) for s in CLUSTERS},
        "recoverySeconds": steady.recovery(traffic.run, since, end, sources),
        "errors": sorted({e for t in tallies.values() for e in t.errors}),
    }
    FIGURES[label] = figures
    print(f"\n{label}: {figures}")
    return figures


def apps(mesh, cluster):
    return kubernetes.client.AppsV1Api(mesh.client(cluster))


def ready_pods(mesh, cluster, namespace, selector) -> list:
    pods = mesh.core(cluster).list_namespaced_pod(namespace, label_selector=selector).items
    return [
        p
        for p in pods
        if not p.metadata.deletion_timestamp
        and any(c.type == "Ready" and c.status == "True" for c in (p.status.conditions or []))
    ]


def event(traffic: Traffic, label: str) -> float:
    traffic.phase(label)
    return traffic.run.now()


def settle(traffic: Traffic, label: str) -> None:
    time.sleep(SETTLE_SECONDS)
    traffic.phase(f"past {label}")


def test_istiod_restarted_in_one_cluster(mesh, traffic):
    old = ready_pods(mesh, "east", "istio-system", "app=istiod")[0].metadata.name
    since = event(traffic, "istiod restart")
    mesh.core("east").delete_namespaced_pod(old, "istio-system")
    wait_for(
        "east's new istiod to be Ready",
        lambda: [p for p in ready_pods(mesh, "east", "istio-system", "app=istiod") if p.metadata.name != old],
        timeout=120,
    )
    settle(traffic, "istiod restart")
    figures = measured(traffic, "istiod restart", since)
    # The proxies keep their last configuration while istiod is away: nothing is lost.
    assert figures["failed"] == 0, traffic.table()


def test_an_east_west_gateway_pod_restarted(mesh, traffic):
    selector = "app=istio-eastwestgateway"
    old = ready_pods(mesh, "west", "istio-system", selector)[0].metadata.name
    since = event(traffic, "gateway pod restart")
    mesh.core("west").delete_namespaced_pod(old, "istio-system")
    wait_for(
        "west's new gateway pod to be Ready",
        lambda: [p for p in ready_pods(mesh, "west", "istio-system", selector) if p.metadata.name != old],
        timeout=120,
    )
    settle(traffic, "gateway pod restart")
    figures = measured(traffic, "gateway pod restart", since)
    assert figures["recoverySeconds"] is not None, traffic.table()
    assert figures["failed"] <= 0.05 * figures["sent"], traffic.table()


def test_a_rollout_of_the_gateway_deployment(mesh, traffic):
    selector = "app=istio-eastwestgateway"
    old = {p.metadata.name for p in ready_pods(mesh, "west", "istio-system", selector)}
    since = event(traffic, "gateway rollout")
    restarted = {
        "spec": {"template": {"metadata": {"annotations": {"kubectl.kubernetes.io/restartedAt": str(time.time())}}}}
    }
    apps(mesh, "west").patch_namespaced_deployment("istio-eastwestgateway", "istio-system", restarted)
    wait_for(
        "the rollout to replace west's gateway pod",
        lambda: (pods := ready_pods(mesh, "west", "istio-system", selector))
        and not {p.metadata.name for p in pods} & old
        and not [p for p in mesh.core("west").list_namespaced_pod("istio-system", label_selector=selector).items
                 if p.metadata.name in old],
        timeout=180,
    )  # fmt: skip
    settle(traffic, "gateway rollout")
    figures = measured(traffic, "gateway rollout", since)
    assert figures["recoverySeconds"] is not None, traffic.table()
    assert figures["failed"] <= 0.05 * figures["sent"], traffic.table()


def stop_helloworld(mesh, traffic, label) -> dict:
    """West's helloworld scaled to none for OUTAGE_SECONDS, then back; east's figures."""
    deployment = "helloworld-v2"
    since = event(traffic, label)
    apps(mesh, "west").patch_namespaced_deployment_scale(deployment, "sample", {"spec": {"replicas": 0}})
    try:
        time.sleep(OUTAGE_SECONDS)
    finally:
        apps(mesh, "west").patch_namespaced_deployment_scale(deployment, "sample", {"spec": {"replicas": 1}})
    traffic.phase(f"{label}: back")
    back = traffic.run.now()
    wait_for("west's helloworld to be Ready", lambda: ready_pods(mesh, "west", "sample", "app=helloworld"), timeout=120)
    wait_for(
        "v2 to answer east again",
        lambda: any(
            s.source == "east" and s.reply.version == "v2" for s in steady.between(traffic.run.samples, back, 1e9)
        ),
        timeout=120,
    )
    settle(traffic, label)
    figures = measured(traffic, label, since, sources=["east"])
    figures["v2BackAfterSeconds"] = round(
        min(s.at for s in traffic.run.samples if s.at >= back and s.source == "east" and s.reply.version == "v2")
        - back,
        1,
    )
    traffic.assert_none_failed(f"past {label}")
    return figures


def cut_gateway(mesh, traffic, label) -> dict:
    """West's gateway address unreachable for OUTAGE_SECONDS, then reachable; east's figures."""
    address = mesh.outputs["clusters"]["west"]["gatewayAddress"]
    since = event(traffic, label)
    mesh.lab.network.blackhole(address)
    try:
        time.sleep(OUTAGE_SECONDS)
    finally:
        mesh.lab.network.restore(address)
    traffic.phase(f"{label}: back")
    back = traffic.run.now()
    wait_for(
        "v2 to answer east again",
        lambda: any(
            s.source == "east" and s.reply.version == "v2" for s in steady.between(traffic.run.samples, back, 1e9)
        ),
        timeout=120,
    )
    settle(traffic, label)
    figures = measured(traffic, label, since, sources=["east"])
    traffic.assert_none_failed(f"past {label}")
    return figures


def test_without_failover_a_stopped_helloworld_costs_east_requests_until_its_endpoint_goes(mesh, traffic):
    figures = stop_helloworld(mesh, traffic, "helloworld stopped, failover off")
    assert figures["failedBySource"]["west"] == 0, traffic.table()  # west's own requests go to east


def test_without_failover_an_unreachable_gateway_fails_east_until_it_is_back(mesh, traffic):
    figures = cut_gateway(mesh, traffic, "gateway unreachable, failover off")
    # Istio's defaults: half of east's requests still go to west's endpoint, each waiting for a
    # connect that never comes, for as long as the gateway is away.
    assert figures["failedBySource"]["east"] > 0, traffic.table()


def test_with_failover_on_east_recovers_within_the_detection_bound(mesh, traffic):
    traffic.phase("up failover on")
    update(mesh, failover={"services": ["helloworld.sample"]})
    traffic.assert_none_failed("up failover on")
    traffic.phase("failover on")
    time.sleep(5)
    stopped = stop_helloworld(mesh, traffic, "helloworld stopped, failover on")
    cut = cut_gateway(mesh, traffic, "gateway unreachable, failover on")
    off = FIGURES["gateway unreachable, failover off"]
    # consecutiveErrors (3) connect timeouts of 1 s each, one sweep (1 s), and slack for the lab.
    bound = 3 * 1 + 1 + 5
    assert cut["recoverySeconds"] is not None and cut["recoverySeconds"] <= bound, (cut, traffic.table())
    assert cut["failedBySource"]["east"] < off["failedBySource"]["east"], (cut, off)
    assert stopped["recoverySeconds"] is not None and stopped["recoverySeconds"] <= bound, (stopped, traffic.table())
