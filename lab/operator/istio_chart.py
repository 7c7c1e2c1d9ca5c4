"""istiod's Kubernetes objects for a Sail `Istio` resource, rendered by Istio's own istioctl
from Istio's own istiod chart with that resource's `spec.values`: what the Sail operator renders
(it installs the same charts through Helm), and so what the lab's istiod runs with — its
ServiceAccount and ClusterRole (the rights the chart gives istiod), its mesh-config ConfigMap, and
the Deployment whose pod the cluster's node runs (lab/nodes/node.py).

CustomResourceDefinitions are not applied: the lab installs the Sail operator's CRD set. The
admission webhooks are (sidecar injection, validation): the API server calls istiod at its pod's
address, the `istiod` Service's endpoint (`--enable-aggregator-routing`; no kube-proxy here).
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import tempfile
from pathlib import Path
from typing import Any, Mapping

import yaml

from mesh.plan import names

SKIPPED_KINDS = ("CustomResourceDefinition",)
RENDERED_LABEL = "lab.mesh/rendered-for"


def istio_operator(istio: Mapping[str, Any]) -> dict[str, Any]:
    """The IstioOperator input for istioctl that says what the `Istio` resource says."""
    spec = istio["spec"]
    values = json.loads(json.dumps(spec.get("values") or {}))
    namespace = spec.get("namespace", "istio-system")
    values.setdefault("global", {})["istioNamespace"] = namespace
    iop: dict[str, Any] = {
        "apiVersion": "install.istio.io/v1alpha1",
        "kind": "IstioOperator",
        # minimal: istiod alone (Sail installs gateways separately, as the program does).
        "spec": {"profile": "minimal", "namespace": namespace, "values": values},
    }
    # Sail: an InPlace `Istio` is the revision named after it.
    revision = names.chart_revision(istio["metadata"]["name"])
    if revision:
        iop["spec"]["revision"] = revision
    return iop


def spec_hash(istio: Mapping[str, Any]) -> str:
    return hashlib.sha256(json.dumps(istio["spec"], sort_keys=True).encode()).hexdigest()[:16]


def render(istio: Mapping[str, Any], istioctl: str) -> list[dict[str, Any]]:
    """`istioctl manifest generate` for `istio`, minus SKIPPED_KINDS, each object labelled with
    the `Istio` it was rendered for."""
    with tempfile.TemporaryDirectory() as tmp:
        iop = Path(tmp) / "iop.yaml"
        iop.write_text(yaml.safe_dump(istio_operator(istio)))
        out = subprocess.run(
            [istioctl, "manifest", "generate", "-f", str(iop)], capture_output=True, text=True, timeout=120
        )
    if out.returncode != 0:
        raise RuntimeError(f"istioctl manifest generate failed: {out.stderr.strip()[-2000:]}")
    objects = []
    for doc in yaml.safe_load_all(out.stdout):
        if not doc or doc.get("kind") in SKIPPED_KINDS:
            continue
        doc["metadata"].setdefault("labels", {})[RENDERED_LABEL] = istio["metadata"]["name"]
        objects.append(doc)
    return objects
