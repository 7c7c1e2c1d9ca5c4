"""The config schema told two ways, kept equal to it: docs/configuration.md's tables and the JSON Schema
users point their editor at. The JSON Schema is checked by a real validator (jsonschema)."""

from __future__ import annotations

import json

import jsonschema
import pytest
import yaml

from lab import Cluster
from lab.stack import mesh_config
from mesh.config import docs

from .conftest import REPO
from .test_config import BAD, DELETE, mutate

SCHEMA_FILE = REPO / "schema" / "stack-config.schema.json"


def test_the_configuration_docs_tables_are_the_schemas():
    text = (REPO / "docs" / "configuration.md").read_text(encoding="utf-8")
    assert docs.BEGIN in text and docs.END in text
    assert docs.with_tables(text) == text, (
        "docs/configuration.md's tables differ from the schema: run python -m mesh.config"
    )


def test_the_json_schema_file_is_the_schemas():
    assert SCHEMA_FILE.read_text(encoding="utf-8") == docs.json_schema_text(), "run python -m mesh.config"


@pytest.fixture(scope="module")
def validator():
    schema = json.loads(SCHEMA_FILE.read_text(encoding="utf-8"))
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


def test_the_shipped_stack_file_and_the_labs_pass_the_json_schema(validator, tmp_path):
    document = yaml.safe_load((REPO / "Pulumi.east-west.yaml").read_text(encoding="utf-8"))
    assert [e.message for e in validator.iter_errors(document)] == []
    clusters = [Cluster(name, name, f"https://127.0.0.1:{6443 + i}", tmp_path / "ca") for i, name in enumerate("abc")]
    lab = mesh_config(clusters, tmp_path / "kubeconfig")
    assert [e.message for e in validator.iter_errors(_stack_file(lab))] == []


# What the schema cannot say (it sees one file, not the kubeconfig, nor a value beside another).
NOT_IN_THE_SCHEMA = {
    "clusters.1.clusterName",
    "clusters.1.name",
    "clusters.1.network",  # unique across clusters
    "clusters.0.context",
    "clusters.0.kubeconfig",  # a context of the kubeconfig file
    "certificates",  # cross-key certificate rules; the per-key ones are checked below
    "clusters.0.egressCidrs",  # '10.0.0.1/8' has host bits set: a pattern can only say "CIDR-shaped"
}


def _stack_file(raw: dict) -> dict:
    return {"config": {f"mesh:{key}": value for key, value in raw.items()}}


@pytest.mark.parametrize("path,value,fragments", BAD, ids=[f"{p}={v!r}" for p, v, _ in BAD])
def test_the_json_schema_refuses_what_the_program_refuses_by_key(validator, east_west, path, value, fragments):
    raw = mutate(east_west, path, value)
    errors = list(validator.iter_errors(_stack_file(raw)))
    cross_key = path in NOT_IN_THE_SCHEMA and not (path == "certificates" and _per_key(value))
    if cross_key:
        return
    assert errors, f"the JSON Schema accepts {path}={value!r}, which the program refuses ({fragments[0]})"


def _per_key(certificates: dict) -> bool:
    """A certificates value the program refuses for one key alone (not for a rule across keys)."""
    return any(
        (key, value)
        in {
            ("rsaBits", 1024),
            ("keyAlgorithm", "DSA"),
            ("rootRotation", "swap"),
            ("rootGeneration", -1),
            ("rootRotationWaitHours", "a day"),
        }
        for key, value in certificates.items()
    )


def test_a_secret_kubeconfig_in_a_stack_file_passes(validator, east_west):
    east_west["clusters"][0]["kubeconfig"] = {"secure": "v1:abc"}
    assert list(validator.iter_errors(_stack_file(east_west))) == []


def test_a_key_not_ours_under_mesh_fails_and_other_namespaces_pass(validator, east_west):
    document = _stack_file(east_west)
    document["config"]["aws:region"] = "eu-west-1"
    assert list(validator.iter_errors(document)) == []
    document["config"]["mesh:surprise"] = 1
    assert [e.message for e in validator.iter_errors(document)]


assert DELETE is not None  # re-exported by test_config for the BAD cases
