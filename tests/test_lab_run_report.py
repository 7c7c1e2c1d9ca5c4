"""What `python -m lab run` prints once the mesh is up (lab/run_report.py), from the outputs a
two-cluster lab stack has; `tests/integration/test_lab_run.py` runs the command itself."""

from __future__ import annotations

import datetime
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID

from lab.run_report import RunFacts, describe_certificate, render


def root_pem(common_name: str) -> str:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Istio"), x509.NameAttribute(NameOID.COMMON_NAME, common_name)])  # fmt: skip
    now = datetime.datetime(2026, 11, 25, tzinfo=datetime.timezone.utc)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(now)
        .not_valid_after(now + datetime.timedelta(days=3650))
        .sign(key, hashes.SHA256())
    )
    return certificate.public_bytes(serialization.Encoding.PEM).decode()


def facts(tmp_path: Path, bundle: str, lab_seconds=12.34, dir_flag: str = "") -> RunFacts:
    clusters = {
        "east": {"clusterName": "cluster1", "network": "network1", "gatewayAddress": "127.0.0.5",
                 "remoteSecrets": ["istio-remote-secret-cluster2"], "readerTokenSecret": "istio-mesh-reader-token-fc9609"},
        "west": {"clusterName": "cluster2", "network": "network2", "gatewayAddress": None,
                 "remoteSecrets": ["istio-remote-secret-cluster1"], "readerTokenSecret": "istio-mesh-reader-token-612472"},
    }  # fmt: skip
    istiods = {"east": {"istiod": {"pid": 4242, "ip": "127.0.1.2", "running": True, "ready": True}}}
    return RunFacts(
        stack="lab",
        lab_dir=tmp_path,
        kubeconfig=tmp_path / "kubeconfig",
        root_certificate=tmp_path / "lab-root-cert.pem",
        log=tmp_path / "lab-up.log",
        lab_seconds=lab_seconds,
        up_seconds=17.91,
        changes={"create": 75, "same": 0},
        outputs={"meshId": "mesh1", "rootCertificate": bundle, "clusters": clusters},
        istiods=istiods,
        dir_flag=dir_flag,
    )


def test_the_report_says_what_was_made_per_cluster_and_what_to_run_next(tmp_path):
    text = render(facts(tmp_path, root_pem("Root CA")))
    lines = text.splitlines()
    assert "BEGIN CERTIFICATE" not in text and "{" not in text  # no PEM, no JSON
    assert len(lines) <= 30
    assert lines[0] == "Lab started in 12.3 s; `pulumi up` of stack `lab` in 17.9 s (75 create)."
    east = lines.index("east: Istio cluster cluster1 on network network1")
    west = lines.index("west: Istio cluster cluster2 on network network2")
    east_part, west_part = lines[east:west], lines[west:]
    assert any("ready: real pilot-discovery `istiod`, pid 4242, 127.0.1.2" in line for line in east_part)
    assert any("gateway         127.0.0.5" in line for line in east_part)
    assert any("istio-remote-secret-cluster2: this istiod reads west" in line for line in east_part)
    assert any("istiod          not started" in line for line in west_part)
    assert any("gateway         no address yet" in line for line in west_part)
    assert any("istio-remote-secret-cluster1: this istiod reads east" in line for line in west_part)
    assert f"Root certificate: {tmp_path / 'lab-root-cert.pem'}" in lines
    assert any("CN=Root CA,O=Istio, ECDSA secp256r1, valid until 2036-11-22" in line for line in lines)
    assert f"Kubeconfig:       {tmp_path / 'kubeconfig'} (one context per cluster)" in lines
    assert f"  export KUBECONFIG={tmp_path / 'kubeconfig'}" in lines
    assert any(line.startswith("  .venv/bin/mesh verify --stack lab ") for line in lines)
    assert any(line.startswith('  eval "$(.venv/bin/python -m lab env)"  ') for line in lines)


def test_a_lab_outside_the_default_folder_is_named_in_every_next_command(tmp_path):
    text = render(facts(tmp_path, root_pem("Root CA"), lab_seconds=None, dir_flag=" --dir /tmp/my-lab"))
    assert text.startswith("Lab already running;")
    assert any(
        line.startswith('  eval "$(.venv/bin/python -m lab env --dir /tmp/my-lab)" ') for line in text.splitlines()
    )
    assert any(line.startswith("  .venv/bin/python -m lab down --dir /tmp/my-lab ") for line in text.splitlines())


def test_a_rotation_bundle_is_reported_as_two_roots(tmp_path):
    text = render(facts(tmp_path, root_pem("Root CA") + root_pem("Root CA g1")))
    assert "(2 roots, rotation under way)" in text
    assert "CN=Root CA,O=Istio" in text  # the first (old) root is the one described


def test_describe_certificate_names_rsa_keys():
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "r")])
    now = datetime.datetime(2026, 1, 1, tzinfo=datetime.timezone.utc)
    certificate = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
        .serial_number(2).not_valid_before(now).not_valid_after(now + datetime.timedelta(days=1))
        .sign(key, hashes.SHA256())
    )  # fmt: skip
    pem = certificate.public_bytes(serialization.Encoding.PEM).decode()
    assert describe_certificate(pem) == "CN=r, RSA 2048, valid until 2026-01-02"
