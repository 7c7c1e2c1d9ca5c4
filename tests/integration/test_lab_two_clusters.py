"""The east-west mesh on two real API servers, with the real engine and providers.

Tests run in the order written: they share one `up`, the fault test stops and restarts a
cluster, and the last one destroys.
"""

from __future__ import annotations

import pathlib
import re

import kubernetes
import pytest
import yaml

from .conftest import changes, deploy, issue, openssl, remote_client, secret_text

CLUSTERS = ["east", "west"]


@pytest.fixture(scope="module")
def mesh(tmp_path_factory):
    yield from deploy("two", CLUSTERS, tmp_path_factory)


def test_every_object_is_on_its_own_cluster(mesh):
    for index, name in enumerate(CLUSTERS):
        network = f"network{index + 1}"
        core = mesh.core(name)
        namespace = core.read_namespace("istio-system")
        assert namespace.metadata.labels["topology.istio.io/network"] == network
        assert core.read_namespace("sample").metadata.labels["istio-injection"] == "enabled"
        service = core.read_namespaced_service("istio-eastwestgateway", "istio-system")
        assert service.metadata.labels["topology.istio.io/network"] == network
        assert service.spec.type == "LoadBalancer"
        # Only the other cluster's egress address (its node's, on the lab's network) may connect.
        peer = CLUSTERS[1 - index]
        assert service.spec.load_balancer_source_ranges == mesh.cluster_config(peer)["egressCidrs"]
        assert {p.name: p.port for p in service.spec.ports} == {
            "status-port": 15021,
            "tls": 15443,
            "tls-istiod": 15012,
            "tls-webhook": 15017,
        }
        apps = kubernetes.client.AppsV1Api(mesh.client(name))
        gateway = apps.read_namespaced_deployment("istio-eastwestgateway", "istio-system")
        env = {e.name: e.value for e in gateway.spec.template.spec.containers[0].env}
        assert env["ISTIO_META_REQUESTED_NETWORK_VIEW"] == network
        version = "v1" if name == "east" else "v2"
        apps.read_namespaced_deployment(f"helloworld-{version}", "sample")
        other = "v2" if version == "v1" else "v1"
        with pytest.raises(kubernetes.client.ApiException) as missing:
            apps.read_namespaced_deployment(f"helloworld-{other}", "sample")
        assert missing.value.status == 404


def test_istio_resources_were_accepted_by_the_real_crds(mesh):
    for index, name in enumerate(CLUSTERS):
        custom = mesh.custom(name)
        istio = custom.get_cluster_custom_object("sailoperator.io", "v1", "istios", "default")
        assert istio["spec"]["values"]["global"] == {
            "meshID": "mesh1",
            "multiCluster": {"clusterName": f"cluster{index + 1}"},
            "network": f"network{index + 1}",
        }
        assert istio["spec"]["version"] == "v1.30.3"
        ready = [c for c in istio["status"]["conditions"] if c["type"] == "Ready"]
        assert ready and ready[0]["status"] == "True"
        cni = custom.get_cluster_custom_object("sailoperator.io", "v1", "istiocnis", "default")
        assert cni["spec"]["namespace"] == "istio-cni"
        gateway = custom.get_namespaced_custom_object(
            "networking.istio.io", "v1", "istio-system", "gateways", "cross-network-gateway"
        )
        assert gateway["spec"]["servers"][0]["tls"]["mode"] == "AUTO_PASSTHROUGH"


def test_outputs_name_clusters_networks_and_gateway_addresses(mesh):
    clusters = mesh.outputs["clusters"]
    assert mesh.outputs["meshId"] == "mesh1"
    assert "BEGIN CERTIFICATE" in mesh.outputs["rootCertificate"]
    for index, name in enumerate(CLUSTERS):
        assert clusters[name]["clusterName"] == f"cluster{index + 1}"
        assert clusters[name]["network"] == f"network{index + 1}"
        # The stand-in load-balancer controller's address (the lab's 10.B.253.0/24), read back by the program.
        assert re.fullmatch(r"10\.\d+\.253\.\d+", clusters[name]["gatewayAddress"])
    assert clusters["east"]["remoteSecrets"] == ["istio-remote-secret-cluster2"]
    assert clusters["west"]["remoteSecrets"] == ["istio-remote-secret-cluster1"]


def subject(path: pathlib.Path) -> dict[str, str]:
    """The certificate's subject as attribute -> value (Go orders the RDNs its own way)."""
    line = openssl("x509", "-noout", "-subject", "-nameopt", "sep_comma_plus,space_eq", "-in", str(path)).stdout
    parts = re.split(r"\s*,\s*", line.strip().removeprefix("subject=").strip())
    return dict(re.split(r"\s*=\s*", part, maxsplit=1) for part in parts)


def test_cacerts_chains_verify_under_one_root(mesh, tmp_path):
    roots = set()
    for index, name in enumerate(CLUSTERS):
        secret = mesh.core(name).read_namespaced_secret("cacerts", "istio-system")
        assert sorted(secret.data) == ["ca-cert.pem", "ca-key.pem", "cert-chain.pem", "root-cert.pem"]
        files = {key: tmp_path / f"{name}-{key}" for key in secret.data}
        for key, path in files.items():
            path.write_text(secret_text(secret, key))
        roots.add(files["root-cert.pem"].read_text())
        verify = openssl("verify", "-CAfile", str(files["root-cert.pem"]), str(files["ca-cert.pem"]))
        assert verify.returncode == 0, verify.stderr
        text = openssl("x509", "-noout", "-text", "-in", str(files["ca-cert.pem"])).stdout
        assert re.search(r"X509v3 Basic Constraints: critical\s+CA:TRUE", text), text
        assert re.search(
            r"X509v3 Key Usage: critical\s+Digital Signature, Non Repudiation, Key Encipherment, Certificate Sign", text
        )
        assert "DNS:istiod.istio-system.svc" in text
        assert subject(files["ca-cert.pem"]) == {"O": "Istio", "CN": "Intermediate CA", "L": f"cluster{index + 1}"}
        assert (
            files["cert-chain.pem"].read_text() == files["ca-cert.pem"].read_text() + files["root-cert.pem"].read_text()
        )
        # The key in cacerts belongs to the intermediate certificate.
        cert_key = openssl("x509", "-noout", "-pubkey", "-in", str(files["ca-cert.pem"])).stdout
        key_pub = openssl("pkey", "-pubout", "-in", str(files["ca-key.pem"])).stdout
        assert cert_key == key_pub
    assert len(roots) == 1, "the clusters' cacerts name different roots"
    root_text = openssl("x509", "-noout", "-text", "-in", str(tmp_path / "east-root-cert.pem")).stdout
    assert subject(tmp_path / "east-root-cert.pem") == {"O": "Istio", "CN": "Root CA"}
    assert re.search(r"CA:TRUE, pathlen:1", root_text), root_text


def test_no_ca_below_an_intermediate_is_trusted(mesh, tmp_path):
    """What pathlen:0 on the intermediate is for: a CA it signs must not verify."""
    secret = mesh.core("east").read_namespaced_secret("cacerts", "istio-system")
    for key in secret.data:
        (tmp_path / key).write_text(secret_text(secret, key))
    (tmp_path / "ext.cnf").write_text("basicConstraints=critical,CA:TRUE\nkeyUsage=critical,keyCertSign\n")
    leaf_ext = tmp_path / "leaf.cnf"
    leaf_ext.write_text("basicConstraints=critical,CA:FALSE\n")

    ca, ca_key = tmp_path / "ca-cert.pem", tmp_path / "ca-key.pem"
    # A workload certificate issued by the intermediate verifies, as istiod's do...
    leaf = issue(tmp_path, "workload", ca, ca_key, leaf_ext)
    ok = openssl("verify", "-CAfile", str(tmp_path / "root-cert.pem"), "-untrusted", str(ca), str(leaf))
    assert ok.returncode == 0, ok.stderr
    # ...but a rogue CA under the intermediate, and anything it signs, does not.
    rogue = issue(tmp_path, "rogue", ca, ca_key, tmp_path / "ext.cnf")
    victim = issue(tmp_path, "victim", rogue, tmp_path / "rogue.key", leaf_ext)
    untrusted = tmp_path / "untrusted.pem"
    untrusted.write_text(rogue.read_text() + ca.read_text())
    refused = openssl("verify", "-CAfile", str(tmp_path / "root-cert.pem"), "-untrusted", str(untrusted), str(victim))
    assert refused.returncode != 0
    assert "path length" in (refused.stdout + refused.stderr)


def test_remote_secrets_open_the_other_cluster_read_only(mesh):
    for holder in CLUSTERS:
        (source,) = [c for c in CLUSTERS if c != holder]
        source_cluster = mesh.cluster_config(source)
        secret = mesh.core(holder).read_namespaced_secret(
            f"istio-remote-secret-{source_cluster['clusterName']}", "istio-system"
        )
        assert secret.metadata.labels == {"istio/multiCluster": "true"}
        assert secret.metadata.annotations["networking.istio.io/cluster"] == source_cluster["clusterName"]
        kubeconfig = secret_text(secret, source_cluster["clusterName"])
        assert yaml.safe_load(kubeconfig)["clusters"][0]["cluster"]["server"] == source_cluster["apiServerUrl"]
        remote = remote_client(kubeconfig)
        core = kubernetes.client.CoreV1Api(remote)
        # It reached the SOURCE cluster: its istio-system carries the source's network.
        labels = core.read_namespace("istio-system").metadata.labels
        assert labels["topology.istio.io/network"] == source_cluster["network"]
        assert core.list_service_for_all_namespaces().items
        core.list_pod_for_all_namespaces()
        kubernetes.client.DiscoveryV1Api(remote).list_endpoint_slice_for_all_namespaces()
        with pytest.raises(kubernetes.client.ApiException) as refused:
            core.create_namespaced_config_map(
                "default", kubernetes.client.V1ConfigMap(metadata=kubernetes.client.V1ObjectMeta(name="intruder"))
            )
        assert refused.value.status == 403


def test_second_preview_reports_no_changes(mesh):
    preview = mesh.stack.preview(color="never")
    assert changes(preview) == {}, preview.stdout


def test_unreachable_cluster_is_named_and_the_next_up_converges(mesh):
    from pulumi import automation as auto

    mesh.lab.stop_cluster("west")
    try:
        # A change on both clusters, so that `up` has to talk to west.
        config = dict(mesh.config, readyTimeout="1m", readerTokenRotation="2")
        from lab.stack import write_config

        write_config(mesh.stack.name, config)
        with pytest.raises(auto.CommandError) as failed:
            mesh.stack.up(color="never")
        assert "cluster west: its API server" in str(failed.value) and "unreachable" in str(failed.value)
    finally:
        mesh.lab.start_cluster("west")
    result = mesh.stack.up(color="never")
    assert result.summary.result == "succeeded"
    preview = mesh.stack.preview(color="never")
    assert changes(preview) == {}
    # Nothing lost: both clusters hold their remote secret and the Istio resource.
    for name in CLUSTERS:
        secrets = mesh.core(name).list_namespaced_secret("istio-system").items
        assert len([s for s in secrets if s.metadata.name.startswith("istio-remote-secret-")]) == 1
        mesh.custom(name).get_cluster_custom_object("sailoperator.io", "v1", "istios", "default")
    mesh.config = config


def test_destroy_leaves_none_of_our_objects(mesh):
    mesh.stack.destroy(exclude_protected=True, color="never")
    for name in CLUSTERS:
        core = mesh.core(name)
        for namespace in ("istio-system", "sample", "istio-cni"):
            try:
                phase = core.read_namespace(namespace).status.phase
            except kubernetes.client.ApiException as error:
                assert error.status == 404
            else:
                assert phase == "Terminating", f"{namespace} on {name} is {phase}"
        custom = mesh.custom(name)
        assert custom.list_cluster_custom_object("sailoperator.io", "v1", "istios")["items"] == []
        rbac = kubernetes.client.RbacAuthorizationV1Api(mesh.client(name))
        assert not [r for r in rbac.list_cluster_role().items if r.metadata.name == "istio-mesh-reader"]
        assert not [b for b in rbac.list_cluster_role_binding().items if b.metadata.name == "istio-mesh-reader"]
