"""The accepted Istio versions are the Sail CRDs' own enum (the CRDs setup.sh gets with the Sail
operator's source: toolchain/sail-operator.sh)."""

import pytest
import yaml

from mesh.sail_versions import ISTIO_VERSIONS

from lab.clusters.crds import default_dir


@pytest.mark.parametrize("crd", ["sailoperator.io_istios.yaml", "sailoperator.io_istiocnis.yaml"])
@pytest.mark.toolchain
def test_versions_equal_the_crd_enum(crd):
    document = yaml.safe_load((default_dir() / crd).read_text())
    (v1,) = [v for v in document["spec"]["versions"] if v["name"] == "v1"]
    enum = v1["schema"]["openAPIV3Schema"]["properties"]["spec"]["properties"]["version"]["enum"]
    assert tuple(enum) == ISTIO_VERSIONS
