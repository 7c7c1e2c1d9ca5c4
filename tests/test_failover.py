"""mesh:failover: the DestinationRules it plans, what its keys accept, and where they land in the
resource graph (Pulumi mocks). Its effect under traffic: tests/integration/test_lab_disruptions.py."""

from __future__ import annotations

import copy

import pytest

from mesh import config
from mesh.plan.failover import clashes, failover_manifests

from .test_mesh_graph import build, by_kind


def with_failover(raw: dict, **failover) -> dict:
    raw = copy.deepcopy(raw)
    raw["failover"] = failover
    return raw


def test_off_by_default_no_rule(east_west):
    assert failover_manifests(config.parse(east_west)) == []


def test_each_service_gets_outlier_detection_spread_over_every_cluster_by_default(east_west):
    (rule,) = failover_manifests(config.parse(with_failover(east_west, services=["helloworld.sample"])))
    assert rule["metadata"] == {"name": "helloworld-failover", "namespace": "sample"}
    assert rule["spec"]["host"] == "helloworld.sample.svc.cluster.local"
    policy = rule["spec"]["trafficPolicy"]
    assert policy["outlierDetection"] == {
        "consecutive5xxErrors": 3,
        "interval": "1s",
        "baseEjectionTime": "30s",
        "maxEjectionPercent": 100,
    }
    assert policy["connectionPool"] == {"tcp": {"connectTimeout": "1s"}}
    # Outlier detection alone would turn Istio's locality load balancing on: spread says off.
    assert policy["loadBalancer"]["localityLbSetting"] == {"enabled": False}


def test_local_first_is_istios_locality_failover_with_the_given_figures(east_west):
    raw = with_failover(
        east_west, services=["a.x", "b.y"], mode="local-first", consecutiveErrors=5, interval="2s",
        baseEjectionTime="1m", connectTimeout="3s",
    )  # fmt: skip
    rules = failover_manifests(config.parse(raw))
    assert [r["metadata"]["name"] for r in rules] == ["a-failover", "b-failover"]
    policy = rules[1]["spec"]["trafficPolicy"]
    assert policy["loadBalancer"]["localityLbSetting"] == {"enabled": True}
    assert policy["outlierDetection"]["consecutive5xxErrors"] == 5
    assert (policy["outlierDetection"]["interval"], policy["outlierDetection"]["baseEjectionTime"]) == ("2s", "60s")
    assert policy["connectionPool"]["tcp"]["connectTimeout"] == "3s"


@pytest.mark.parametrize(
    "failover, message",
    [
        (
            {"services": ["helloworld"]},
            "mesh:failover.services[0]: 'helloworld' is not accepted; expected a Service as <name>.<namespace>",
        ),
        ({"services": "helloworld.sample"}, "mesh:failover.services: 'helloworld.sample' is not accepted"),
        ({"mode": "active"}, "mesh:failover.mode: 'active' is not accepted"),
        ({"interval": "0s"}, "mesh:failover.interval: '0s' is not accepted"),
        ({"outlier": True}, "mesh:failover.outlier: unknown key"),
    ],
)
def test_bad_failover_config_names_the_key_and_the_value(east_west, failover, message):
    with pytest.raises(config.ConfigError) as refused:
        config.parse(with_failover(east_west, **failover))
    assert message in str(refused.value)


def test_every_cluster_gets_the_rule_after_its_sample_apps(east_west):
    raw = with_failover(dict(east_west, sampleApps=True), services=["helloworld.sample"])
    _, registrations, _ = build(raw)
    rules = {r.provider.split("::")[-2]: r for r in by_kind(registrations, "DestinationRule")}
    assert sorted(rules) == ["east", "west"]  # one per cluster, through that cluster's provider
    for cluster, rule in rules.items():
        # After the cluster's own Istio and its sample namespace (the engine waits for both).
        assert any(d.endswith(f"Istio::{cluster}-istio-default") for d in rule.dependencies), rule.dependencies
        assert any(d.endswith(f"Namespace::{cluster}-namespace-sample") for d in rule.dependencies), rule.dependencies


def rule(namespace: str, name: str, host: str, policy: dict | None = None, subsets: list | None = None) -> dict:
    spec: dict = {"host": host}
    if policy is not None:
        spec["trafficPolicy"] = policy
    if subsets is not None:
        spec["subsets"] = subsets
    return {"metadata": {"namespace": namespace, "name": name}, "spec": spec}


TLS = {"tls": {"mode": "ISTIO_MUTUAL"}}
FQDN = "helloworld.sample.svc.cluster.local"


@pytest.mark.parametrize(
    "found, why",
    [
        # Same namespace, same host, a top-level policy: istiod keeps the older rule's policy.
        (rule("sample", "mine", FQDN, TLS), "sets a trafficPolicy for " + FQDN),
        (rule("sample", "mine", "helloworld", TLS), "sets a trafficPolicy"),  # a short name is the namespace's
        # A third namespace: its clients use that rule instead, whatever it sets, wildcards too.
        (rule("shop", "theirs", FQDN, subsets=[{"name": "v1"}]), "clients in namespace shop use"),
        (rule("shop", "theirs", "*.sample.svc.cluster.local"), "host '*.sample.svc.cluster.local'"),
        (rule("shop", "theirs", "*"), "clients in namespace shop use"),
    ],
)
def test_a_rule_that_would_keep_failover_from_taking_effect_is_named(east_west, found, why):
    mesh = config.parse(with_failover(east_west, services=["helloworld.sample"]))
    ours = failover_manifests(mesh)
    (clash,) = clashes(mesh, ours + [found])
    assert clash.startswith("'helloworld.sample': DestinationRule " + found["metadata"]["namespace"] + "/")
    assert why in clash


@pytest.mark.parametrize(
    "found",
    [
        rule("sample", "mine", FQDN, subsets=[{"name": "v1", "labels": {"version": "v1"}}]),  # merged with ours
        rule("istio-system", "mesh-wide", "*.local", TLS),  # the root namespace: only its own clients
        rule("istio-system", "mesh-wide", FQDN, TLS),
        rule("sample", "other", "sleep.sample.svc.cluster.local", TLS),  # another host
        rule("sample", "other", "*.sample.svc.cluster.local", TLS),  # ours is more specific there
        rule("shop", "theirs", "helloworld.sample", TLS),  # istiod takes a dotted host as written
        rule("shop", "theirs", "helloworld", TLS),  # shop's own helloworld
    ],
)
def test_rules_that_leave_failover_in_effect_pass(east_west, found):
    mesh = config.parse(with_failover(east_west, services=["helloworld.sample"]))
    assert clashes(mesh, failover_manifests(mesh) + [found]) == []


def test_no_service_no_clash(east_west):
    assert clashes(config.parse(east_west), [rule("sample", "mine", FQDN, TLS)]) == []
