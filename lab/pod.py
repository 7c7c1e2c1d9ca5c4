"""What the kubelet makes of a pod template, for a process that runs on this host instead of in
a container: its volumes as files under a directory that stands for the container's root, its
environment, and its readiness probe.

Only what istiod's pod template (Istio's istiod chart) uses is supported: secret, configMap,
emptyDir and projected serviceAccountToken volumes; env values, fieldRef, resourceFieldRef,
secretKeyRef and configMapKeyRef; an httpGet readiness probe. Anything else is refused by name,
so a chart that starts needing more fails loudly instead of running half-configured.

Paths: the container's absolute paths (`/etc/cacerts`) become `<root>/etc/cacerts`, and the
process runs with `<root>` as its working directory. istiod's own defaults are relative for this
reason (`ROOT_CA_DIR=./etc/cacerts`, `./var/run/secrets/tokens/istio-token`), and env values that
name a mounted path are rewritten to the same place under `<root>`.
"""

from __future__ import annotations

import base64
import json
import math
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping, Optional

from . import volume
from .kubeapi import ApiError, KubeClient

# Refresh a service-account token once 80% of its life has passed, as the kubelet does.
TOKEN_REFRESH_FRACTION = 0.8
DEFAULT_TOKEN_SECONDS = 3607  # the kubelet's default for projected tokens


class Unsupported(RuntimeError):
    """The pod template uses something this stand-in does not do."""


@dataclass(frozen=True)
class PodIdentity:
    name: str
    namespace: str
    service_account: str
    ip: str


def container(template: Mapping[str, Any], name: Optional[str] = None) -> dict:
    containers = template["spec"]["containers"]
    return next(c for c in containers if name is None or c["name"] == name)


def host_path(root: Path, path: str) -> Path:
    return root / path.lstrip("/")


def request_token(client: KubeClient, pod: PodIdentity, audience: Optional[str], seconds: int) -> str:
    """A TokenRequest for the pod's service account, like the kubelet's for projected tokens."""
    spec: dict[str, Any] = {"expirationSeconds": seconds}
    if audience:
        spec["audiences"] = [audience]
    answer = client.request(
        "POST",
        f"/api/v1/namespaces/{pod.namespace}/serviceaccounts/{pod.service_account}/token",
        {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest", "spec": spec},
    )
    return answer["status"]["token"]


def _object_data(client: KubeClient, kind: str, namespace: str, name: str) -> Optional[dict[str, bytes]]:
    plural = {"secret": "secrets", "configMap": "configmaps"}[kind]
    try:
        obj = client.get(f"/api/v1/namespaces/{namespace}/{plural}/{name}")
    except ApiError as error:
        if error.status == 404:
            return None
        raise
    if kind == "secret":
        return {k: base64.b64decode(v) for k, v in (obj.get("data") or {}).items()}
    data = {k: v.encode() for k, v in (obj.get("data") or {}).items()}
    data.update({k: base64.b64decode(v) for k, v in (obj.get("binaryData") or {}).items()})
    return data


# Where the ServiceAccount admission plugin mounts the pod's API credentials (`kube-api-access-*`).
SERVICE_ACCOUNT_DIR = "/var/run/secrets/kubernetes.io/serviceaccount"
SERVICE_ACCOUNT_VOLUME = "kube-api-access"


class Volumes:
    """A pod's volumes, kept up to date on every `sync` (the kubelet resyncs them periodically).

    `ca_data` is the cluster CA that the API-access volume carries as `ca.crt`."""

    def __init__(self, client: KubeClient, pod: PodIdentity, template: Mapping[str, Any], root: Path, ca_data: bytes):
        self.client, self.pod, self.root, self.ca_data = client, pod, root, ca_data
        self.mounts = {
            m["name"]: m["mountPath"] for c in template["spec"]["containers"] for m in c.get("volumeMounts") or []
        }
        self.volumes = [v for v in template["spec"].get("volumes") or [] if v["name"] in self.mounts]
        if template["spec"].get("automountServiceAccountToken", True):
            # What the admission plugin adds: token (default audience), ca.crt, namespace.
            self.mounts[SERVICE_ACCOUNT_VOLUME] = SERVICE_ACCOUNT_DIR
            self.volumes.append(
                {
                    "name": SERVICE_ACCOUNT_VOLUME,
                    "projected": {
                        "sources": [
                            {"serviceAccountToken": {"path": "token", "expirationSeconds": DEFAULT_TOKEN_SECONDS}}
                        ]
                    },
                }
            )
        self._token_born: dict[str, float] = {}
        for v in self.volumes:
            kinds = set(v) - {"name"}
            if not kinds <= {"secret", "configMap", "emptyDir", "projected"}:
                raise Unsupported(f"volume {v['name']}: {', '.join(sorted(kinds))}")
            for source in (v.get("projected") or {}).get("sources") or []:
                if set(source) != {"serviceAccountToken"}:
                    raise Unsupported(f"volume {v['name']}: projected {', '.join(sorted(source))}")

    def sync(self) -> list[str]:
        """Bring every volume up to date; returns the names of those whose files changed."""
        changed = []
        for v in self.volumes:
            target = host_path(self.root, self.mounts[v["name"]])
            if "emptyDir" in v:
                target.mkdir(parents=True, exist_ok=True)
                continue
            payload = self._payload(v)
            if payload is not None and volume.write(target, payload):
                changed.append(v["name"])
        return changed

    def _payload(self, v: Mapping[str, Any]) -> Optional[dict[str, bytes]]:
        for kind, key in (("secret", "secretName"), ("configMap", "name")):
            if kind in v:
                data = _object_data(self.client, kind, self.pod.namespace, v[kind][key])
                if data is None and not v[kind].get("optional"):
                    raise RuntimeError(f"volume {v['name']}: {kind} {v[kind][key]} not found (not optional)")
                # An optional object that does not exist is an empty volume.
                return data or {}
        payload = {}
        for source in v["projected"]["sources"]:
            token = source["serviceAccountToken"]
            seconds = int(token.get("expirationSeconds") or DEFAULT_TOKEN_SECONDS)
            born = self._token_born.get(f"{v['name']}/{token['path']}")
            if born is not None and time.time() - born < seconds * TOKEN_REFRESH_FRACTION:
                return None  # still fresh: nothing to write
            payload[token["path"]] = request_token(self.client, self.pod, token.get("audience"), seconds).encode()
            self._token_born[f"{v['name']}/{token['path']}"] = time.time()
        if v["name"] == SERVICE_ACCOUNT_VOLUME:
            payload.update({"ca.crt": self.ca_data, "namespace": self.pod.namespace.encode()})
        return payload

    @property
    def service_account_dir(self) -> Path:
        return host_path(self.root, SERVICE_ACCOUNT_DIR)

    def rewrite_path(self, value: str) -> str:
        """An env value naming a mounted path, as that path on this host."""
        for mount in self.mounts.values():
            if value == mount or value.startswith(mount.rstrip("/") + "/"):
                return str(host_path(self.root, value))
        return value


def _quantity(value: str) -> float:
    """A Kubernetes resource quantity as a number (cores, or bytes)."""
    suffixes = {"m": 1e-3, "k": 1e3, "M": 1e6, "G": 1e9, "T": 1e12, "Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40}
    for suffix in sorted(suffixes, key=len, reverse=True):
        if value.endswith(suffix):
            return float(value[: -len(suffix)]) * suffixes[suffix]
    return float(value)


def _node_allocatable(resource: str) -> float:
    # The kubelet uses the node's allocatable capacity when a container sets no limit.
    if resource.endswith("cpu"):
        return float(os.cpu_count() or 1)
    return float(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))


def environment(client: KubeClient, pod: PodIdentity, c: Mapping[str, Any], volumes: Volumes) -> dict[str, str]:
    """The container's environment as the kubelet resolves it."""
    fields: dict[str, Callable[[], str]] = {
        "metadata.name": lambda: pod.name,
        "metadata.namespace": lambda: pod.namespace,
        "spec.serviceAccountName": lambda: pod.service_account,
        "spec.nodeName": lambda: "lab",
        "status.podIP": lambda: pod.ip,
        "status.hostIP": lambda: "127.0.0.1",
    }
    env: dict[str, str] = {}
    for item in c.get("env") or []:
        name = item["name"]
        source = item.get("valueFrom")
        if not source:  # the API server stores an empty value as no value at all
            env[name] = volumes.rewrite_path(str(item.get("value", "")))
            continue
        if "fieldRef" in source:
            path = source["fieldRef"]["fieldPath"]
            if path not in fields:
                raise Unsupported(f"env {name}: fieldRef {path}")
            env[name] = fields[path]()
        elif "resourceFieldRef" in source:
            ref = source["resourceFieldRef"]
            limit = ((c.get("resources") or {}).get("limits") or {}).get(ref["resource"].split(".", 1)[1])
            amount = _quantity(limit) if limit else _node_allocatable(ref["resource"])
            env[name] = str(math.ceil(amount / _quantity(str(ref.get("divisor") or "1"))))
        elif "secretKeyRef" in source or "configMapKeyRef" in source:
            kind = "secret" if "secretKeyRef" in source else "configMap"
            ref = source[f"{kind}KeyRef"]
            data = _object_data(client, kind, pod.namespace, ref["name"]) or {}
            if ref["key"] in data:
                env[name] = data[ref["key"]].decode()
            elif not ref.get("optional"):
                raise RuntimeError(f"env {name}: {kind} {ref['name']} has no key {ref['key']}")
        else:
            raise Unsupported(f"env {name}: {json.dumps(source)}")
    return env


def readiness_url(c: Mapping[str, Any], ip: str) -> Optional[str]:
    probe = (c.get("readinessProbe") or {}).get("httpGet")
    if not probe:
        return None
    port = probe["port"]
    if not isinstance(port, int):
        port = next(p["containerPort"] for p in c.get("ports") or [] if p.get("name") == port)
    return f"http://{ip}:{port}{probe.get('path', '/')}"
