"""Requests across the mesh that `up` made: the walk-through's Step 6, through real Envoys.

Every request here leaves the `sleep` pod's own network namespace through its sidecar (Istio's
pilot-agent with upstream Envoy, injected by istiod's real webhook, traffic captured by
istio-init's iptables rules), and a request to the other cluster crosses that cluster's east-west
gateway (pilot-agent `proxy router` + Envoy) at its load-balancer address: the clusters' pod
networks do not reach each other (lab/network/namespaces.py).

Tests run in the order written and share one `up`; the later ones break something and put it back.
"""

from __future__ import annotations

import base64
import re
import subprocess
import time
from collections import Counter

import kubernetes
import pytest

from lab.stack import VENV

from .conftest import HELLO, deploy, openssl, step6, wait_for

CLUSTERS = ["east", "west"]
VERSION = {"east": "v1", "west": "v2"}
KUBECTL = str(VENV / "bin" / "kubectl")


@pytest.fixture(scope="module")
def mesh(tmp_path_factory):
    yield from deploy("data-plane", CLUSTERS, tmp_path_factory)


def versions(lines: list[str]) -> Counter:
    return Counter(m.group("version") if (m := HELLO.match(line)) else line for line in lines)


def kubectl(mesh, cluster: str, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run(
        [KUBECTL, f"--kubeconfig={mesh.lab.kubeconfig_path}", f"--context={cluster}", *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=check,
    )


def pod(mesh, cluster: str, namespace: str, selector: str):
    pods = mesh.core(cluster).list_namespaced_pod(namespace, label_selector=selector).items
    running = [p for p in pods if p.status.phase == "Running" and not p.metadata.deletion_timestamp]
    assert running, f"no running pod {selector} in {cluster}/{namespace}: {[p.metadata.name for p in pods]}"
    return running[0]


def test_the_sample_pods_run_with_real_sidecars(mesh):
    for cluster in CLUSTERS:
        for app in ("sleep", "helloworld"):
            found = pod(mesh, cluster, "sample", f"app={app}")
            names = [c.name for c in (found.spec.init_containers or [])] + [c.name for c in found.spec.containers]
            # istiod's webhook injected them (Istio's native sidecar on a 1.33+ node).
            assert "istio-init" in names and "istio-proxy" in names, names
            statuses = (found.status.init_container_statuses or []) + (found.status.container_statuses or [])
            assert all(s.ready or s.state.terminated for s in statuses), statuses
            assert found.status.pod_ip.startswith("10."), found.status.pod_ip
        gateway = pod(mesh, cluster, "istio-system", "app=istio-eastwestgateway")
        proxy = next(c for c in gateway.spec.containers if c.name == "istio-proxy")
        assert proxy.args[:2] == ["proxy", "router"], proxy.args


def test_step6_both_versions_answer_on_both_sides(mesh):
    for cluster in CLUSTERS:
        seen = wait_for(
            f"both helloworld versions to answer {cluster}'s sleep",
            lambda: both if {"v1", "v2"} <= set(both := versions(step6(mesh, cluster))) else None,
            timeout=120,
            interval=2,
        )
        assert set(seen) == {"v1", "v2"}, f"{cluster}: {seen}"


def test_each_answer_names_a_pod_of_the_cluster_that_runs_its_version(mesh):
    pods = {c: {p.metadata.name for p in mesh.core(c).list_namespaced_pod("sample", label_selector="app=helloworld").items}
            for c in CLUSTERS}  # fmt: skip
    for cluster in CLUSTERS:
        for line in step6(mesh, cluster, 6):
            match = HELLO.match(line)
            assert match, line
            owner = next(c for c in CLUSTERS if VERSION[c] == match.group("version"))
            assert match.group("instance") in pods[owner], (line, pods)


def test_mtls_carries_the_sleep_identity_from_the_mesh_root(mesh, tmp_path):
    # The helloworld stand-in logs the client certificate Envoy's inbound chain saw (the
    # x-forwarded-client-cert header Istio's sidecar adds).
    step6(mesh, "east", 4)
    for cluster in CLUSTERS:
        helloworld = pod(mesh, cluster, "sample", "app=helloworld")
        logs = kubectl(mesh, cluster, "logs", "-n", "sample", helloworld.metadata.name, "-c", "helloworld").stdout
        assert "URI=spiffe://cluster.local/ns/sample/sa/sleep" in logs, logs[-2000:]
    # sleep's own certificate, from its sidecar's Envoy, chains to the mesh's root.
    sleep = pod(mesh, "east", "sample", "app=sleep")
    dump = kubectl(mesh, "east", "exec", "-n", "sample", sleep.metadata.name, "-c", "istio-proxy", "--",
                   "curl", "-s", "localhost:15000/config_dump?resource=dynamic_active_secrets").stdout  # fmt: skip
    chain = base64.b64decode(re.search(r'"certificate_chain":\s*\{\s*"inline_bytes":\s*"([^"]+)"', dump).group(1))
    (tmp_path / "chain.pem").write_bytes(chain)
    (tmp_path / "root.pem").write_text(mesh.outputs["rootCertificate"])
    verified = openssl("verify", "-CAfile", str(tmp_path / "root.pem"), "-untrusted", str(tmp_path / "chain.pem"),
                       str(tmp_path / "chain.pem"))  # fmt: skip
    assert verified.returncode == 0, verified.stderr
    text = openssl("x509", "-in", str(tmp_path / "chain.pem"), "-noout", "-ext", "subjectAltName").stdout
    assert "URI:spiffe://cluster.local/ns/sample/sa/sleep" in text, text


def test_plain_text_from_outside_the_mesh_is_refused_once_strict(mesh):
    helloworld = pod(mesh, "east", "sample", "app=helloworld")
    url = f"http://{helloworld.status.pod_ip}:5000/hello"

    def plain() -> str:
        done = subprocess.run(["curl", "-sS", "-m", "5", url], capture_output=True, text=True)
        return done.stdout + done.stderr

    assert plain().startswith("Hello version: v1"), "PERMISSIVE (the default) takes plain text"
    strict = {
        "apiVersion": "security.istio.io/v1",
        "kind": "PeerAuthentication",
        "metadata": {"name": "default", "namespace": "istio-system"},
        "spec": {"mtls": {"mode": "STRICT"}},
    }
    custom = mesh.custom("east")
    custom.create_namespaced_custom_object("security.istio.io", "v1", "istio-system", "peerauthentications", strict)
    try:
        refused = wait_for("STRICT to refuse plain text", lambda: (o := plain()) and not o.startswith("Hello") and o)
        assert "Hello" not in refused
        # ... while the mesh's own requests still pass.
        assert {"v1", "v2"} <= set(versions(step6(mesh, "east")))
    finally:
        custom.delete_namespaced_custom_object(
            "security.istio.io", "v1", "istio-system", "peerauthentications", "default"
        )


def test_a_source_outside_the_gateway_ranges_cannot_open_it(mesh):
    service = mesh.core("west").read_namespaced_service("istio-eastwestgateway", "istio-system")
    address = service.status.load_balancer.ingress[0].ip
    assert service.spec.load_balancer_source_ranges == mesh.cluster_config("east")["egressCidrs"]
    # This host is not east's node: its connection is dropped, as a cloud load balancer drops it.
    done = subprocess.run(["curl", "-sS", "-m", "4", "-k", f"https://{address}:15443/"], capture_output=True, text=True)
    assert "timed out" in done.stderr, done.stderr


def test_without_west_gateway_east_gets_only_v1_and_v2_returns_with_it(mesh):
    apps = kubernetes.client.AppsV1Api(mesh.client("west"))
    apps.patch_namespaced_deployment_scale("istio-eastwestgateway", "istio-system", {"spec": {"replicas": 0}})
    try:
        wait_for(
            "west's gateway pod to go",
            lambda: not mesh.core("west").list_namespaced_pod("istio-system", label_selector="app=istio-eastwestgateway").items,
        )  # fmt: skip
        time.sleep(2)
        seen = versions(step6(mesh, "east"))
        assert "v2" not in seen, seen
        assert seen["v1"] >= 1, seen
    finally:
        apps.patch_namespaced_deployment_scale("istio-eastwestgateway", "istio-system", {"spec": {"replicas": 1}})
    wait_for(
        "v2 to answer east again",
        lambda: "v2" in versions(step6(mesh, "east", 4)),
        timeout=120,
        interval=2,
    )


def test_a_wrong_network_label_cuts_east_off_from_v2(mesh):
    """West's helloworld pod labelled as on east's network (the label Istio's injector gave it
    says which network a pod is on): east's istiod then sends east's sidecars straight to the
    pod's IP, which no route reaches (each cluster is its own network), instead of through west's
    gateway. Istio's default retries (connect failures, on another endpoint) hide the failed
    connection: east sees v1 only, each answer late. Put back, v2 answers again."""
    core = mesh.core("west")
    helloworld = pod(mesh, "west", "sample", "app=helloworld")
    assert helloworld.metadata.labels["topology.istio.io/network"] == "network2"
    label = {"metadata": {"labels": {"topology.istio.io/network": "network1"}}}
    core.patch_namespaced_pod(helloworld.metadata.name, "sample", label)
    try:
        seen = wait_for(
            "v2 to stop answering east",
            lambda: answers if set(answers := versions(step6(mesh, "east", 4))) == {"v1"} else None,
            timeout=180,
            interval=1,
        )
        assert seen == {"v1": 4}, seen
    finally:
        label["metadata"]["labels"]["topology.istio.io/network"] = "network2"
        core.patch_namespaced_pod(helloworld.metadata.name, "sample", label)
    wait_for(
        "v2 to answer east again, with no error",
        lambda: (seen := versions(step6(mesh, "east", 6))) and set(seen) == {"v1", "v2"},
        timeout=120,
        interval=2,
    )
