"""STAND-IN, for tests only, for what makes a workload's endpoint exist on a real cluster: the
ReplicaSet controller's Pod, the sidecar injector's labels, the kubelet's Ready status with a pod
IP, and the EndpointSlice controller's slice. No container runs; istiod sees exactly the objects
it would see for a Ready injected pod, and so serves its endpoint to sidecars.
"""

from __future__ import annotations

from typing import Any

import kubernetes

MANAGER = "tests.workload-standin"


def run_pod(api: kubernetes.client.ApiClient, deployment: dict[str, Any], ip: str) -> dict[str, Any]:
    """A Ready pod of `deployment` (a manifest as the program makes it) with address `ip`, behind
    every Service of its namespace that selects it. Returns the Pod as stored."""
    core = kubernetes.client.CoreV1Api(api)
    namespace = deployment["metadata"]["namespace"]
    template = deployment["spec"]["template"]
    labels = dict(template["metadata"]["labels"])
    # What the sidecar injector adds to an injected pod; istiod reads tlsMode from it.
    labels.update(
        {
            "security.istio.io/tlsMode": "istio",
            "service.istio.io/canonical-name": labels.get("app", deployment["metadata"]["name"]),
        }
    )
    name = f"{deployment['metadata']['name']}-standin"
    spec = dict(template["spec"])
    pod = core.create_namespaced_pod(
        namespace,
        {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {
                "name": name,
                "namespace": namespace,
                "labels": labels,
                "annotations": {"sidecar.istio.io/status": '{"containers":["istio-proxy"]}'},
            },
            "spec": spec,
        },
    )
    core.patch_namespaced_pod_status(
        name,
        namespace,
        {
            "status": {
                "phase": "Running",
                "podIP": ip,
                "podIPs": [{"ip": ip}],
                "hostIP": "127.0.0.1",
                "conditions": [{"type": "Ready", "status": "True"}, {"type": "ContainersReady", "status": "True"}],
            }
        },
    )
    discovery = kubernetes.client.DiscoveryV1Api(api)
    for service in core.list_namespaced_service(namespace).items:
        selector = service.spec.selector or {}
        if not selector or any(labels.get(k) != v for k, v in selector.items()):
            continue
        discovery.create_namespaced_endpoint_slice(
            namespace,
            {
                "apiVersion": "discovery.k8s.io/v1",
                "kind": "EndpointSlice",
                "metadata": {
                    "name": f"{service.metadata.name}-{name}",
                    "namespace": namespace,
                    "labels": {
                        "kubernetes.io/service-name": service.metadata.name,
                        "endpointslice.kubernetes.io/managed-by": MANAGER,
                    },
                },
                "addressType": "IPv4",
                "endpoints": [
                    {
                        "addresses": [ip],
                        "conditions": {"ready": True, "serving": True, "terminating": False},
                        "targetRef": {"kind": "Pod", "name": name, "namespace": namespace, "uid": pod.metadata.uid},
                    }
                ],
                "ports": [
                    {
                        "name": p.name,
                        "port": p.target_port if isinstance(p.target_port, int) else p.port,
                        "protocol": p.protocol or "TCP",
                    }
                    for p in service.spec.ports or []
                ],
            },
        )
    return core.read_namespaced_pod(name, namespace)
