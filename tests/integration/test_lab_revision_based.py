"""`updateStrategy: RevisionBased` with the real Sail operator: a version change makes a second
revision, both istiods run, and the program's outputs and `mesh verify` follow the active one.

Tests run in the order written and share one `up`.
"""

from __future__ import annotations

import pytest

from mesh import verify as v

from .conftest import deploy, run_verify, update, wait_for

CLUSTERS = ["east", "west"]
SAIL = ("sailoperator.io", "v1")
OLD, NEW = "v1.30.2", "v1.30.3"


@pytest.fixture(scope="module")
def mesh(tmp_path_factory):
    yield from deploy("revisions", CLUSTERS, tmp_path_factory, updateStrategy="RevisionBased", istioVersion=OLD)


def revision_name(version: str) -> str:
    return "default-" + version.replace(".", "-")


def istiod_pods(mesh, cluster: str) -> dict[str, bool]:
    """istiod pods by revision label: ready or not."""
    pods = mesh.core(cluster).list_namespaced_pod("istio-system", label_selector="app=istiod").items
    return {
        p.metadata.labels["istio.io/rev"]: any(
            c.type == "Ready" and c.status == "True" for c in p.status.conditions or []
        )
        for p in pods
        if not p.metadata.deletion_timestamp
    }


def test_the_first_revision_is_named_after_its_version_and_the_default_tag_points_at_it(mesh):
    for cluster in CLUSTERS:
        assert mesh.outputs["clusters"][cluster]["istioRevision"] == revision_name(OLD)
        tag = mesh.custom(cluster).get_cluster_custom_object(*SAIL, "istiorevisiontags", "default")
        assert tag["status"]["istioRevision"] == revision_name(OLD), tag["status"]
        assert istiod_pods(mesh, cluster) == {revision_name(OLD): True}
        # The workloads were injected through the tag, by the revision's own istiod.
        pods = mesh.core(cluster).list_namespaced_pod("sample").items
        assert pods and {p.metadata.annotations.get("sidecar.istio.io/status") is not None for p in pods} == {True}
    report = run_verify(mesh)
    assert report.ok, [r for r in report.results if r.failed]


def test_a_version_change_runs_both_revisions_and_outputs_and_verify_follow_the_active_one(mesh):
    update(mesh, istioVersion=NEW)
    for cluster in CLUSTERS:
        revisions = {
            r["metadata"]["name"]: r["spec"]["version"]
            for r in mesh.custom(cluster).list_cluster_custom_object(*SAIL, "istiorevisions")["items"]
        }
        assert revisions == {revision_name(OLD): OLD, revision_name(NEW): NEW}
        istio = mesh.custom(cluster).get_cluster_custom_object(*SAIL, "istios", "default")
        assert istio["status"]["activeRevisionName"] == revision_name(NEW)
        assert mesh.outputs["clusters"][cluster]["istioRevision"] == revision_name(NEW)
        # Both istiods run: the old one keeps serving the workloads it injected until they restart.
        wait_for(
            f"both istiods ready on {cluster}",
            lambda: istiod_pods(mesh, cluster) == {revision_name(OLD): True, revision_name(NEW): True},
            timeout=60,
        )
        tag = mesh.custom(cluster).get_cluster_custom_object(*SAIL, "istiorevisiontags", "default")
        assert tag["status"]["istioRevision"] == revision_name(NEW)
    report = run_verify(mesh)
    assert report.ok, [r for r in report.results if r.failed]
    istiod_items = {(r.cluster, r.item) for r in report.results if r.check == v.ISTIOD}
    assert any(revision_name(NEW) in item for _, item in istiod_items), istiod_items
