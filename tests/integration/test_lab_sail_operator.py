"""What the real Sail operator decides about the resources `up` makes, on the lab (one operator per
cluster, out of cluster; its istiod and Istio's own install-cni run on the lab's nodes).

Tests run in the order written and share one `up`; each puts back what it changed.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time

import kubernetes
import pytest
from pulumi import automation as auto

from lab.nodes import pod_state
from mesh import verify as v
from lab.stack import VENV, write_config

from .conftest import changes, deploy, refused_up, run_verify, update, wait_for

CLUSTERS = ["east", "west"]
KUBECTL = str(VENV / "bin" / "kubectl")
SAIL = ("sailoperator.io", "v1")


@pytest.fixture(scope="module")
def mesh(tmp_path_factory):
    yield from deploy("sail-operator", CLUSTERS, tmp_path_factory)


def kubectl(mesh, cluster: str, *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    env = dict(os.environ, KUBECONFIG=str(mesh.lab.kubeconfig_path), HOME=str(mesh.lab.dir))
    return subprocess.run(
        [KUBECTL, "--context", cluster, *args], capture_output=True, text=True, timeout=timeout, env=env
    )


def sail_object(mesh, cluster: str, plural: str, name: str = "default") -> dict:
    return mesh.custom(cluster).get_cluster_custom_object(*SAIL, plural, name)


def condition(obj: dict, kind: str) -> dict:
    return next((c for c in (obj.get("status") or {}).get("conditions") or [] if c["type"] == kind), {})


def control_plane_results(mesh) -> dict[tuple[str, str], tuple[str, str]]:
    report = run_verify(mesh, timeout=5, requests=1)
    return {(r.cluster, r.item): (r.status, r.detail) for r in report.results if r.check == v.CONTROL_PLANE}


def test_the_walkthroughs_wait_for_istio_succeeds_against_the_operators_own_status(mesh):
    for cluster in CLUSTERS:
        waited = kubectl(mesh, cluster, "wait", "--for", "condition=Ready", "istio/default", "--timeout=60s")
        assert waited.returncode == 0, waited.stderr
        assert waited.stdout.strip() == "istio.sailoperator.io/default condition met"
        istio = sail_object(mesh, cluster, "istios")
        assert istio["status"]["state"] == "Healthy"
        assert {c["type"]: c["status"] for c in istio["status"]["conditions"]} == {
            "Reconciled": "True",
            "Ready": "True",
            "DependenciesHealthy": "True",
        }
        # The operator made the revision the InPlace strategy names after the Istio resource.
        assert istio["status"]["activeRevisionName"] == "default"
        revision = sail_object(mesh, cluster, "istiorevisions")
        assert revision["spec"]["version"] == mesh.config["istioVersion"]
        assert condition(revision, "Ready")["status"] == "True"
        cni = sail_object(mesh, cluster, "istiocnis")
        assert cni["status"]["state"] == "Healthy"
    # The operator's process runs in each cluster, as the lab reports it.
    for cluster in CLUSTERS:
        assert mesh.lab.status()["clusters"][cluster]["processes"]["sail-operator"] is True


def install_cni(mesh, cluster: str) -> dict:
    """The state the node keeps of the cluster's istio-cni-node pod."""
    for pod_dir in pod_state.pod_dirs(mesh.lab.dir):
        state = pod_state.read_state(pod_dir)
        if state.get("cluster") == cluster and state.get("namespace") == "istio-cni":
            return state
    raise AssertionError(f"no istio-cni-node pod on {cluster}")


def test_istiocni_is_ready_only_while_its_daemonsets_pods_are(mesh):
    cluster = "west"
    state = install_cni(mesh, cluster)
    container = state["containers"]["install-cni"]
    assert container["running"], state
    # The real install-cni chained the istio-cni plugin into the node's primary network config.
    conflist = (mesh.lab.dir / cluster / "host" / "etc" / "cni" / "net.d" / "10-lab.conflist").read_text()
    assert '"type": "istio-cni"' in conflist
    assert (mesh.lab.dir / cluster / "host" / "opt" / "cni" / "bin" / "istio-cni").is_file()
    # Stop its process: the node reports the container not ready, the DaemonSet counts no ready
    # pod, and the operator (not the lab) turns IstioCNI not Ready; the node restarts it after the
    # kubelet's back-off, and IstioCNI turns Ready again.
    os.kill(container["pid"], signal.SIGKILL)
    down = wait_for(
        "IstioCNI not Ready on west",
        lambda: (c := condition(sail_object(mesh, cluster, "istiocnis"), "Ready")).get("status") == "False" and c,
        timeout=30,
        interval=0.2,
    )
    assert down["reason"] == "DaemonSetNotReady", down
    results = control_plane_results(mesh)
    status, detail = results[(cluster, "IstioCNI default")]
    assert status == v.FAIL and "DaemonSetNotReady" in detail, detail
    assert results[("east", "IstioCNI default")][0] == v.PASS
    wait_for(
        "IstioCNI Ready again on west",
        lambda: condition(sail_object(mesh, cluster, "istiocnis"), "Ready").get("status") == "True",
        timeout=60,
    )
    pod = mesh.core(cluster).read_namespaced_pod(state["name"], "istio-cni")
    assert pod.status.container_statuses[0].restart_count >= 1
    assert install_cni(mesh, cluster)["containers"]["install-cni"]["pid"] != container["pid"]


def test_a_version_the_operators_crd_does_not_list_is_refused_by_preview_before_anything_changes(mesh):
    before = {c: sail_object(mesh, c, "istios")["metadata"]["resourceVersion"] for c in CLUSTERS}
    message = refused_up(mesh, dict(mesh.config, istioVersion="v1.30.4"))
    assert "config mesh:istioVersion: 'v1.30.4': the Sail operator on cluster east does not accept 'v1.30.4'" in message
    assert "v1.31-latest, v1.31.0-beta.1, v1.30-latest, v1.30.3" in message
    assert "Nothing was changed on any cluster" in message
    assert {c: sail_object(mesh, c, "istios")["metadata"]["resourceVersion"] for c in CLUSTERS} == before
    preview = mesh.stack.preview(color="never")
    assert changes(preview) == {}


def test_an_end_of_life_version_fails_up_at_once_with_the_operators_reason_and_the_key(mesh):
    TIMEOUT = 40  # what the engine waits on IstioCNI; the reason must come well before it
    eol = "v1.28.10"
    reason = f'validation error: version "{eol}" is end-of-life and cannot be installed'
    said: list[tuple[float, str]] = []
    started = time.monotonic()
    message = refused_up(
        mesh,
        dict(mesh.config, istioVersion=eol, readyTimeout=f"{TIMEOUT}s"),
        on_output=lambda line: said.append((time.monotonic() - started, line)),
    )
    assert f"config mesh:istioVersion: '{eol}': the Sail operator on cluster " in message, message[-3000:]
    assert reason in message
    # Said as soon as the operator refused, long before the engine's wait on IstioCNI timed out.
    first = next(seconds for seconds, line in said if "config mesh:istioVersion" in line)
    print(f"the operator's reason said after {first:.1f} s; `up` failed after {time.monotonic() - started:.1f} s")
    assert first < TIMEOUT / 2, (first, [line for _, line in said][-40:])
    assert time.monotonic() - started >= TIMEOUT
    # The CRD let it in; the operator refused it at reconcile. IstioCNI goes first (Istio waits on
    # it), so the Istio resource was not touched, and the mesh keeps running the version it had.
    for cluster in CLUSTERS:
        cni = sail_object(mesh, cluster, "istiocnis")
        assert cni["spec"]["version"] == eol
        assert condition(cni, "Reconciled")["status"] == "False"
        assert reason in condition(cni, "Reconciled")["message"]
        assert condition(cni, "Ready")["status"] == "True"
        istio = sail_object(mesh, cluster, "istios")
        assert istio["spec"]["version"] == mesh.config["istioVersion"]
        assert condition(istio, "Reconciled")["status"] == "True"
    status, detail = control_plane_results(mesh)[("east", "IstioCNI default")]
    assert status == v.FAIL
    assert detail.startswith("Ready, but the operator could not apply its spec (state ReconcileError)"), detail
    assert reason in detail


def test_a_rerun_with_the_refused_version_is_refused_before_anything_changes_and_the_old_one_converges(mesh):
    eol = "v1.28.10"
    write_config(mesh.stack.name, dict(mesh.config, istioVersion=eol))
    try:
        with pytest.raises(auto.CommandError) as refused:
            mesh.stack.preview(color="never")
    finally:
        write_config(mesh.stack.name, mesh.config)
    assert f"config mesh:istioVersion: '{eol}': the Sail operator on cluster east refused it for IstioCNI" in str(
        refused.value
    )
    # Back to the supported version: `up` converges and the operators reconcile it.
    update(mesh)
    for cluster in CLUSTERS:
        for plural in ("istiocnis", "istios"):
            obj = sail_object(mesh, cluster, plural)
            assert obj["spec"]["version"] == mesh.config["istioVersion"]
            assert condition(obj, "Reconciled")["status"] == "True"


def test_switching_a_running_istio_to_revision_based_is_refused_before_anything_changes(mesh):
    # Seen on the lab: switched, the operator adds revision default-v1-30-3 beside the `default` one
    # every workload uses, and the default tag stays NameAlreadyExists, so `up` would time out.
    before = {c: sail_object(mesh, c, "istios")["metadata"]["resourceVersion"] for c in CLUSTERS}
    message = refused_up(mesh, dict(mesh.config, updateStrategy="RevisionBased"))
    assert (
        "config mesh:updateStrategy: 'RevisionBased': the Istio resource on east, west runs InPlace, and a running "
        "Istio keeps its strategy"
    ) in message, message[-2000:]
    assert {c: sail_object(mesh, c, "istios")["metadata"]["resourceVersion"] for c in CLUSTERS} == before
    assert not mesh.custom("east").list_cluster_custom_object(*SAIL, "istiorevisiontags")["items"]


def test_destroy_leaves_no_istiod_object_behind_because_the_operator_uninstalled_its_charts(mesh):
    # Before: what the operator installed (its Helm releases in its namespace, cluster-wide objects).
    def leftovers(cluster: str) -> dict[str, list[str]]:
        client = mesh.client(cluster)
        admission = kubernetes.client.AdmissionregistrationV1Api(client)
        rbac = kubernetes.client.RbacAuthorizationV1Api(client)
        core = kubernetes.client.CoreV1Api(client)
        found = {
            "mutating webhooks": [w.metadata.name for w in admission.list_mutating_webhook_configuration().items],
            "validating webhooks": [w.metadata.name for w in admission.list_validating_webhook_configuration().items],
            "cluster roles": [r.metadata.name for r in rbac.list_cluster_role().items if "istio" in r.metadata.name],
            "helm releases": [
                s.metadata.name
                for s in core.list_namespaced_secret("sail-operator").items
                if s.type == "helm.sh/release.v1"
            ],
            "pods": [f"{p.metadata.namespace}/{p.metadata.name}" for p in core.list_pod_for_all_namespaces().items],
        }
        for plural in ("istios", "istiorevisions", "istiocnis"):
            found[plural] = [
                o["metadata"]["name"] for o in mesh.custom(cluster).list_cluster_custom_object(*SAIL, plural)["items"]
            ]
        return found

    before = leftovers("east")
    assert before["mutating webhooks"] and before["helm releases"] and before["istiorevisions"], before
    mesh.stack.destroy(exclude_protected=True, color="never")
    for cluster in CLUSTERS:
        final: dict[str, list[str]] = {}

        def empty() -> bool:
            final.clear()
            final.update(leftovers(cluster))
            return not any(final.values())

        try:
            wait_for(f"nothing of istiod left on {cluster}", empty, timeout=90)
        except AssertionError:
            raise AssertionError(f"{cluster} keeps {final}") from None
