"""The accepted Istio versions are the Sail CRDs' own enum."""

import pytest
import yaml

from mesh.sail_versions import ISTIO_VERSIONS

from .conftest import SHARED


@pytest.mark.parametrize("crd", ["sailoperator.io_istios.yaml", "sailoperator.io_istiocnis.yaml"])
def test_versions_equal_the_crd_enum(crd):
    document = yaml.safe_load((SHARED / "crds" / crd).read_text())
    (v1,) = [v for v in document["spec"]["versions"] if v["name"] == "v1"]
    enum = v1["schema"]["openAPIV3Schema"]["properties"]["spec"]["properties"]["version"]["enum"]
    assert tuple(enum) == ISTIO_VERSIONS
