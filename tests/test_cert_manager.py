"""`certificates.backend: cert-manager`: the resource graph with Pulumi mocks, and what the config
refuses. The lab test (tests/integration/test_lab_cert_manager_backend.py) runs it against the real
cert-manager controller and istiod."""

from __future__ import annotations

import copy

import pytest

from mesh import config
from mesh.config import ConfigError
from mesh.plan.cacerts_handover import CacertsStep, LiveCacerts, cacerts_step, previous_steps

from .test_mesh_graph import build, by_kind, cluster_of, providers


def cert_manager(raw: dict, **certificates) -> dict:
    raw = copy.deepcopy(raw)
    raw["certificates"] = {"backend": "cert-manager", **certificates}
    return raw


def on_cluster(registrations, cluster: str):
    provider_map = providers(registrations)
    return [r for r in registrations if r.type.startswith("kubernetes:") and cluster_of(r, provider_map) == cluster]


def test_each_cluster_gets_an_issuer_from_the_root_and_a_certificate_for_cacerts(east_west):
    raw = cert_manager(east_west, intermediateValidityHours=720, intermediateEarlyRenewalHours=240)
    cfg, registrations, outputs = build(raw)
    for cluster in cfg.clusters:
        mine = on_cluster(registrations, cluster.name)
        (root,) = by_kind(mine, "Secret", "mesh-root-ca", "istio-system")
        assert root.inputs["type"] == "kubernetes.io/tls" and "stringData" in root.secret_inputs
        assert "cert-of-mesh-root-ca-cert" in root.inputs["stringData"]["tls.crt"]
        assert "key-of-mesh-root-ca-key" in root.inputs["stringData"]["tls.key"]
        (issuer,) = by_kind(mine, "Issuer", "mesh-root-ca", "istio-system")
        assert issuer.inputs["spec"] == {"ca": {"secretName": "mesh-root-ca"}}
        (certificate,) = by_kind(mine, "Certificate", "cacerts", "istio-system")
        spec = certificate.inputs["spec"]
        assert spec["secretName"] == "cacerts" and spec["isCA"] is True
        assert spec["subject"] == {"organizations": ["Istio"], "localities": [cluster.cluster_name]}
        assert (spec["duration"], spec["renewBefore"]) == ("720h", "240h")
        assert spec["privateKey"] == {"algorithm": "RSA", "size": 4096, "rotationPolicy": "Always"}
        assert spec["issuerRef"] == {"group": "cert-manager.io", "kind": "Issuer", "name": "mesh-root-ca"}
        assert certificate.metadata["annotations"]["pulumi.com/waitFor"] == "condition=Ready"
        # Ordered: root Secret, then the Issuer, then the Certificate, then Istio (istiod decides
        # at start whether a plugged-in CA exists).
        assert root.urn in issuer.dependencies and issuer.urn in certificate.dependencies
        (istio,) = [r for r in mine if r.type == "kubernetes:sailoperator.io/v1:Istio"]
        assert certificate.urn in istio.dependencies
        # cert-manager owns `cacerts`: the program makes no Secret of that name.
        assert by_kind(mine, "Secret", "cacerts", "istio-system") == []
    # No intermediate of pulumi-tls, and nothing of ours to renew.
    assert not [r for r in registrations if r.type == "tls:index/locallySignedCert:LocallySignedCert"]
    assert outputs["certificateBackend"] == "cert-manager"
    assert outputs["intermediateRenewal"] == {}


def test_the_default_backend_is_pulumi_tls(east_west):
    _, registrations, outputs = build(east_west)
    assert outputs["certificateBackend"] == "pulumi-tls"
    assert not [r for r in registrations if r.kind in ("Issuer", "Certificate")]


def test_an_ecdsa_mesh_asks_cert_manager_for_the_same_curve(east_west):
    _, registrations, _ = build(cert_manager(east_west, keyAlgorithm="ECDSA", ecdsaCurve="P384"))
    for certificate in by_kind(registrations, "Certificate", "cacerts"):
        assert certificate.inputs["spec"]["privateKey"]["algorithm"] == "ECDSA"
        assert certificate.inputs["spec"]["privateKey"]["size"] == 384
        assert "renewBefore" not in certificate.inputs["spec"]  # cert-manager's default: a third of the life


@pytest.mark.parametrize(
    "certificates,key,words",
    [
        (
            {"rootGeneration": 1, "rootRotation": "trust"},
            "certificates.rootRotation",
            "set backend 'pulumi-tls' (two `up`s take cacerts back)",
        ),
        (
            {"intermediateValidityHours": 720, "intermediateEarlyRenewalHours": 720},
            "certificates.intermediateEarlyRenewalHours",
            "less than intermediateValidityHours (720)",
        ),
        ({"backend": "vault"}, "certificates.backend", "pulumi-tls, cert-manager"),
    ],
)
def test_what_cert_manager_cannot_do_is_refused_naming_the_key(east_west, certificates, key, words):
    with pytest.raises(ConfigError) as refused:
        config.parse(cert_manager(east_west, **certificates))
    assert key in str(refused.value) and words in str(refused.value)


def test_a_switch_to_cert_manager_is_planned_from_any_stack_of_pulumi_tls(east_west):
    # From pulumi-tls (and from a stack made before the output existed): planned.
    for previous in ({"certificateBackend": "pulumi-tls"}, {}):
        _, registrations, outputs = build(cert_manager(east_west), previous_outputs=previous)
        assert by_kind(registrations, "Certificate", "cacerts")
        assert outputs["cacertsForm"] == {"east": "cert-manager", "west": "cert-manager"}


def test_a_switch_back_releases_cacerts_first_and_takes_it_over_in_tls_form_on_the_next_up(east_west):
    def cacerts_of(registrations):
        return by_kind(registrations, "Secret", "cacerts", "istio-system")

    # First `up` back: cert-manager's objects are no more registered (they go at its end), nor is
    # cacerts (cert-manager would rewrite it while its Certificate exists); the intermediate of
    # pulumi-tls is made, under the same root.
    cfg, registrations, outputs = build(east_west, previous_outputs={"certificateBackend": "cert-manager"})
    assert not [r for r in registrations if r.kind in ("Issuer", "Certificate")]
    assert cacerts_of(registrations) == [] and by_kind(registrations, "Secret", "mesh-root-ca") == []
    assert len([r for r in registrations if r.type == "tls:index/locallySignedCert:LocallySignedCert"]) == 2
    assert outputs["cacertsForm"] == {"east": "released", "west": "released"}
    # The next `up` takes it over in place: its type stays kubernetes.io/tls (immutable), our keys
    # in the tls form istiod reads, forced over cert-manager's field ownership.
    # Each Secret keeps the type it was made with: cert-manager's own, or the program's Opaque
    # one cert-manager wrote into.
    types = {"east": "kubernetes.io/tls", "west": "Opaque"}
    for previous_form in ("released", "tls"):
        forms = {"east": previous_form, "west": previous_form}
        last = {"certificateBackend": "pulumi-tls", "cacertsForm": forms, "cacertsSecretType": types}
        _, registrations, outputs = build(east_west, previous_outputs=last)
        for secret in cacerts_of(registrations):
            assert secret.inputs["type"] == types[cluster_of(secret, providers(registrations))]
            assert secret.metadata["annotations"] == {"pulumi.com/patchForce": "true"}
            assert sorted(secret.inputs["stringData"]) == ["ca.crt", "tls.crt", "tls.key"]
            assert "cert-of-mesh-root-ca-cert" in secret.inputs["stringData"]["ca.crt"]
        assert len(cacerts_of(registrations)) == 2
        assert outputs["cacertsForm"] == {"east": "tls", "west": "tls"}
    # A cluster new to the mesh gets Istio's four files even then.
    _, registrations, outputs = build(
        east_west, previous_outputs={"certificateBackend": "pulumi-tls", "cacertsForm": {"east": "tls"}}
    )
    assert outputs["cacertsForm"] == {"east": "tls", "west": "istio"}
    # And to cert-manager again: the tls-form Secret is handed over with its own type.
    _, registrations, _ = build(
        cert_manager(east_west),
        previous_outputs={"certificateBackend": "pulumi-tls", "cacertsForm": {"east": "tls", "west": "tls"}},
    )
    assert {s.inputs["type"] for s in cacerts_of(registrations)} == {"kubernetes.io/tls"}
    # A cluster cert-manager made cacerts for keeps that type; one handed over keeps the program's.
    _, _, outputs = build(
        cert_manager(east_west), previous_outputs={"certificateBackend": "pulumi-tls", "cacertsForm": {"east": "istio"}}
    )
    assert outputs["cacertsSecretType"] == {"east": "Opaque", "west": "kubernetes.io/tls"}


def test_a_root_rotation_waits_for_the_switch_back_to_finish(east_west):
    raw = copy.deepcopy(east_west)
    raw["certificates"] = {"rootGeneration": 1, "rootRotation": "trust"}
    with pytest.raises(Exception) as refused:
        build(raw, previous_outputs={"certificateBackend": "cert-manager"})
    message = str(refused.value)
    assert "config mesh:certificates.rootRotation: 'trust' is not accepted while cacerts on east, west" in message
    assert "run `up` once without rootRotation to finish the switch back" in message


def test_a_switch_hands_the_programs_cacerts_over_once_cert_manager_wrote_it(east_west):
    renewal = {name: {"generation": 0, "validUntil": "2036-01-01T00:00:00Z"} for name in ("east", "west")}
    previous = {"certificateBackend": "pulumi-tls", "intermediateRenewal": renewal}
    cfg, registrations, _ = build(cert_manager(east_west), previous_outputs=previous)
    for cluster in cfg.clusters:
        mine = on_cluster(registrations, cluster.name)
        (handed,) = by_kind(mine, "Secret", "cacerts", "istio-system")
        (certificate,) = by_kind(mine, "Certificate", "cacerts", "istio-system")
        # Same type as before (a new one would replace, i.e. delete, the Secret), no data of ours.
        assert handed.inputs["type"] == "Opaque" and handed.inputs.get("stringData") is None
        assert certificate.urn in handed.dependencies
    # Once handed over, the next `up` registers it no more.
    _, registrations, _ = build(cert_manager(east_west), previous_outputs={"certificateBackend": "cert-manager"})
    assert by_kind(registrations, "Secret", "cacerts") == []


def test_the_handover_plans_from_what_the_cluster_holds_when_it_answers():
    """`LiveCacerts` (read by the program's entry) corrects what the outputs only remember."""
    opaque, tls = CacertsStep("cert-manager", "Opaque"), "kubernetes.io/tls"
    # A stack older than the outputs (its Secret was the program's, Opaque): the type is read.
    guessed = previous_steps({"certificateBackend": "cert-manager"}, ("east",))["east"]
    assert guessed == CacertsStep("cert-manager", tls)
    live = LiveCacerts("Opaque", certificate=True)
    assert cacerts_step(guessed, "pulumi-tls", live) == CacertsStep("released", "Opaque")
    # A release whose Certificate is still there (its delete failed) is not over: nothing written.
    released = CacertsStep("released", "Opaque")
    assert cacerts_step(released, "pulumi-tls", LiveCacerts("Opaque", certificate=True)).form == "released"
    assert cacerts_step(released, "pulumi-tls", LiveCacerts("Opaque")) == CacertsStep("tls", "Opaque")
    # A cluster without the Secret is new to it, whatever the outputs say.
    assert cacerts_step(opaque, "pulumi-tls", LiveCacerts(None)) == CacertsStep("istio", "Opaque")
    assert cacerts_step(opaque, "cert-manager", LiveCacerts(None)) == CacertsStep("cert-manager", tls)
    # A Secret made by hand in the tls form: taken over in that form.
    assert cacerts_step(None, "pulumi-tls", LiveCacerts(tls)) == CacertsStep("tls", tls)
    # Out of reach: the outputs are all there is.
    assert cacerts_step(opaque, "pulumi-tls", None) == CacertsStep("released", "Opaque")


def test_a_release_that_would_delete_cacerts_with_its_certificate_is_refused():
    owned = LiveCacerts("kubernetes.io/tls", owned_by_certificate=True, certificate=True)
    for previous in (CacertsStep("cert-manager", "kubernetes.io/tls"), CacertsStep("released", "kubernetes.io/tls")):
        with pytest.raises(ConfigError) as refused:
            cacerts_step(previous, "pulumi-tls", owned, "east")
        message = str(refused.value)
        assert "would delete cacerts on cluster east" in message and "--enable-certificate-owner-ref" in message
        assert "/metadata/ownerReferences" in message
    # Staying on cert-manager, the owner reference is cert-manager's business.
    assert cacerts_step(CacertsStep("cert-manager", "kubernetes.io/tls"), "cert-manager", owned).form == "cert-manager"
