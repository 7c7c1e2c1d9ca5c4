"""mesh:istioVersion against what each cluster's Sail operator lists (the `spec.version` enum of
its CRDs): the real CRDs of the operator the lab runs, and the messages a user gets."""

import copy

import pytest
import yaml

from mesh.plan import operator_versions as ov

from lab.clusters.crds import default_dir


def crd(versions):
    return {
        "spec": {
            "versions": [
                {
                    "name": "v1",
                    "served": True,
                    "schema": {
                        "openAPIV3Schema": {"properties": {"spec": {"properties": {"version": {"enum": versions}}}}}
                    },
                }
            ]
        }
    }


@pytest.mark.toolchain
def test_the_real_sail_crds_list_what_the_operator_ships_and_not_an_unreleased_patch():
    for name in ("sailoperator.io_istios.yaml", "sailoperator.io_istiocnis.yaml"):
        accepted = ov.accepted_versions(yaml.safe_load((default_dir() / name).read_text()))
        assert accepted[0] == "v1.31-latest"
        assert {"v1.30.3", "v1.30-latest", "v1.28.10"} <= set(accepted)
        assert "v1.30.4" not in accepted


def test_a_version_every_cluster_lists_passes():
    found = {c: {ov.CRDS["Istio"]: crd(["v1.30.3"]), ov.CRDS["IstioCNI"]: crd(["v1.30.3"])} for c in ("east", "west")}
    assert ov.version_problems("v1.30.3", ["Istio", "IstioCNI"], found) == []
    assert ov.refusal("v1.30.3", []) is None


def test_a_cluster_whose_operator_does_not_list_the_version_is_named_with_what_it_lists():
    older = [f"v1.29.{n}" for n in range(6, -1, -1)] + [f"v1.28.{n}" for n in range(10, -1, -1)]
    found = {
        "east": {ov.CRDS["Istio"]: crd(["v1.30.3", *older])},
        "west": {ov.CRDS["Istio"]: crd(older)},
    }
    problems = ov.version_problems("v1.30.3", ["Istio"], found)
    assert problems == [
        "the Sail operator on cluster west does not accept 'v1.30.3' for Istio (its CRD's versions, newest first: "
        + ", ".join(older[:12])
        + ", ...)"
    ]
    message = ov.refusal("v1.30.3", problems)
    assert message.startswith("config mesh:istioVersion: 'v1.30.3': the Sail operator on cluster west")
    assert "Nothing was changed on any cluster" in message


def test_a_cluster_without_the_operator_is_told_to_install_it():
    found = {"east": {ov.CRDS["Istio"]: crd(["v1.30.3"]), ov.CRDS["IstioCNI"]: None}}
    assert ov.version_problems("v1.30.3", ["Istio", "IstioCNI"], found) == [
        "cluster east has no CRD istiocnis.sailoperator.io: install the Sail operator (OpenShift Service Mesh 3) "
        "there first"
    ]


def test_only_the_served_v1_schema_counts_and_a_crd_without_an_enum_accepts_any():
    document = crd(["v1.30.3"])
    unserved = copy.deepcopy(document["spec"]["versions"][0])
    unserved.update(name="v1alpha1")
    unserved["schema"]["openAPIV3Schema"]["properties"]["spec"]["properties"]["version"]["enum"] = ["v1.99.0"]
    document["spec"]["versions"].insert(0, unserved)
    assert ov.accepted_versions(document) == ("v1.30.3",)
    open_ended = crd(None)
    del open_ended["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]["properties"]["version"][
        "enum"
    ]
    assert ov.accepted_versions(open_ended) is None
    assert ov.version_problems("v1.99.0", ["Istio"], {"east": {ov.CRDS["Istio"]: open_ended}}) == []
