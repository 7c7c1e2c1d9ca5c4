"""Every version is written once, in toolchain/versions.env: the toolchain scripts read it
(toolchain/versions.sh), and requirements.txt and docs/toolchain.md must say the same."""

from __future__ import annotations

import re
import subprocess

import pytest

from lab.stack import REPO
from lab.toolchain import versions

# requirements.txt's pin of each Pulumi SDK, and the versions.env key it must equal.
SDK_PINS = {
    "pulumi": "PULUMI_SDK_VERSION",
    "pulumi-kubernetes": "PULUMI_KUBERNETES_SDK_VERSION",
    "pulumi-tls": "PULUMI_TLS_SDK_VERSION",
    "pulumi-random": "PULUMI_RANDOM_SDK_VERSION",
}
# What docs/toolchain.md's tables must name, by key.
TOOLCHAIN_DOC_KEYS = [
    "KUBERNETES_VERSION", "ETCD_VERSION", "PULUMI_VERSION", "PULUMI_KUBERNETES_VERSION",
    "PULUMI_TLS_VERSION", "PULUMI_RANDOM_VERSION", "ACTIONLINT_VERSION",
    "PULUMI_SDK_VERSION", "PULUMI_KUBERNETES_SDK_VERSION", "PULUMI_TLS_SDK_VERSION", "PULUMI_RANDOM_SDK_VERSION",
    "ISTIO_MODULE_VERSION", "ISTIO_BUILD_VERSION", "OPENSHIFT_API_VERSION", "CERT_MANAGER_VERSION",
    "SAIL_OPERATOR_COMMIT",
]  # fmt: skip


def pins() -> dict[str, str]:
    found = {}
    for line in (REPO / "requirements.txt").read_text(encoding="utf-8").splitlines():
        match = re.fullmatch(r"([A-Za-z0-9_.-]+)==(\S+)", line.strip())
        if match:
            found[match[1].lower()] = match[2]
    return found


@pytest.mark.parametrize("package", sorted(SDK_PINS))
def test_requirements_pin_the_released_sdks_of_versions_env(package):
    assert pins()[package] == versions()[SDK_PINS[package]]


@pytest.mark.parametrize("key", TOOLCHAIN_DOC_KEYS)
def test_the_toolchain_doc_names_each_version(key):
    assert versions()[key] in (REPO / "docs" / "toolchain.md").read_text(encoding="utf-8"), key


def test_the_scripts_read_versions_env_and_stop_on_a_missing_key(tmp_path):
    """toolchain/versions.sh sets what versions.env says, and names a key it lacks."""
    (tmp_path / "versions.sh").write_text((REPO / "toolchain" / "versions.sh").read_text())
    (tmp_path / "versions.env").write_text("# a comment\nA_VERSION=1.2.3\nB=x=y\n")
    script = 'source "$(dirname "$0")/versions.sh" A_VERSION B; echo "$A_VERSION $B"'
    read = subprocess.run(["bash", "-c", script, str(tmp_path / "x")], capture_output=True, text=True)
    assert (read.returncode, read.stdout) == (0, "1.2.3 x=y\n"), read.stderr
    missing = subprocess.run(["bash", "-c", 'source "$(dirname "$0")/versions.sh" C_VERSION; echo reached', str(tmp_path / "x")],
                             capture_output=True, text=True)  # fmt: skip
    assert missing.returncode == 1 and "reached" not in missing.stdout
    assert f"C_VERSION is missing from {tmp_path}/versions.env" in missing.stderr


def test_versions_env_is_only_key_value_lines():
    assert versions()["PULUMI_VERSION"].count(".") == 2
    assert all(value == value.strip() and " " not in value for value in versions().values())
