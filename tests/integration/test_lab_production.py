"""Production features on a real two-cluster lab: token rotation, intermediate renewal, a
refused root change, and `preview` where the clusters cannot be reached.

Tests run in the order written and share one `up`.
"""

from __future__ import annotations

import kubernetes
import pytest

from .conftest import cacerts, changes, deploy, openssl, refused_up, remote_client, secret_text, update

CLUSTERS = ["east", "west"]


@pytest.fixture(scope="module")
def mesh(tmp_path_factory):
    yield from deploy("prod", CLUSTERS, tmp_path_factory)


def remote_kubeconfigs(mesh) -> dict[tuple[str, str], str]:
    """(holder, source) -> the kubeconfig in holder's remote secret for source."""
    found = {}
    for holder in CLUSTERS:
        for source in (c for c in mesh.config["clusters"] if c["name"] != holder):
            secret = mesh.core(holder).read_namespaced_secret(
                f"istio-remote-secret-{source['clusterName']}", "istio-system"
            )
            found[(holder, source["name"])] = secret_text(secret, source["clusterName"])
    return found


def opens(kubeconfig: str, source: dict) -> None:
    labels = kubernetes.client.CoreV1Api(remote_client(kubeconfig)).read_namespace("istio-system").metadata.labels
    assert labels["topology.istio.io/network"] == source["network"]


def test_token_rotation_switches_every_remote_secret_then_revokes_the_old_token(mesh):
    before = remote_kubeconfigs(mesh)
    old_secrets = {name: mesh.outputs["clusters"][name]["readerTokenSecret"] for name in CLUSTERS}
    update(mesh, readerTokenRotation="2")
    after = remote_kubeconfigs(mesh)
    for (holder, source_name), kubeconfig in after.items():
        source = mesh.cluster_config(source_name)
        assert kubeconfig != before[(holder, source_name)], "the remote secret still holds the old token"
        opens(kubeconfig, source)
        with pytest.raises(kubernetes.client.ApiException) as refused:
            opens(before[(holder, source_name)], source)
        assert refused.value.status == 401
    for name, secret in old_secrets.items():
        with pytest.raises(kubernetes.client.ApiException) as gone:
            mesh.core(name).read_namespaced_secret(secret, "istio-system")
        assert gone.value.status == 404


def _serial(pem: str) -> str:
    return openssl("x509", "-noout", "-serial", input_text=pem).stdout.strip()


def test_an_intermediate_inside_its_renewal_window_is_reissued_in_place(mesh, tmp_path):
    before = {name: cacerts(mesh, name) for name in CLUSTERS}
    # A window as long as the certificate's life: the intermediates in place are inside it.
    update(mesh, certificates={"intermediateValidityHours": 87600, "intermediateEarlyRenewalHours": 87600})
    for name in CLUSTERS:
        files, old_files = cacerts(mesh, name), before[name]
        assert files["uid"] == old_files["uid"], "cacerts was replaced, not updated in place"
        assert _serial(files["ca-cert.pem"]) != _serial(old_files["ca-cert.pem"])
        assert files["root-cert.pem"] == old_files["root-cert.pem"]
        assert files["cert-chain.pem"] == files["ca-cert.pem"] + files["root-cert.pem"]
        (tmp_path / "root.pem").write_text(files["root-cert.pem"])
        (tmp_path / "ca.pem").write_text(files["ca-cert.pem"])
        verify = openssl("verify", "-CAfile", str(tmp_path / "root.pem"), str(tmp_path / "ca.pem"))
        assert verify.returncode == 0, verify.stderr
    update(mesh, certificates={})
    preview = mesh.stack.preview(color="never")
    assert changes(preview) == {}, preview.stdout


def test_a_change_of_root_settings_is_refused_with_the_rotation_procedure(mesh):
    root_before = cacerts(mesh, "east")["root-cert.pem"]
    message = refused_up(mesh, dict(mesh.config, certificates={"rsaBits": 2048}))
    assert "mesh:certificates.rsaBits" in message and "Root rotation" in message, message
    assert cacerts(mesh, "east")["root-cert.pem"] == root_before
    preview = mesh.stack.preview(color="never")
    assert changes(preview) == {}, preview.stdout


def test_preview_runs_where_the_clusters_cannot_be_reached(mesh):
    for name in CLUSTERS:
        mesh.lab.stop_cluster(name)
    try:
        preview = mesh.stack.preview(color="never", refresh=False)
        output = preview.stdout + preview.stderr
        for name in CLUSTERS:
            assert f"cluster {name}: its API server" in output and "unreachable from here" in output, output
        assert preview.change_summary.get("same", 0) > 0
    finally:
        for name in CLUSTERS:
            mesh.lab.start_cluster(name)
