"""Root rotation: which roots exist, which signs, which every cluster trusts, phase by phase,
and the steps that are refused (with Pulumi mocks for the graph; the lab test runs it for real).
"""

from __future__ import annotations

import copy
import datetime

import pytest

from mesh import config
from mesh.config import ConfigError
from mesh.plan.roots import RootPlan, next_root_state, previous_root_state

from . import engine_mocks

NOW = datetime.datetime(2026, 11, 24, 12, 0, tzinfo=datetime.timezone.utc)
RSA = {"keyAlgorithm": "RSA", "rsaBits": 4096, "rootValidityHours": 87600}
ECDSA = {"keyAlgorithm": "ECDSA", "ecdsaCurve": "P256", "rootValidityHours": 175200}
LONG_AGO = "2026-01-01T00:00:00Z"

ROOT_CERT = "tls:index/selfSignedCert:SelfSignedCert"
INTERMEDIATE_CERT = "tls:index/locallySignedCert:LocallySignedCert"


def state(generation: int, phase: str, settings: dict, since: str = LONG_AGO) -> dict:
    return {"generation": generation, "phase": phase, "since": since, "settings": settings}


# --- the transitions, as pure functions --------------------------------------------------


@pytest.mark.parametrize(
    "phase,live,signing,trusted,unprotected",
    [
        (None, (1,), 1, (1,), ()),
        ("trust", (0, 1), 0, (0, 1), ()),
        ("sign", (0, 1), 1, (0, 1), ()),
        ("retire", (0, 1), 1, (1,), (0,)),
    ],
)
def test_each_phase_keeps_signs_with_and_trusts_the_right_roots(phase, live, signing, trusted, unprotected):
    plan = RootPlan(1, phase)
    assert (plan.live, plan.signing, plan.trusted) == (live, signing, trusted)
    assert tuple(g for g in plan.live if not plan.protected(g)) == unprotected


def test_the_whole_rotation_walks_through_and_records_each_roots_own_settings():
    steps = [(1, "trust"), (1, "sign"), (1, "retire"), (1, None)]
    previous = previous_root_state(None, RSA)  # a stack from before rotation existed
    now = NOW
    seen = []
    for generation, phase in steps:
        made = next_root_state(previous, RootPlan(generation, phase), ECDSA, now, wait_hours=24)
        seen.append((made["phase"], made["settings"]))
        previous = previous_root_state(made, None)
        now += datetime.timedelta(hours=25)
    # The old root keeps its RSA settings while it lives; the new root has the config's.
    assert seen == [
        ("trust", {"0": RSA, "1": ECDSA}),
        ("sign", {"0": RSA, "1": ECDSA}),
        ("retire", {"0": RSA, "1": ECDSA}),
        ("steady", {"1": ECDSA}),
    ]


@pytest.mark.parametrize(
    "previous,step,accepted",
    [
        (
            state(0, "steady", {"0": RSA}),
            (1, "sign"),
            "rootGeneration 0 with rootRotation unset; rootGeneration 1 with rootRotation 'trust'",
        ),
        (state(0, "steady", {"0": RSA}), (2, "trust"), "rootGeneration 1 with rootRotation 'trust'"),
        (state(1, "trust", {"0": RSA, "1": RSA}), (1, "retire"), "rootGeneration 1 with rootRotation 'sign'"),
        (state(1, "trust", {"0": RSA, "1": RSA}), (0, None), "rootGeneration 1 with rootRotation 'trust'"),
        (state(1, "sign", {"0": RSA, "1": RSA}), (1, None), "rootGeneration 1 with rootRotation 'retire'"),
    ],
)
def test_a_skipped_or_backward_step_is_refused_naming_what_may_come_next(previous, step, accepted):
    with pytest.raises(ConfigError) as refused:
        next_root_state(previous, RootPlan(*step), RSA, NOW, wait_hours=24)
    message = str(refused.value)
    assert "mesh:certificates.rootGeneration/rootRotation" in message
    assert accepted in message, message


@pytest.mark.parametrize("was,phase", [("trust", "sign"), ("sign", "retire")])
def test_the_next_phase_waits_until_every_workload_certificate_was_reissued(was, phase):
    began = (NOW - datetime.timedelta(hours=23)).isoformat().replace("+00:00", "Z")
    previous = previous_root_state(state(1, was, {"0": RSA, "1": RSA}, since=began), None)
    with pytest.raises(ConfigError) as early:
        next_root_state(previous, RootPlan(1, phase), RSA, NOW, wait_hours=24)
    message = str(early.value)
    assert "mesh:certificates.rootRotation" in message and "rootRotationWaitHours 24" in message
    assert "2026-11-24T13:00:00" in message, message  # when it becomes allowed
    made = next_root_state(previous, RootPlan(1, phase), RSA, NOW + datetime.timedelta(hours=1), wait_hours=24)
    assert made["phase"] == phase


def test_staying_in_a_phase_keeps_the_time_it_began():
    previous = previous_root_state(state(1, "trust", {"0": RSA, "1": RSA}), None)
    assert next_root_state(previous, RootPlan(1, "trust"), RSA, NOW, 24)["since"] == LONG_AGO


def test_a_new_stack_cannot_start_inside_a_rotation():
    with pytest.raises(ConfigError) as refused:
        next_root_state(None, RootPlan(1, "trust"), RSA, NOW, 24)
    assert "mesh:certificates.rootRotation" in str(refused.value) and "rootRotation unset" in str(refused.value)


def test_the_new_roots_settings_are_fixed_once_it_exists():
    previous = previous_root_state(state(1, "trust", {"0": RSA, "1": ECDSA}), None)
    with pytest.raises(ConfigError) as refused:
        next_root_state(previous, RootPlan(1, "sign"), RSA, NOW, 24)
    assert "mesh:certificates.keyAlgorithm" in str(refused.value) and "generation 1" in str(refused.value)


# --- the resource graph, phase by phase ---------------------------------------------------


def build(raw: dict, phase: str | None, previous: dict):
    raw = copy.deepcopy(raw)
    raw["certificates"] = {"rootGeneration": 1, "keyAlgorithm": "ECDSA", "rootValidityHours": 175200}
    if phase:
        raw["certificates"]["rootRotation"] = phase
    monitor = engine_mocks.install(previous_outputs={"rootCertificateAuthority": previous})
    outputs = engine_mocks.run_stack(raw)
    return config.parse(raw), monitor.registrations, outputs


def cacerts_of(registrations) -> list[dict]:
    return [
        r.inputs["stringData"]
        for r in registrations
        if r.type == "kubernetes:core/v1:Secret" and r.metadata.get("name") == "cacerts"
    ]


OLD, NEW = engine_mocks.fake_cert("mesh-root-ca-cert"), engine_mocks.fake_cert("mesh-root-ca-g1-cert")


# fmt: off
@pytest.mark.parametrize(
    "phase,previous,roots,signed_by,intermediate,bundle",
    [
        ("trust", state(0, "steady", {"0": RSA}), {"mesh-root-ca-cert": True, "mesh-root-ca-g1-cert": True}, OLD, "intermediate-ca-cert", OLD + NEW),
        ("sign", state(1, "trust", {"0": RSA, "1": ECDSA}), {"mesh-root-ca-cert": True, "mesh-root-ca-g1-cert": True}, NEW, "intermediate-ca-g1-cert", OLD + NEW),
        ("retire", state(1, "sign", {"0": RSA, "1": ECDSA}), {"mesh-root-ca-cert": False, "mesh-root-ca-g1-cert": True}, NEW, "intermediate-ca-g1-cert", NEW),
        (None, state(1, "retire", {"0": RSA, "1": ECDSA}), {"mesh-root-ca-g1-cert": True}, NEW, "intermediate-ca-g1-cert", NEW),
    ],
)
# fmt: on
def test_every_cluster_gets_the_phases_roots_signer_and_bundle(
    east_west, phase, previous, roots, signed_by, intermediate, bundle
):
    cfg, registrations, outputs = build(east_west, phase, previous)
    assert {r.name: r.protect for r in registrations if r.type == ROOT_CERT} == roots
    root_keys = {
        r.name: r.inputs for r in registrations if r.type == "tls:index/privateKey:PrivateKey" and "root" in r.name
    }
    if "mesh-root-ca-key" in root_keys:  # the old root is declared with its own settings
        assert (root_keys["mesh-root-ca-key"]["algorithm"], root_keys["mesh-root-ca-key"]["rsaBits"]) == ("RSA", 4096)
    assert (root_keys["mesh-root-ca-g1-key"]["algorithm"], root_keys["mesh-root-ca-g1-key"]["ecdsaCurve"]) == (
        "ECDSA",
        "P256",
    )
    intermediates = [r for r in registrations if r.type == INTERMEDIATE_CERT]
    assert sorted(r.name for r in intermediates) == sorted(f"{c.name}-{intermediate}" for c in cfg.clusters)
    assert all(r.inputs["caCertPem"] == signed_by for r in intermediates)
    for data in cacerts_of(registrations):
        assert data["root-cert.pem"] == bundle
        assert data["cert-chain.pem"] == data["ca-cert.pem"] + signed_by
    assert outputs["rootCertificate"] == bundle
    assert outputs["rootCertificateAuthority"]["phase"] == (phase or "steady")
