"""Production features on a real two-cluster lab: token rotation, intermediate renewal, a
refused root change, and `preview` where the clusters cannot be reached.

Tests run in the order written and share one `up`, and steady traffic from both sides (a new
mTLS handshake per request, and one kept-alive connection per side) runs through the token
rotation and the renewal: neither may lose a request.
"""

from __future__ import annotations

import re
import time

import kubernetes
import pytest


from .conftest import (
    EndpointWatch,
    assert_istiods_sign_for_the_whole_mesh,
    cacerts,
    changes,
    deploy,
    istiod_log,
    istiod_state,
    openssl,
    refused_up,
    remote_client,
    secret_text,
    synced_peers,
    running_traffic,
    update,
    wait_for,
)

CLUSTERS = ["east", "west"]


@pytest.fixture(scope="module")
def mesh(tmp_path_factory):
    yield from deploy("prod", CLUSTERS, tmp_path_factory)


@pytest.fixture(scope="module")
def west_endpoint(mesh):
    """West's Ready helloworld pod (v2, run by west's node), which east's real istiod must keep serving."""
    wait_for("east's istiod to hold west's helloworld endpoint", lambda: _watch_once(mesh), timeout=60)
    return {name: istiod_state(mesh, name)["pid"] for name in CLUSTERS}


SETTLE_SECONDS = 10


@pytest.fixture(scope="module")
def traffic(mesh):
    running = yield from running_traffic(mesh)
    for name in CLUSTERS:
        running.assert_every_fresh_request_was_a_new_handshake(name)


def assert_no_request_lost(traffic, label: str) -> None:
    traffic.phase(f"after {label}")
    time.sleep(SETTLE_SECONDS)
    traffic.phase(f"past {label}")
    for phase in (label, f"after {label}"):
        traffic.assert_none_failed(phase)
    traffic.assert_both_versions_answer(f"after {label}")
    for source in CLUSTERS:
        assert traffic.tallies(f"after {label}")[(source, "kept")].connects == 0, traffic.table()


def _watch_once(mesh) -> bool:
    with EndpointWatch(mesh, "east", "cluster2") as watch:
        wait_for("one answer", lambda: watch.counts, timeout=10)
    return watch.counts[0] > 0


def assert_istiods_kept_up(mesh, pids, watch: EndpointWatch) -> None:
    """The same istiod processes, every peer synced, and east never without west's endpoint."""
    assert watch.counts and min(watch.counts) > 0, f"east's istiod lost west's endpoints: {watch.counts}"
    for name in CLUSTERS:
        assert istiod_state(mesh, name)["pid"] == pids[name], f"{name}'s istiod restarted"
        wait_for(
            f"{name}'s istiod to have every peer synced",
            lambda: all(v == "synced" for v in synced_peers(mesh, name).values()),
            timeout=60,
        )


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


def test_token_rotation_switches_every_remote_secret_then_revokes_the_old_token(mesh, west_endpoint, traffic):
    traffic.assert_none_failed("before")
    traffic.phase("token rotation")
    before = remote_kubeconfigs(mesh)
    old_secrets = {name: mesh.outputs["clusters"][name]["readerTokenSecret"] for name in CLUSTERS}
    seen = {name: len(istiod_log(mesh, name)) for name in CLUSTERS}
    with EndpointWatch(mesh, "east", "cluster2") as watch:
        update(mesh, readerTokenRotation="2")
        # Each istiod read its changed remote secret and swapped the peer's client for one with
        # the new token (the old one is revoked by now), keeping west's endpoint all along.
        for name in CLUSTERS:
            peer = "cluster2" if name == "east" else "cluster1"
            wait_for(
                f"{name}'s istiod to update {peer} from its changed remote secret",
                lambda: re.search(rf"Update cluster\s.*cluster={peer}\b", istiod_log(mesh, name)[seen[name] :]),
                timeout=60,
            )
    assert_istiods_kept_up(mesh, west_endpoint, watch)
    for name in CLUSTERS:
        refused = [
            line
            for line in istiod_log(mesh, name)[seen[name] :].splitlines()
            if re.search(r"\b401\b|Unauthorized", line)
        ]
        assert not refused, "\n".join(refused[:5])
    after = remote_kubeconfigs(mesh)
    for (holder, source_name), kubeconfig in after.items():
        source = mesh.cluster_config(source_name)
        assert kubeconfig != before[(holder, source_name)], "the remote secret still holds the old token"
        opens(kubeconfig, source)
        # The API server keeps a token's successful authentication for 10 s
        # (TokenSuccessCacheTTL), and istiod used the old token until it switched: the old
        # token is refused within that, not at the instant its secret is deleted.
        wait_for(
            f"{source_name} to refuse the old token in {holder}'s former remote secret",
            lambda: _refused_status(before[(holder, source_name)], source) == 401,
            timeout=20,
        )
    for name, secret in old_secrets.items():
        with pytest.raises(kubernetes.client.ApiException) as gone:
            mesh.core(name).read_namespaced_secret(secret, "istio-system")
        assert gone.value.status == 404
    assert_no_request_lost(traffic, "token rotation")


def _refused_status(kubeconfig: str, source: dict) -> int | None:
    try:
        opens(kubeconfig, source)
    except kubernetes.client.ApiException as error:
        return error.status
    return None


def _serial(pem: str) -> str:
    return openssl("x509", "-noout", "-serial", input_text=pem).stdout.strip()


def test_an_intermediate_inside_its_renewal_window_is_reissued_in_place(mesh, west_endpoint, traffic, tmp_path):
    traffic.phase("renewal by up")
    before = {name: cacerts(mesh, name) for name in CLUSTERS}
    # A window as long as the certificate's life: the intermediates in place are inside it.
    with EndpointWatch(mesh, "east", "cluster2") as watch:
        update(mesh, certificates={"intermediateValidityHours": 87600, "intermediateEarlyRenewalHours": 87600})
        # Each istiod signs with its renewed intermediate, without a restart.
        assert_istiods_sign_for_the_whole_mesh(mesh, CLUSTERS, tmp_path)
    assert_istiods_kept_up(mesh, west_endpoint, watch)
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
    assert_no_request_lost(traffic, "renewal by up")
    update(mesh, certificates={})
    preview = mesh.stack.preview(color="never")
    assert changes(preview) == {}, preview.stdout


def test_a_change_of_root_settings_is_refused_with_the_rotation_procedure(mesh):
    root_before = cacerts(mesh, "east")["root-cert.pem"]
    message = refused_up(mesh, dict(mesh.config, certificates={"rsaBits": 2048}))
    assert "mesh:certificates.rsaBits" in message and "docs/root-rotation.md" in message, message
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
