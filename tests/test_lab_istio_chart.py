"""The operator stand-in's rendering of istiod, with the real istioctl: what the lab's istiod runs
with comes from the `Istio` resource the program writes, through Istio's own chart."""

from __future__ import annotations


import pytest

from lab.nodes import pod
from lab.operator import istio_chart
from lab.toolchain import istio_binaries
from mesh import config
from mesh.plan.control_plane import istio_manifest


@pytest.fixture(scope="module")
def rendered(tmp_path_factory) -> list[dict]:
    from tests.conftest import stack_config, write_kubeconfig

    raw = stack_config("east-west")
    kubeconfig = write_kubeconfig(tmp_path_factory.mktemp("kc") / "kubeconfig", [c["context"] for c in raw["clusters"]])
    for cluster in raw["clusters"]:
        cluster["kubeconfig"] = str(kubeconfig)
    mesh = config.parse(raw)
    istio = istio_manifest(mesh, mesh.clusters[0])
    return istio_chart.render(istio, istio_binaries()["istioctl"])


def by_kind(objects: list[dict], kind: str) -> list[dict]:
    return [o for o in objects if o["kind"] == kind]


def test_istiod_runs_with_the_clusters_identity_from_the_istio_resource(rendered):
    (deployment,) = by_kind(rendered, "Deployment")
    assert deployment["metadata"]["name"] == "istiod"
    container = pod.container(deployment["spec"]["template"])
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert env["CLUSTER_ID"] == "cluster1"
    assert env["AUTO_RELOAD_PLUGIN_CERTS"] == "true" and env["ISTIO_MULTIROOT_MESH"] == "true"
    volumes = {v["name"]: v for v in deployment["spec"]["template"]["spec"]["volumes"]}
    assert volumes["cacerts"]["secret"] == {"secretName": "cacerts", "optional": True}
    mesh_config = next(c for c in by_kind(rendered, "ConfigMap") if c["metadata"]["name"] == "istio")
    assert "meshId: mesh1" in mesh_config["data"]["mesh"]


def test_istiod_gets_the_charts_rights_not_cluster_admin(rendered):
    roles = {r["metadata"]["name"]: r for r in by_kind(rendered, "ClusterRole")}
    rules = roles["istiod-clusterrole-istio-system"]["rules"]
    assert any("endpointslices" in r.get("resources", []) for r in rules)
    assert not any(
        "*" in r.get("verbs", []) and "*" in r.get("resources", []) and "" in r.get("apiGroups", []) for r in rules
    )
    bindings = [
        b for b in by_kind(rendered, "ClusterRoleBinding") if b["roleRef"]["name"] == "istiod-clusterrole-istio-system"
    ]
    assert bindings and bindings[0]["subjects"] == [
        {"kind": "ServiceAccount", "name": "istiod", "namespace": "istio-system"}
    ]


def test_crds_and_webhooks_are_left_out(rendered):
    kinds = {o["kind"] for o in rendered}
    assert not kinds & set(istio_chart.SKIPPED_KINDS)
    assert all(o["metadata"]["labels"][istio_chart.RENDERED_LABEL] == "default" for o in rendered)
