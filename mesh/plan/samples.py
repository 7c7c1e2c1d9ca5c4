"""The article's sample apps: `helloworld` (one version per cluster) and the `sleep` client.

Objects follow Istio's samples/helloworld/helloworld.yaml and samples/sleep/sleep.yaml, in the
namespace `sample` with sidecar injection on.
"""

from __future__ import annotations

from typing import Any, Optional

from .control_plane import namespace_manifest
from .names import SKIP_AWAIT

NAMESPACE = "sample"
HELLOWORLD_PORT = 5000
HELLOWORLD_IMAGE = "docker.io/istio/examples-helloworld-{version}:1.0"
SLEEP_IMAGE = "curlimages/curl"


def _deployment(name: str, labels: dict[str, str], pod_spec: dict[str, Any], annotations: Optional[dict]) -> dict:
    metadata: dict[str, Any] = {"name": name, "namespace": NAMESPACE, "labels": dict(labels)}
    if annotations:
        metadata["annotations"] = annotations
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": metadata,
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": dict(labels)},
            "template": {"metadata": {"labels": dict(labels)}, "spec": pod_spec},
        },
    }


def sample_manifests(helloworld_version: str, await_workloads: bool = True) -> list[dict[str, Any]]:
    """The `sample` namespace, helloworld Service and one helloworld version, and sleep."""
    skip = None if await_workloads else {SKIP_AWAIT: "true"}

    def service(name: str, port: int, labels: dict[str, str]) -> dict[str, Any]:
        metadata: dict[str, Any] = {"name": name, "namespace": NAMESPACE, "labels": labels}
        if skip:
            metadata["annotations"] = dict(skip)
        return {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": metadata,
            "spec": {"ports": [{"port": port, "name": "http"}], "selector": {"app": name}},
        }

    helloworld = {"app": "helloworld", "version": helloworld_version}
    return [
        namespace_manifest(NAMESPACE, {"istio-injection": "enabled"}),
        service("helloworld", HELLOWORLD_PORT, {"app": "helloworld", "service": "helloworld"}),
        _deployment(
            f"helloworld-{helloworld_version}",
            helloworld,
            {
                "containers": [
                    {
                        "name": "helloworld",
                        "image": HELLOWORLD_IMAGE.format(version=helloworld_version),
                        "resources": {"requests": {"cpu": "100m"}},
                        "imagePullPolicy": "IfNotPresent",
                        "ports": [{"containerPort": HELLOWORLD_PORT}],
                    }
                ]
            },
            skip,
        ),
        {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "sleep", "namespace": NAMESPACE}},
        service("sleep", 80, {"app": "sleep", "service": "sleep"}),
        _deployment(
            "sleep",
            {"app": "sleep"},
            {
                "terminationGracePeriodSeconds": 0,
                "serviceAccountName": "sleep",
                "containers": [
                    {
                        "name": "sleep",
                        "image": SLEEP_IMAGE,
                        "command": ["/bin/sleep", "infinity"],
                        "imagePullPolicy": "IfNotPresent",
                        "volumeMounts": [{"mountPath": "/etc/sleep/tls", "name": "secret-volume"}],
                    }
                ],
                "volumes": [{"name": "secret-volume", "secret": {"secretName": "sleep-secret", "optional": True}}],
            },
            skip,
        ),
    ]
