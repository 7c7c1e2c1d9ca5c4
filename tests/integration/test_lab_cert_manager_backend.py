"""`certificates.backend: cert-manager` on the lab: the real cert-manager controller on every
cluster issues and renews the intermediates, the real istiod signs with them.

What is real: the engine and providers, the API servers, cert-manager's controller (built by
toolchain/cert-manager.sh), istiod. Nothing stands in for cert-manager.
"""

from __future__ import annotations

import datetime
import time

import kubernetes
import pytest
from cryptography import x509
from pulumi import automation as auto

from lab.lab import Lab
from lab.stack import mesh_config, open_stack, remove_stack
from mesh import config
from mesh.verify import PASS, check_cacerts, read_cacerts
from mesh.verify.issuance import check_issuance

from .conftest import (
    assert_istiods_sign_for_the_whole_mesh,
    cacerts,
    certificate,
    changes,
    deploy,
    intermediate,
    openssl,
    plugged_in_ca,
    refused_up,
    renew,
    Traffic,
    update,
)

CLUSTERS = ["east", "west"]
CERTIFICATES = {"backend": "cert-manager", "intermediateValidityHours": 720, "intermediateEarlyRenewalHours": 240}


@pytest.fixture(scope="module")
def mesh(tmp_path_factory):
    yield from deploy("cert-manager", CLUSTERS, tmp_path_factory, certificates=CERTIFICATES)


def test_up_waits_for_each_intermediate_issued_by_cert_manager_under_the_mesh_root(mesh, tmp_path):
    root = mesh.outputs["rootCertificate"]
    for cluster in CLUSTERS:
        conditions = {c["type"]: c["status"] for c in certificate(mesh, cluster)["status"]["conditions"]}
        assert conditions["Ready"] == "True"
        secret = mesh.core(cluster).read_namespaced_secret("cacerts", "istio-system")
        assert secret.type == "kubernetes.io/tls"
        files = cacerts(mesh, cluster)
        assert {"tls.crt", "tls.key", "ca.crt"} <= set(files)
        assert not {"ca-cert.pem", "ca-key.pem", "root-cert.pem", "cert-chain.pem"} & set(files)
        assert files["ca.crt"].strip() == root.strip()  # the same root on every cluster: the mesh's
        made = intermediate(files)
        assert made.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
        assert (
            made.subject.rfc4514_string()
            == f"CN=Intermediate CA,O=Istio,L={mesh.cluster_config(cluster)['clusterName']}"
        )
        lifetime = made.not_valid_after_utc - made.not_valid_before_utc
        assert abs(lifetime - datetime.timedelta(hours=720)) < datetime.timedelta(minutes=1)
        (tmp_path / f"{cluster}.pem").write_text(plugged_in_ca(files)[1])
        (tmp_path / "root.pem").write_text(root)
        result = openssl("verify", "-CAfile", str(tmp_path / "root.pem"), str(tmp_path / f"{cluster}.pem"))
        assert result.returncode == 0, result.stderr
    assert mesh.outputs["certificateBackend"] == "cert-manager"
    assert mesh.outputs["intermediateRenewal"] == {}


def test_mesh_verify_reads_the_tls_form_and_finds_one_root(mesh):
    roots = x509.load_pem_x509_certificates(mesh.outputs["rootCertificate"].encode())
    results = check_cacerts({cluster: read_cacerts(mesh.core(cluster)) for cluster in CLUSTERS}, roots)
    assert [(r.cluster, r.status) for r in results] == [(cluster, PASS) for cluster in CLUSTERS], results
    assert all("tls.crt/ca.crt form" in r.detail for r in results), results
    settings = config.parse(mesh.config)
    for cluster in settings.clusters:
        issued = check_issuance(mesh.custom(cluster.name), settings, cluster)
        assert [(r.item, r.status) for r in issued] == [("Issuer mesh-root-ca", PASS), ("Certificate cacerts", PASS)]
        assert issued[0].detail == "Ready (CA)" and "cert-manager renews it at 20" in issued[1].detail, issued


def test_each_istiod_signs_with_its_cert_manager_intermediate_for_the_whole_mesh(mesh, tmp_path):
    assert_istiods_sign_for_the_whole_mesh(mesh, CLUSTERS, tmp_path)


def test_cert_manager_renews_without_up_and_istiod_takes_the_new_intermediate(mesh, tmp_path):
    """A renewal as `cmctl renew` asks for one (the Issuing condition, ManuallyTriggered): a new
    intermediate in the same Secret, which istiod signs with, and `up` has nothing to do. All
    the while steady traffic from both sides (a new mTLS handshake per request, one kept-alive
    connection each): the renewal loses no request."""
    with Traffic(mesh) as traffic:
        traffic.phase("before")
        time.sleep(5)
        traffic.phase("cert-manager renewal")
        before = intermediate(cacerts(mesh, "east"))
        renewed = renew(mesh, "east")
        assert renewed.public_key().public_numbers() != before.public_key().public_numbers()  # rotationPolicy Always
        assert_istiods_sign_for_the_whole_mesh(mesh, CLUSTERS, tmp_path)
        traffic.phase("after cert-manager renewal")
        time.sleep(10)
        traffic.phase("past cert-manager renewal")
    print(traffic.table())
    for phase in ("before", "cert-manager renewal", "after cert-manager renewal"):
        traffic.assert_none_failed(phase)
    traffic.assert_both_versions_answer("after cert-manager renewal")
    assert changes(mesh.stack.preview(color="never")) == {}


def test_without_cert_manager_up_is_refused_before_anything_is_made(tmp_path):
    with Lab(tmp_path / "lab", clusters=CLUSTERS, cert_manager=False) as lab:
        stack = open_stack(
            "itest-no-cert-manager",
            mesh_config(lab.clusters, lab.kubeconfig_path, certificates=CERTIFICATES),
            tmp_path / "state",
        )
        try:
            with pytest.raises(auto.CommandError) as refused:
                stack.up(color="never")
            message = " ".join(str(refused.value).split())
            for cluster in CLUSTERS:
                assert f"cluster {cluster} (context {cluster}) has no CRD certificates.cert-manager.io" in message
            assert "set certificates.backend: pulumi-tls" in message
            made = [r["type"] for r in stack.export_stack().deployment.get("resources") or []]
            assert set(made) <= {"pulumi:pulumi:Stack", "pulumi:pulumi:StackReference"}, made
            for cluster in lab.clusters:
                core = kubernetes.client.CoreV1Api(
                    kubernetes.config.new_client_from_config(str(lab.kubeconfig_path), context=cluster.context)
                )
                assert "istio-system" not in {n.metadata.name for n in core.list_namespace().items}
        finally:
            remove_stack(stack)


@pytest.fixture(scope="module")
def tls_mesh(tmp_path_factory):
    """A mesh made with the default backend (pulumi-tls), to switch."""
    yield from deploy("switch", CLUSTERS, tmp_path_factory)


def test_an_existing_mesh_switches_to_cert_manager_under_the_same_root(tls_mesh, tmp_path):
    root = tls_mesh.outputs["rootCertificate"]
    assert_istiods_sign_for_the_whole_mesh(tls_mesh, CLUSTERS, tmp_path)
    uids = {cluster: cacerts(tls_mesh, cluster)["uid"] for cluster in CLUSTERS}
    update(tls_mesh, certificates=CERTIFICATES)
    assert tls_mesh.outputs["rootCertificate"] == root
    for cluster in CLUSTERS:
        files = cacerts(tls_mesh, cluster)
        # The same Secret, never deleted (no moment without a plugged-in CA): cert-manager's keys
        # under the same root, the program's four files gone.
        assert files["uid"] == uids[cluster]
        assert sorted(files) == ["ca.crt", "tls.crt", "tls.key", "uid"]
        assert files["ca.crt"].strip() == root.strip()
    assert_istiods_sign_for_the_whole_mesh(tls_mesh, CLUSTERS, tmp_path)
    # The next `up` forgets the handed-over Secret resource and keeps the Secret.
    assert changes(tls_mesh.stack.preview(color="never")) == {"delete": len(CLUSTERS)}
    update(tls_mesh)
    assert {cluster: cacerts(tls_mesh, cluster)["uid"] for cluster in CLUSTERS} == uids
    assert changes(tls_mesh.stack.preview(color="never")) == {}


def test_back_to_pulumi_tls_in_two_ups_in_place_under_the_same_root(tls_mesh, tmp_path):
    """From cert-manager back to pulumi-tls: the first `up` releases `cacerts` (Certificate, Issuer
    and the root's Secret go, the Secret stays as cert-manager left it), the second takes it over
    in the tls form. The Secret is never deleted, the root never changes, istiod signs throughout."""
    root = tls_mesh.outputs["rootCertificate"]
    # cert-manager with --enable-certificate-owner-ref puts this on its Secret: the release would
    # delete cacerts with the Certificate (the lab's garbage collector would), so it is refused.
    owned = certificate(tls_mesh, "west")
    reference = {
        "apiVersion": "cert-manager.io/v1",
        "kind": "Certificate",
        "name": "cacerts",
        "uid": owned["metadata"]["uid"],
    }
    core = tls_mesh.core("west")
    core.patch_namespaced_secret("cacerts", "istio-system", {"metadata": {"ownerReferences": [reference]}})
    before = {cluster: cacerts(tls_mesh, cluster) for cluster in CLUSTERS}
    message = " ".join(refused_up(tls_mesh, dict(tls_mesh.config, certificates={})).split())
    assert "would delete cacerts on cluster west" in message and "--enable-certificate-owner-ref" in message, message
    assert {cluster: cacerts(tls_mesh, cluster) for cluster in CLUSTERS} == before
    assert certificate(tls_mesh, "west")["metadata"]["uid"] == owned["metadata"]["uid"]
    core.patch_namespaced_secret("cacerts", "istio-system", [{"op": "remove", "path": "/metadata/ownerReferences"}])
    update(tls_mesh, certificates={})
    assert tls_mesh.outputs["cacertsForm"] == {cluster: "released" for cluster in CLUSTERS}
    for cluster in CLUSTERS:
        assert cacerts(tls_mesh, cluster) == before[cluster]  # untouched: cert-manager's last keys
        custom = tls_mesh.custom(cluster)
        for plural in ("certificates", "issuers"):
            listed = custom.list_namespaced_custom_object("cert-manager.io", "v1", "istio-system", plural)["items"]
            assert listed == [], plural
        secrets = {s.metadata.name for s in tls_mesh.core(cluster).list_namespaced_secret("istio-system").items}
        assert "mesh-root-ca" not in secrets  # the root's key is off the clusters again
    assert_istiods_sign_for_the_whole_mesh(tls_mesh, CLUSTERS, tmp_path)
    update(tls_mesh)
    assert tls_mesh.outputs["cacertsForm"] == {cluster: "tls" for cluster in CLUSTERS}
    assert tls_mesh.outputs["cacertsSecretType"] == {cluster: "Opaque" for cluster in CLUSTERS}
    assert tls_mesh.outputs["rootCertificate"] == root
    renewal = tls_mesh.outputs["intermediateRenewal"]
    for cluster in CLUSTERS:
        files = cacerts(tls_mesh, cluster)
        secret = tls_mesh.core(cluster).read_namespaced_secret("cacerts", "istio-system")
        # The program made it (Opaque), cert-manager wrote into it, the program takes it back.
        assert files["uid"] == before[cluster]["uid"] and secret.type == "Opaque"
        assert sorted(files) == ["ca.crt", "tls.crt", "tls.key", "uid"]  # no key of another form
        assert files["ca.crt"].strip() == root.strip()
        # The program's intermediate now, not cert-manager's last: the one it records for renewal.
        ours = intermediate(files)
        assert ours.serial_number != intermediate(before[cluster]).serial_number
        valid_until = datetime.datetime.fromisoformat(renewal[cluster]["validUntil"].replace("Z", "+00:00"))
        assert abs(ours.not_valid_after_utc - valid_until) < datetime.timedelta(seconds=2)
    roots = x509.load_pem_x509_certificates(root.encode())
    results = check_cacerts({cluster: read_cacerts(tls_mesh.core(cluster)) for cluster in CLUSTERS}, roots)
    assert [(r.cluster, r.status) for r in results] == [(cluster, PASS) for cluster in CLUSTERS], results
    assert_istiods_sign_for_the_whole_mesh(tls_mesh, CLUSTERS, tmp_path)
    assert changes(tls_mesh.stack.preview(color="never")) == {}


def test_back_on_pulumi_tls_the_root_rotates_in_the_tls_form(tls_mesh, tmp_path):
    """What a root rotation of a cert-manager mesh takes: back to pulumi-tls (above), the four
    rotation steps, each one taken by the real istiods in the tls form (ca.crt the bundle)."""
    old = tls_mesh.outputs["rootCertificate"].strip()
    for phase in ("trust", "sign", "retire", None):
        certificates = {"rootGeneration": 1, "rootRotationWaitHours": 0, **({"rootRotation": phase} if phase else {})}
        update(tls_mesh, certificates=certificates)
        roots = tls_mesh.outputs["rootCertificate"]
        for cluster in CLUSTERS:
            files = cacerts(tls_mesh, cluster)
            assert sorted(files) == ["ca.crt", "tls.crt", "tls.key", "uid"], (phase, sorted(files))
            assert files["ca.crt"].strip() == roots.strip(), phase
        assert (old in roots) == (phase in ("trust", "sign")), phase
        assert_istiods_sign_for_the_whole_mesh(tls_mesh, CLUSTERS, tmp_path)
        mesh_roots = x509.load_pem_x509_certificates(roots.encode())
        results = check_cacerts({cluster: read_cacerts(tls_mesh.core(cluster)) for cluster in CLUSTERS}, mesh_roots)
        assert [(r.cluster, r.status) for r in results] == [(c, PASS) for c in CLUSTERS], (phase, results)
    assert tls_mesh.outputs["cacertsForm"] == {cluster: "tls" for cluster in CLUSTERS}
    assert changes(tls_mesh.stack.preview(color="never")) == {}
