"""Istio's real istiod reads what `up` made, on two real API servers, with the real engine.

Each lab cluster runs the istiod that istio.io/istio builds (toolchain/istio.sh), a pod of the
cluster's node (lab/nodes/node.py) from the Deployment the real Sail operator rendered; `up`
itself waited for it, because the operator reports the `Istio` resource Ready only once istiod answers ready.
Tests run in the order written and share one `up`.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess

import kubernetes
import pytest

from lab.toolchain import istio_binaries
from mesh.plan import samples
from mesh import verify as v

from . import istio_clients
from .conftest import (
    assert_istiods_sign_for_the_whole_mesh,
    cacerts,
    cluster_name,
    deploy,
    istio_ca_root,
    istiod_debug,
    istiod_log,
    istiod_state,
    run_verify,
    service_account_token,
    synced_peers,
    verifies,
    wait_for,
    workload_certificate,
    xds_channel,
)

CLUSTERS = ["east", "west"]
HELLOWORLD = f"outbound|{samples.HELLOWORLD_PORT}||helloworld.sample.svc.cluster.local"
# A status code, not any number: istiod logs resource versions too ("resource version=401").
AUTH_FAILURE = re.compile(r"(?<!version=)\b(401|403)\b|Unauthorized|forbidden", re.IGNORECASE)


@pytest.fixture(scope="module")
def mesh(tmp_path_factory):
    yield from deploy("istiod", CLUSTERS, tmp_path_factory)


def test_up_waited_for_a_real_istiod_per_cluster(mesh):
    for name in CLUSTERS:
        state = istiod_state(mesh, name)
        assert state["running"] and state["ready"], state
        log = istiod_log(mesh, name)
        # istiod found the plugged-in CA the program wrote (cacerts, as a Secret volume).
        assert "Use plugged-in cert" in log or "Use local CA certificate" in log, log[-3000:]


def test_each_istiod_signs_with_the_mesh_ca(mesh, tmp_path):
    root = mesh.outputs["rootCertificate"]
    for name in CLUSTERS:
        # istiod hands every namespace the trust bundle of its cacerts: the mesh root.
        assert istio_ca_root(mesh, name).strip() == root.strip()
        # A workload certificate from the real CA chains to the mesh root...
        chain = workload_certificate(mesh, name, tmp_path)
        assert chain[1].strip() == cacerts(mesh, name)["ca-cert.pem"].strip()
        result = verifies(chain, root, tmp_path, f"{name}-mesh")
        assert result.returncode == 0, result.stderr
    # ...and every cluster's root-cert.pem accepts every cluster's workloads.
    assert_istiods_sign_for_the_whole_mesh(mesh, CLUSTERS, tmp_path)


def test_every_istiod_has_every_peer_synced_without_auth_errors(mesh):
    for name in CLUSTERS:
        expected = {cluster_name(mesh, peer): "synced" for peer in CLUSTERS if peer != name}
        wait_for(
            f"{name}'s istiod to sync {sorted(expected)}",
            lambda: {k: v for k, v in synced_peers(mesh, name).items() if k in expected} == expected,
        )
        errors = [line for line in istiod_log(mesh, name).splitlines() if AUTH_FAILURE.search(line)]
        assert not errors, "\n".join(errors[:10])


def test_a_west_endpoint_reaches_east_sidecars_through_wests_gateway(mesh):
    west_version = mesh.cluster_config("west").get("helloworldVersion", "v2")
    deployment = next(
        m
        for m in samples.sample_manifests(west_version)
        if m["kind"] == "Deployment" and m["metadata"]["name"] == f"helloworld-{west_version}"
    )
    selector = ",".join(f"{k}={v}" for k, v in deployment["spec"]["selector"]["matchLabels"].items())
    (pod,) = mesh.core("west").list_namespaced_pod("sample", label_selector=selector).items
    pod_ip = pod.status.pod_ip
    west_gateway = mesh.outputs["clusters"]["west"]["gatewayAddress"]

    def endpoints(cluster: str, network: str) -> list:
        node = istio_clients.SidecarNode(
            f"sleep-{cluster}",
            "sample",
            "10.244.9.9",
            "sleep",
            cluster_name(mesh, cluster),
            network,
            mesh.config["meshId"],
            {"app": "sleep"},
        )
        token = service_account_token(mesh, cluster, "sample", "sleep")
        with xds_channel(mesh, cluster) as channel:
            return istio_clients.sidecar_endpoints(channel, token, node, HELLOWORLD)

    east = wait_for(
        "east's istiod to serve west's helloworld", lambda: endpoints("east", mesh.cluster_config("east")["network"])
    )
    (own,) = mesh.core("east").list_namespaced_pod("sample", label_selector="app=helloworld").items
    # East's own pod directly, west's through west's gateway.
    assert sorted((e.address, e.port, e.tls_mode) for e in east) == sorted(
        [(own.status.pod_ip, samples.HELLOWORLD_PORT, "istio"), (west_gateway, 15443, "istio")]
    )
    west = wait_for(
        "west's istiod to serve its own helloworld", lambda: endpoints("west", mesh.cluster_config("west")["network"])
    )
    east_gateway = mesh.outputs["clusters"]["east"]["gatewayAddress"]
    assert sorted((e.address, e.port) for e in west) == sorted(
        [(pod_ip, samples.HELLOWORLD_PORT), (east_gateway, 15443)]
    )
    # istiod's own view, which `mesh verify` reads: west's gateway known for west's network.
    gateways = istiod_debug(mesh, "east", "/debug/networkz")
    assert any(g.get("Addr") == west_gateway and g.get("Port") == 15443 for g in gateways), gateways


def test_mesh_verify_shows_each_istiod_connected_and_serving_the_peer(mesh):
    report = run_verify(mesh, requests=1, timeout=60)
    by_check = {}
    for r in report.results:
        by_check.setdefault(r.check, []).append(r)
    for check in (v.CONTROL_PLANE, v.ISTIOD, v.CACERTS, v.REMOTE_SECRETS, v.ISTIOD_PEERS):
        assert by_check[check] and not any(r.failed for r in by_check[check]), by_check[check]
    peers = {(r.cluster, r.item): r.detail for r in by_check[v.ISTIOD_PEERS]}
    assert set(peers) == {("east", "peer west"), ("west", "peer east")}
    assert "synced" in peers[("east", "peer west")]
    endpoints = {(r.cluster, r.item): r for r in by_check[v.REMOTE_ENDPOINTS]}
    # Each istiod serves the other cluster's helloworld pod through that cluster's gateway.
    assert set(endpoints) == {("east", "helloworld of west"), ("west", "helloworld of east")}
    assert not any(r.failed for r in endpoints.values()), endpoints


def test_a_reader_role_without_endpointslices_leaves_the_peer_unsynced_and_verify_says_why(mesh):
    rbac = kubernetes.client.RbacAuthorizationV1Api(mesh.client("west"))
    role = rbac.read_cluster_role("istio-mesh-reader")
    original = role.rules
    role.rules = [r for r in original if "endpointslices" not in (r.resources or [])]
    assert len(role.rules) == len(original) - 1
    rbac.replace_cluster_role("istio-mesh-reader", role)
    try:
        # A fresh istiod on east reads west through the remote secret, as after a restart.
        before = istiod_state(mesh, "east")
        os.kill(before["pid"], signal.SIGKILL)
        wait_for(
            "east's node to restart its istiod",
            lambda: (s := istiod_state(mesh, "east"))["pid"] != before["pid"] and s["running"],
            timeout=60,
        )
        # The restarted container's own log, as `kubectl logs` shows it (the killed one's is its
        # previous log).
        wait_for(
            "east's istiod to be refused endpointslices on west",
            lambda: re.search(r"endpointslices.*forbidden|forbidden.*endpointslices", istiod_log(mesh, "east")),
            timeout=60,
        )
        # istiod turns ready without west once PILOT_REMOTE_CLUSTER_TIMEOUT (30 s) has passed.
        wait_for(
            "east's istiod to give up waiting for west",
            lambda: synced_peers(mesh, "east").get("cluster2") == "timeout" and istiod_state(mesh, "east")["ready"],
            timeout=90,
        )
        report = run_verify(mesh, requests=1, timeout=5)
        east = next(r for r in report.results if r.check == v.ISTIOD_PEERS and r.cluster == "east")
        assert east.failed and "cluster2" in east.detail, east
        # ...and names the missing right, found by opening the remote secret as istiod does.
        assert (
            "may not list endpointslices.discovery.k8s.io, watch endpointslices.discovery.k8s.io on west" in east.detail
        ), east
    finally:
        role.rules = original
        role.metadata.resource_version = None
        rbac.replace_cluster_role("istio-mesh-reader", role)
    wait_for(
        "east's istiod to sync west once the rule is back",
        lambda: synced_peers(mesh, "east").get("cluster2") == "synced",
        timeout=120,
    )


# What `istioctl analyze` reports on the lab, and why none of it is a fault of what `up` made.
# Keyed by (code, origin); analyze reads the peers through the remote secrets, so it also compares
# Services across clusters.
EXPECTED_ANALYSIS = {
    (
        "IST0170",
        "Service istio-system/istio-eastwestgateway",
    ): "the LoadBalancer Service's nodePorts are allocated per cluster and the analyzer compares them "
    "too (reflect.DeepEqual of the ports); checked below that nothing else differs",
    (
        "IST0170",
        "Service default/kubernetes",
    ): "each lab API server listens on its own port, the kubernetes Service's targetPort",
    (
        "IST0102",
        "Namespace istio-cni",
    ): "Info: the CNI namespace is not labelled for injection, and needs none (no workload runs there)",
    ("IST0102", "Namespace default"): "Info: `default` is not ours",
    ("IST0102", "Namespace sail-operator"): "Info: the Sail operator's own namespace (its install's, not ours)",
}


def test_istioctl_analyze_finds_nothing_wrong_with_what_up_made(mesh):
    istioctl = istio_binaries()["istioctl"]
    seen = set()
    for name in CLUSTERS:
        done = subprocess.run(
            [
                istioctl,
                "analyze",
                "--all-namespaces",
                "--kubeconfig",
                str(mesh.lab.kubeconfig_path),
                "--context",
                name,
                "-o",
                "json",
            ],
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert done.returncode in (0, 79), done.stderr  # 79: analyze found messages
        messages = json.loads(done.stdout or "[]")
        unexplained = [m for m in messages if (m["code"], m["origin"]) not in EXPECTED_ANALYSIS]
        assert not unexplained, json.dumps(unexplained, indent=2)
        seen |= {(m["code"], m["origin"]) for m in messages}
    # The gateway Services of the two clusters differ in their nodePorts and nothing else.
    if ("IST0170", "Service istio-system/istio-eastwestgateway") in seen:
        ports = []
        for name in CLUSTERS:
            service = mesh.core(name).read_namespaced_service("istio-eastwestgateway", "istio-system")
            ports.append(sorted((p.name, p.port, p.protocol, str(p.target_port)) for p in service.spec.ports))
        assert ports[0] == ports[1], ports
