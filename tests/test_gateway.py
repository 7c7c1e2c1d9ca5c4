"""The east-west gateway objects against the Sail docs' manifests, and who may reach them."""

from __future__ import annotations

import copy

import pytest
import yaml

from mesh import config
from mesh.plan import gateway

from .conftest import REPO

SAIL = REPO / "tests" / "data" / "sail-manifests"  # Sail's docs' own manifests (README there)


def _without_nulls(value):
    if isinstance(value, dict):
        return {k: _without_nulls(v) for k, v in value.items() if v is not None and _without_nulls(v) != {}}
    if isinstance(value, list):
        return [_without_nulls(v) for v in value]
    return value


def _ours_as_upstream(manifest: dict) -> dict:
    """Our manifest less the deliberate additions listed in mesh/plan/gateway.py's docstring."""
    manifest = copy.deepcopy(manifest)
    manifest["metadata"].pop("annotations", None)
    manifest.get("spec", {}).pop("loadBalancerSourceRanges", None)
    return manifest


@pytest.mark.parametrize("network", ["network1", "network2"])
def test_gateway_objects_match_the_sail_manifests(network):
    upstream = [
        _without_nulls(doc)
        for doc in yaml.safe_load_all((SAIL / f"east-west-gateway-net{network[-1]}.yaml").read_text())
        if doc
    ]
    ours = [_ours_as_upstream(m) for m in gateway.eastwest_gateway_manifests(network, ["203.0.113.0/24"])]
    assert [(m["kind"], m["metadata"]["name"]) for m in ours] == [(m["kind"], m["metadata"]["name"]) for m in upstream]
    for mine, theirs in zip(ours, upstream):
        assert mine == theirs, mine["kind"]


def test_service_exposes_the_four_ports_and_waits_for_an_address():
    service = gateway.eastwest_gateway_manifests("network1", ["203.0.113.0/24"])[-1]
    assert service["spec"]["type"] == "LoadBalancer"
    assert {p["name"]: p["port"] for p in service["spec"]["ports"]} == {
        "status-port": 15021,
        "tls": 15443,
        "tls-istiod": 15012,
        "tls-webhook": 15017,
    }
    assert service["spec"]["loadBalancerSourceRanges"] == ["203.0.113.0/24"]
    assert service["metadata"]["annotations"] == {"pulumi.com/waitFor": "jsonpath={.status.loadBalancer.ingress}"}


def test_workload_await_can_be_skipped_for_clusters_without_kubelets():
    deployment = gateway.eastwest_gateway_manifests("network1", (), await_workloads=False)[1]
    assert deployment["metadata"]["annotations"] == {"pulumi.com/skipAwait": "true"}
    deployment = gateway.eastwest_gateway_manifests("network1", (), await_workloads=True)[1]
    assert "annotations" not in deployment["metadata"]


def test_cross_network_gateway_matches_expose_services():
    (upstream,) = [d for d in yaml.safe_load_all((SAIL / "expose-services.yaml").read_text()) if d]
    ours = gateway.cross_network_gateway_manifest()
    assert ours["metadata"] == {"name": "cross-network-gateway", "namespace": "istio-system"}
    assert ours["spec"] == upstream["spec"]
    assert ours["kind"] == upstream["kind"] and ours["apiVersion"] == "networking.istio.io/v1"


def test_source_ranges_are_the_peers_egress_ranges(three_clusters):
    cfg = config.parse(three_clusters)
    ranges = {c.name: gateway.source_ranges(cfg, c) for c in cfg.clusters}
    assert ranges == {
        "east": ("198.51.100.0/24", "192.0.2.0/24"),
        "west": ("203.0.113.0/24", "192.0.2.0/24"),
        "south": ("203.0.113.0/24", "198.51.100.0/24"),
    }


def test_extra_ranges_are_added_once(east_west):
    east_west["gatewayExtraSourceRanges"] = ["100.64.0.0/10", "198.51.100.0/24"]
    cfg = config.parse(east_west)
    east, west = cfg.clusters
    assert gateway.source_ranges(cfg, east) == ("198.51.100.0/24", "100.64.0.0/10")
    assert gateway.source_ranges(cfg, west) == ("203.0.113.0/24", "100.64.0.0/10", "198.51.100.0/24")


@pytest.mark.parametrize("open_range", ["0.0.0.0/0", "::/0"])
def test_a_gateway_open_to_the_internet_is_refused(east_west, open_range):
    east_west["clusters"][1]["egressCidrs"] = [open_range]
    cfg = config.parse(east_west)
    with pytest.raises(config.ConfigError) as error:
        gateway.source_ranges(cfg, cfg.clusters[0])
    assert str(error.value) == (
        f"config mesh:clusters[1].egressCidrs[0] (cluster 'west'): {open_range!r} admits every address, so the "
        "east-west gateway of cluster 'east', which admits it, would be open to the whole internet; expected the "
        "ranges that traffic leaves from, or mesh:gatewayAllowOpenToInternet: true to accept an open gateway"
    )


def test_an_open_extra_range_is_named_as_such(east_west):
    east_west["gatewayExtraSourceRanges"] = ["100.64.0.0/10", "0.0.0.0/0"]
    cfg = config.parse(east_west)
    with pytest.raises(config.ConfigError) as error:
        gateway.source_ranges(cfg, cfg.clusters[1])
    assert str(error.value).startswith("config mesh:gatewayExtraSourceRanges[1]: '0.0.0.0/0' admits every address")


def test_no_ranges_at_all_is_refused_unless_allowed_by_name(east_west):
    for cluster in east_west["clusters"]:
        cluster.pop("egressCidrs")
    cfg = config.parse(east_west)
    with pytest.raises(config.ConfigError, match="no source ranges are configured"):
        gateway.source_ranges(cfg, cfg.clusters[0])
    east_west["gatewayAllowOpenToInternet"] = True
    cfg = config.parse(east_west)
    assert gateway.source_ranges(cfg, cfg.clusters[0]) == ()
