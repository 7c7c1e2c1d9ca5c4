"""Istio's real istiod reads what `up` made, on two real API servers, with the real engine.

Each lab cluster runs the istiod that istio.io/istio builds (toolchain/istio.sh), started by the
kubelet stand-in from the Deployment the operator stand-in rendered with istioctl; `up` itself
waited for it, because the `Istio` resource turns Ready only once istiod answers ready.
Tests run in the order written and share one `up`.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import grpc
import pytest

from mesh import samples

from . import istio_clients
from .conftest import (
    cacerts,
    deploy,
    istio_ca_root,
    istiod_debug,
    istiod_log,
    istiod_state,
    openssl,
    service_account_token,
    synced_peers,
    wait_for,
)
from .workload_standin import run_pod

CLUSTERS = ["east", "west"]
HELLOWORLD = f"outbound|{samples.HELLOWORLD_PORT}||helloworld.sample.svc.cluster.local"
AUTH_FAILURE = re.compile(r"\b(401|403)\b|Unauthorized|forbidden", re.IGNORECASE)


@pytest.fixture(scope="module")
def mesh(tmp_path_factory):
    yield from deploy("istiod", CLUSTERS, tmp_path_factory)


def cluster_name(mesh, name: str) -> str:
    return mesh.cluster_config(name)["clusterName"]


def xds_channel(mesh, cluster: str) -> grpc.Channel:
    return istio_clients.channel(istiod_state(mesh, cluster)["ports"]["secureGRPCAddr"], istio_ca_root(mesh, cluster))


def workload_certificate(mesh, cluster: str, directory: Path) -> list[str]:
    """A certificate for sample/sleep from the cluster's istiod CA, as pilot-agent asks for one."""
    key, csr = directory / f"{cluster}.key", directory / f"{cluster}.csr"
    made = openssl("req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                   "-keyout", str(key), "-subj", "/O=sleep", "-out", str(csr))
    assert made.returncode == 0, made.stderr
    token = service_account_token(mesh, cluster, "sample", "sleep")
    with xds_channel(mesh, cluster) as channel:
        return istio_clients.request_certificate(channel, token, csr.read_text(), cluster_name(mesh, cluster))


def verifies(leaf_and_chain: list[str], trusted_pem: str, directory: Path, name: str) -> subprocess.CompletedProcess:
    """openssl verify of the leaf against `trusted_pem`, the rest of the chain as untrusted."""
    leaf, untrusted, trusted = (directory / f"{name}.{suffix}" for suffix in ("leaf.pem", "chain.pem", "trust.pem"))
    leaf.write_text(leaf_and_chain[0])
    untrusted.write_text("".join(leaf_and_chain[1:]))
    trusted.write_text(trusted_pem)
    return openssl("verify", "-CAfile", str(trusted), "-untrusted", str(untrusted), str(leaf))


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
        # istiod distributes the trust bundle of its cacerts to every namespace...
        assert istio_ca_root(mesh, name).strip() == root.strip()
        # ...and signs workloads with the intermediate `up` made for this cluster.
        chain = workload_certificate(mesh, name, tmp_path)
        assert chain[1].strip() == cacerts(mesh, name)["ca-cert.pem"].strip()
        result = verifies(chain, root, tmp_path, f"{name}-mesh")
        assert result.returncode == 0, result.stderr
        for peer in CLUSTERS:
            result = verifies(chain, cacerts(mesh, peer)["root-cert.pem"], tmp_path, f"{name}-by-{peer}")
            assert result.returncode == 0, f"{peer} does not trust {name}'s workloads: {result.stderr}"


def test_every_istiod_has_every_peer_synced_without_auth_errors(mesh):
    for name in CLUSTERS:
        expected = {cluster_name(mesh, peer): "synced" for peer in CLUSTERS if peer != name}
        wait_for(f"{name}'s istiod to sync {sorted(expected)}",
                 lambda: {k: v for k, v in synced_peers(mesh, name).items() if k in expected} == expected)
        errors = [line for line in istiod_log(mesh, name).splitlines() if AUTH_FAILURE.search(line)]
        assert not errors, "\n".join(errors[:10])


def test_a_west_endpoint_reaches_east_sidecars_through_wests_gateway(mesh):
    west_version = mesh.cluster_config("west").get("helloworldVersion", "v2")
    deployment = next(m for m in samples.sample_manifests(west_version) if m["kind"] == "Deployment"
                      and m["metadata"]["name"] == f"helloworld-{west_version}")
    pod_ip = "10.244.2.10"
    run_pod(mesh.client("west"), deployment, pod_ip)
    west_gateway = mesh.outputs["clusters"]["west"]["gatewayAddress"]

    def endpoints(cluster: str, network: str) -> list:
        node = istio_clients.SidecarNode(f"sleep-{cluster}", "sample", "10.244.9.9", "sleep",
                                         cluster_name(mesh, cluster), network, mesh.config["meshId"],
                                         {"app": "sleep"})
        token = service_account_token(mesh, cluster, "sample", "sleep")
        with xds_channel(mesh, cluster) as channel:
            return istio_clients.sidecar_endpoints(channel, token, node, HELLOWORLD)

    east = wait_for("east's istiod to serve west's helloworld",
                    lambda: endpoints("east", mesh.cluster_config("east")["network"]))
    assert [(e.address, e.port, e.tls_mode) for e in east] == [(west_gateway, 15443, "istio")]
    west = wait_for("west's istiod to serve its own helloworld",
                    lambda: endpoints("west", mesh.cluster_config("west")["network"]))
    assert [(e.address, e.port) for e in west] == [(pod_ip, samples.HELLOWORLD_PORT)]
    # istiod's own view, which `mesh verify` reads: west's gateway known for west's network.
    gateways = istiod_debug(mesh, "east", "/debug/networkz")
    assert any(g.get("Addr") == west_gateway and g.get("Port") == 15443 for g in gateways), gateways
