"""Failures under steady traffic on a real two-cluster lab: what each costs, counted request by
request from both sides, and how long until every request succeeds again.

- istiod restarted in one cluster, an east-west gateway pod restarted, a rollout of the gateway
  Deployment: the failed requests are counted and bounded, and the time to recover measured;
- failover: helloworld stopped in west then brought back, and west's whole gateway made
  unreachable (every packet to its load-balancer address dropped) then reachable, first with
  `mesh:failover` off (Istio's defaults: what users see), then on for helloworld in its default
  mode `spread` (outlier detection and a 1 s connect timeout): east, the surviving side, must
  recover within a bound; then `local-first` (Istio's locality failover), where each side keeps
  to its own helloworld until it stops, and fails over to the other cluster's.

Tests run in the order written and share one `up` and one stream of traffic; each prints its
figures (docs/benchmark.md takes them from bench/without_downtime.py).
"""

from __future__ import annotations

import json
import time
from collections import Counter

import kubernetes
import pytest

from mesh import config as mesh_settings
from mesh.plan.failover import failover_manifests
from mesh.verify import steady

from .conftest import (
    Traffic,
    deploy,
    ready_pods,
    refused_up,
    restart_pod,
    running_traffic,
    sidecar_admin,
    update,
    wait_for,
)

CLUSTERS = ["east", "west"]
SETTLE_SECONDS = 8
"""Traffic counted after each event is over, to see that it stays recovered."""
OUTAGE_SECONDS = 15
"""How long helloworld stays stopped, or the gateway unreachable."""


@pytest.fixture(scope="module")
def mesh(tmp_path_factory):
    yield from deploy("disruptions", CLUSTERS, tmp_path_factory)


@pytest.fixture(scope="module")
def traffic(mesh):
    yield from running_traffic(mesh, fresh=False)


FIGURES: dict[str, dict] = {}


def measured(traffic: Traffic, label: str, since: float, sources=None) -> dict:
    """The event's figures, from its start to the end of `settled <label>`: requests and
    failures (both sides), the recovery time (from `sources`), the errors seen."""
    phases = steady.by_phase(traffic.run)
    inside = [label, f"{label}: back", f"settled {label}"]
    tallies = {}
    for phase in inside:
        for key, tally in phases.get(phase, {}).items():
            tallies.setdefault(key, []).append(tally)
    tallies = {key: steady.Tally.merged(parts) for key, parts in tallies.items()}
    end = next(m.at for m in traffic.run.marks if m.label == f"past {label}")
    figures = {
        "sent": sum(t.sent for t in tallies.values()),
        "failed": sum(t.failed for t in tallies.values()),
        "failedBySource": {s: sum(t.failed for (src, _), t in tallies.items() if src == s) for s in CLUSTERS},
        "sentBySource": {s: sum(t.sent for (src, _), t in tallies.items() if src == s) for s in CLUSTERS},
        "recoverySeconds": steady.recovery(traffic.run, since, end, sources),
        "errors": sorted({e for t in tallies.values() for e in t.errors}),
    }
    FIGURES[label] = figures
    print(f"\n{label}: {figures}")
    return figures


def apps(mesh, cluster):
    return kubernetes.client.AppsV1Api(mesh.client(cluster))


def event(traffic: Traffic, label: str) -> float:
    traffic.phase(label)
    return traffic.run.now()


def settle(traffic: Traffic, label: str) -> None:
    """SETTLE_SECONDS more, counted in phase `settled <label>`."""
    traffic.phase(f"settled {label}")
    time.sleep(SETTLE_SECONDS)
    traffic.phase(f"past {label}")


def test_istiod_restarted_in_one_cluster(mesh, traffic):
    since = event(traffic, "istiod restart")
    restart_pod(mesh, "east", "istio-system", "app=istiod")
    settle(traffic, "istiod restart")
    figures = measured(traffic, "istiod restart", since)
    # The proxies keep their last configuration while istiod is away: nothing is lost.
    assert figures["failed"] == 0, traffic.table()


def test_an_east_west_gateway_pod_restarted(mesh, traffic):
    since = event(traffic, "gateway pod restart")
    restart_pod(mesh, "west", "istio-system", "app=istio-eastwestgateway")
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


def answers_again(traffic, source: str, version: str, since: float) -> float:
    """Seconds from `since` to `source`'s first answer by `version` after it (waited for)."""

    def first():
        found = [
            s.at for s in traffic.run.samples if s.at >= since and s.source == source and s.reply.version == version
        ]
        return min(found) if found else None

    return round(wait_for(f"{version} to answer {source} again", first, timeout=120) - since, 1)


def back_again(traffic, label: str, since: float, hears: str, ready=lambda: None) -> dict:
    """After an outage: phase `<label>: back`, `ready()`, the time until v2 answers `hears`
    again, SETTLE_SECONDS that must lose nothing, and east's figures of the whole event."""
    traffic.phase(f"{label}: back")
    back = traffic.run.now()
    ready()
    v2_back = answers_again(traffic, hears, "v2", back)
    settle(traffic, label)
    figures = measured(traffic, label, since, sources=["east"])
    figures["v2BackAfterSeconds"] = v2_back
    traffic.assert_none_failed(f"settled {label}")
    return figures


def stop_helloworld(mesh, traffic, label) -> dict:
    """West's helloworld scaled to none for OUTAGE_SECONDS, then back; east's figures (and the
    time until v2 answers west, its own side, again)."""
    deployment = "helloworld-v2"
    since = event(traffic, label)
    apps(mesh, "west").patch_namespaced_deployment_scale(deployment, "sample", {"spec": {"replicas": 0}})
    try:
        time.sleep(OUTAGE_SECONDS)
    finally:
        apps(mesh, "west").patch_namespaced_deployment_scale(deployment, "sample", {"spec": {"replicas": 1}})
    return back_again(
        traffic,
        label,
        since,
        "west",
        lambda: wait_for(
            "west's helloworld to be Ready", lambda: ready_pods(mesh, "west", "sample", "app=helloworld"), timeout=120
        ),
    )


def cut_gateway(mesh, traffic, label) -> dict:
    """West's gateway address unreachable for OUTAGE_SECONDS, then reachable; east's figures."""
    address = mesh.outputs["clusters"]["west"]["gatewayAddress"]
    since = event(traffic, label)
    mesh.lab.network.blackhole(address)
    try:
        time.sleep(OUTAGE_SECONDS)
    finally:
        mesh.lab.network.restore(address)
    return back_again(traffic, label, since, "east")


def test_without_failover_a_stopped_helloworld_is_counted_and_its_version_returns(mesh, traffic):
    """Scaled down, the pod is deleted gracefully: its endpoint leaves every istiod, and Istio's
    default retries take a request that still reaches it to another endpoint. Mostly nothing is
    lost; but seen in two runs of five: east's sidecar still sending to west's gateway after the
    pod had gone (12 of 467 of east's requests timed out, the last 22.5 s after the stop), and one
    of west's own requests cut by the stop ("empty response"). What users see, counted: the
    failures stop, and v2 answers again once it is back."""
    figures = stop_helloworld(mesh, traffic, "helloworld stopped, failover off")
    assert figures["recoverySeconds"] is not None, traffic.table()
    during = traffic.tallies("helloworld stopped, failover off")
    assert sum(t.versions["v2"] for t in during.values()) <= 0.02 * sum(t.sent for t in during.values())


def test_without_failover_an_unreachable_gateway_fails_east_until_it_is_back(mesh, traffic):
    figures = cut_gateway(mesh, traffic, "gateway unreachable, failover off")
    # Istio's defaults: half of east's requests still go to west's endpoint, each waiting for a
    # connect that never comes, for as long as the gateway is away.
    assert figures["failedBySource"]["east"] > 0, traffic.table()


HELLOWORLD_CLUSTER = "outbound|5000||helloworld.sample.svc.cluster.local"
RULES = ("networking.istio.io", "v1", "sample", "destinationrules")


def helloworld_policy(mesh, cluster: str) -> dict:
    """What `cluster`'s sleep sidecar (Envoy's own config) has for helloworld: its outlier
    detection (None without) and its connection limit."""
    out = sidecar_admin(mesh, cluster, "config_dump?resource=dynamic_active_clusters")
    for entry in json.loads(out)["configs"]:
        if entry["cluster"]["name"] == HELLOWORLD_CLUSTER:
            found = entry["cluster"]
            limits = found.get("circuit_breakers", {}).get("thresholds", [{}])[0]
            return {"outlierDetection": found.get("outlier_detection"), "maxConnections": limits.get("max_connections")}
    raise AssertionError(f"{cluster}'s sleep has no cluster {HELLOWORLD_CLUSTER}")


def test_failover_beside_a_rule_istiod_would_prefer_is_refused_before_anything_changes(mesh):
    """A user's own DestinationRule for helloworld in its namespace, with a traffic policy: istiod
    keeps one top-level policy per host, so one of the two rules would be ignored. Shown on the
    real istiod (the same failover rule applied by hand beside it: west's sidecar has one rule's
    policy, never both; seen run to run either one), and refused before anything changes."""
    custom = kubernetes.client.CustomObjectsApi(mesh.client("west"))
    own = {
        "apiVersion": "networking.istio.io/v1",
        "kind": "DestinationRule",
        "metadata": {"name": "helloworld-own", "namespace": "sample"},
        "spec": {
            "host": "helloworld.sample.svc.cluster.local",
            "trafficPolicy": {"connectionPool": {"tcp": {"maxConnections": 1000}}},
        },
    }
    wanted = dict(mesh.config, failover={"services": ["helloworld.sample"]})
    (ours,) = failover_manifests(mesh_settings.parse(wanted))
    custom.create_namespaced_custom_object(*RULES, own)
    try:
        message = refused_up(mesh, wanted)
        assert (
            "config mesh:failover.services: a failover rule would not take effect: on cluster west, "
            "'helloworld.sample': DestinationRule sample/helloworld-own sets a trafficPolicy for "
            "helloworld.sample.svc.cluster.local too (istiod takes one of the two policies and ignores the other)"
        ) in message, message
        assert "Nothing was changed" in message and "on cluster east" not in message
        for cluster in CLUSTERS:
            names = [r["metadata"]["name"] for r in mesh.custom(cluster).list_namespaced_custom_object(*RULES)["items"]]
            assert ours["metadata"]["name"] not in names, (cluster, names)
        # What the refusal spares the user: with both rules, west's sidecar has one rule's policy,
        # never both (istiod takes one top-level policy per host and namespace).
        custom.create_namespaced_custom_object(*RULES, ours)
        time.sleep(5)
        both = helloworld_policy(mesh, "west")
        print(f"\nwest's sidecar with both rules: {both}")
        assert not (both["outlierDetection"] and both["maxConnections"] == 1000), both
        custom.delete_namespaced_custom_object(*RULES, own["metadata"]["name"])
        alone = wait_for(
            "west's sidecar to have the failover rule's policy alone",
            lambda: (p := helloworld_policy(mesh, "west"))["outlierDetection"] and p["maxConnections"] != 1000 and p,
        )
        assert alone["outlierDetection"]["consecutive_5xx"] == 3, alone
    finally:
        for name in (own["metadata"]["name"], ours["metadata"]["name"]):
            try:
                custom.delete_namespaced_custom_object(*RULES, name)
            except kubernetes.client.ApiException as error:
                if error.status != 404:
                    raise


def test_with_failover_spread_east_recovers_within_the_detection_bound(mesh, traffic):
    traffic.phase("up failover spread")
    update(mesh, failover={"services": ["helloworld.sample"]})
    traffic.assert_none_failed("up failover spread")
    traffic.phase("failover spread")
    time.sleep(5)
    traffic.assert_both_versions_answer("failover spread")  # still active-active
    stopped = stop_helloworld(mesh, traffic, "helloworld stopped, failover spread")
    cut = cut_gateway(mesh, traffic, "gateway unreachable, failover spread")
    off = FIGURES["gateway unreachable, failover off"]
    # consecutiveErrors (3) connect timeouts of 1 s each, one sweep (1 s), and slack for the lab.
    bound = 3 * 1 + 1 + 5
    assert cut["recoverySeconds"] is not None and cut["recoverySeconds"] <= bound, (cut, traffic.table())
    assert cut["sentBySource"]["east"] > off["sentBySource"]["east"], (cut, off)  # east is not held up
    assert stopped["recoverySeconds"] is not None and stopped["recoverySeconds"] <= bound, (stopped, traffic.table())


def test_with_failover_local_first_each_side_keeps_to_its_own_until_it_stops(mesh, traffic):
    traffic.phase("up failover local-first")
    update(mesh, failover={"services": ["helloworld.sample"], "mode": "local-first"})
    traffic.assert_none_failed("up failover local-first")
    traffic.phase("failover local-first")
    time.sleep(8)
    tallies = traffic.tallies("failover local-first")
    heard = {src: sum((t.versions for (s, _), t in tallies.items() if s == src), Counter()) for src in CLUSTERS}
    # Requests sent before istiod pushed the rule may still have crossed: nearly all stay home.
    assert heard["east"]["v2"] <= 0.1 * sum(heard["east"].values()), heard
    assert heard["west"]["v1"] <= 0.1 * sum(heard["west"].values()), heard
    stopped = stop_helloworld(mesh, traffic, "helloworld stopped, failover local-first")
    during = traffic.tallies("helloworld stopped, failover local-first")
    west_heard = sum((t.versions for (s, _), t in during.items() if s == "west"), Counter())
    assert west_heard["v1"] > 0, west_heard  # west failed over to east's helloworld
    assert stopped["recoverySeconds"] is not None, (stopped, traffic.table())
