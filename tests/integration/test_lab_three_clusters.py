"""A third cluster joins a running two-cluster mesh, and leaves it again, under steady traffic
from the first two (a new mTLS handshake per request, and one kept-alive connection each): no
request may be lost either way. In between, the three-cluster mesh: six remote secrets, each
opening the cluster it names, every istiod with both peers synced. Tests run in order.

The other clusters' remote secrets for a joining one wait until its gateway and workloads are
Ready: when they did not, east's and west's sidecars got the new cluster's endpoints before its
gateway could carry them, and 3 to 16 connections per side failed at its gateway in each join
(2 of 2 runs; Istio's retries hid most, once all three attempts of a request failed). Their own
counters now show no connection failing there."""

from __future__ import annotations

import threading
import time

import kubernetes
import pytest

from lab import traffic as lab_traffic
from lab.stack import mesh_config

from .conftest import deploy, remote_client, running_traffic, secret_text, synced_peers, update, wait_for

CLUSTERS = ["east", "west", "south"]
FIRST = CLUSTERS[:2]
SETTLE_SECONDS = 8


@pytest.fixture(scope="module")
def mesh(tmp_path_factory):
    yield from deploy("three", CLUSTERS, tmp_path_factory, in_mesh=FIRST)


@pytest.fixture(scope="module")
def traffic(mesh):
    yield from running_traffic(mesh)


def heard_from(traffic, target: str, since: float) -> set[str]:
    """The sources that got an answer from a pod of `target` after `since`."""
    return {s.source for s in traffic.run.samples if s.sent_at >= since and s.target == target}


def fresh_handshakes_once_it_can(mesh, stop: threading.Event) -> None:
    """helloworld-fresh on south as soon as its `sample` namespace and istiod (the webhook that
    validates the rule and route) are there, so that south joins with it, as a cluster joins
    with the services it runs. Added after south had joined, east's and west's sidecars got its
    endpoint there before south's gateway had a route for the new Service: the first request
    across was reset (Istio's own race for a Service new to the mesh, hidden by its default
    retries, which helloworld-fresh turns off)."""
    while not stop.is_set():
        try:
            lab_traffic.fresh_handshakes([mesh.client("south")])
            return
        except kubernetes.client.ApiException:
            stop.wait(0.5)


def test_a_third_cluster_joins_the_running_mesh_without_a_lost_request(mesh, traffic):
    traffic.phase("add south")
    everything = mesh_config(mesh.lab.clusters, mesh.lab.kubeconfig_path)["clusters"]
    stop = threading.Event()
    helper = threading.Thread(target=fresh_handshakes_once_it_can, args=(mesh, stop))
    helper.start()
    try:
        update(mesh, clusters=everything)
    finally:
        stop.set()
        helper.join()
    lab_traffic.fresh_handshakes([mesh.client("south")])
    since = traffic.run.now()
    wait_for("east and west to be answered by south", lambda: heard_from(traffic, "south", since) == set(FIRST))
    traffic.phase("after add south")
    time.sleep(SETTLE_SECONDS)
    traffic.phase("past add south")
    for phase in ("add south", "after add south"):
        traffic.assert_none_failed(phase)
    traffic.assert_both_versions_answer("after add south")
    south_gateway = f"{mesh.outputs['clusters']['south']['gatewayAddress']}:15443"
    for source in FIRST:
        for name in ("helloworld", lab_traffic.FRESH):
            counters = traffic.sidecar_counters(source, name, ("cx_connect_fail", "rq_total"))
            assert counters[south_gateway]["rq_total"] > 0, (source, name, counters)
            assert counters[south_gateway]["cx_connect_fail"] == 0, (source, name, counters)


def test_six_remote_secrets_each_open_the_right_cluster(mesh):
    opened = set()
    for holder in CLUSTERS:
        secrets = (
            mesh.core(holder).list_namespaced_secret("istio-system", label_selector="istio/multiCluster=true").items
        )
        assert len(secrets) == 2
        for secret in secrets:
            cluster_name = secret.metadata.annotations["networking.istio.io/cluster"]
            source = next(c for c in mesh.config["clusters"] if c["clusterName"] == cluster_name)
            assert source["name"] != holder
            core = kubernetes.client.CoreV1Api(remote_client(secret_text(secret, cluster_name)))
            labels = core.read_namespace("istio-system").metadata.labels
            assert labels["topology.istio.io/network"] == source["network"]
            opened.add((holder, source["name"]))
    assert len(opened) == 6


def test_every_istiod_has_both_peers_synced(mesh):
    names = {c["name"]: c["clusterName"] for c in mesh.config["clusters"]}
    for holder in CLUSTERS:
        expected = {names[peer] for peer in CLUSTERS if peer != holder}

        def all_synced() -> dict | None:
            peers = synced_peers(mesh, holder)
            return peers if all(peers.get(c) == "synced" for c in expected) else None

        peers = wait_for(f"{holder}'s istiod to sync {sorted(expected)}", all_synced)
        # Its own cluster and the two peers, nothing else.
        assert set(peers) == expected | {names[holder]}, peers


def test_the_third_cluster_leaves_again_without_a_lost_request(mesh, traffic):
    traffic.phase("remove south")
    update(mesh, clusters=[c for c in mesh.config["clusters"] if c["name"] in FIRST])
    gone = traffic.run.now()
    wait_for(
        "south to answer nobody for 5 s",
        lambda: traffic.run.now() - gone > 5 and not heard_from(traffic, "south", traffic.run.now() - 5),
        timeout=60,
    )
    traffic.phase("after remove south")
    time.sleep(SETTLE_SECONDS)
    traffic.phase("past remove south")
    for phase in ("remove south", "after remove south"):
        traffic.assert_none_failed(phase)
    traffic.assert_both_versions_answer("after remove south")
