"""What the kubelet makes of a pod, for processes that run on this host instead of in containers
(lab/nodes/node.py runs them): its volumes as files under a directory that stands for the containers'
root, and each container's environment.

Supported: secret, configMap, downwardAPI, emptyDir, projected (serviceAccountToken, configMap,
secret, downwardAPI) and hostPath volumes (the node's folder: lab/nodes/host.py, mounted into the
container by the node); env values with `$(VAR)` references, fieldRef, resourceFieldRef,
secretKeyRef and configMapKeyRef, and envFrom ConfigMaps and Secrets. Anything else is refused by name, so a pod that needs more fails
loudly instead of running half-configured.

Paths: the container's absolute paths (`/etc/cacerts`) become `<root>/etc/cacerts`, and the
processes run with `<root>` as their working directory. Istio's own defaults are relative for this
reason (`ROOT_CA_DIR=./etc/cacerts`, `./var/run/secrets/tokens/istio-token`).
"""

from __future__ import annotations

import base64
import json
import math
import os
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Optional

from . import volume
from ..clusters.kubeapi import ApiError, KubeClient
from .host import Mount, NodeHost

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
KINDS = {"secret", "configMap", "emptyDir", "projected", "downwardAPI", "hostPath"}
# hostPath types the kubelet checks (others: Socket, CharDevice, BlockDevice, are not done here).
HOST_PATH_TYPES = {"", "DirectoryOrCreate", "Directory", "FileOrCreate", "File"}
PROJECTED_SOURCES = {"serviceAccountToken", "configMap", "secret", "downwardAPI"}


def _field(pod: Mapping[str, Any], path: str) -> str:
    """A downward-API field of the pod, as the kubelet renders it (labels and annotations as
    sorted `key="value"` lines)."""
    md = pod["metadata"]
    if path in ("metadata.labels", "metadata.annotations"):
        values = md.get(path.split(".")[1]) or {}
        return "\n".join(f"{k}={json.dumps(v)}" for k, v in sorted(values.items()))
    for kind in ("labels", "annotations"):
        prefix = f"metadata.{kind}['"
        if path.startswith(prefix) and path.endswith("']"):
            return (md.get(kind) or {}).get(path[len(prefix) : -2], "")
    simple = {
        "metadata.name": md.get("name"),
        "metadata.namespace": md.get("namespace"),
        "metadata.uid": md.get("uid"),
        "spec.serviceAccountName": pod["spec"].get("serviceAccountName") or "default",
        "spec.nodeName": pod["spec"].get("nodeName"),
        "status.podIP": (pod.get("status") or {}).get("podIP"),
        "status.hostIP": (pod.get("status") or {}).get("hostIP"),
    }
    if path not in simple:
        raise Unsupported(f"fieldRef {path}")
    return str(simple[path] or "")


class Volumes:
    """A pod's volumes, kept up to date on every `sync` (the kubelet resyncs them periodically).

    `pod` is the Pod object (its metadata and spec; `status.podIP` once known)."""

    def __init__(
        self, client: KubeClient, pod: PodIdentity, spec: Mapping[str, Any], root: Path, host: Optional[NodeHost] = None
    ):
        self.client, self.pod, self.root, self.obj, self.host = client, pod, root, spec, host
        self.mounts: dict[str, list[str]] = {}
        containers = list(spec["spec"].get("initContainers") or []) + list(spec["spec"]["containers"])
        for c in containers:
            for m in c.get("volumeMounts") or []:
                if m.get("subPath") or m.get("subPathExpr"):
                    raise Unsupported(f"volume mount {m['name']} of container {c['name']}: subPath")
                paths = self.mounts.setdefault(m["name"], [])
                if m["mountPath"] not in paths:
                    paths.append(m["mountPath"])
        self.volumes = [v for v in spec["spec"].get("volumes") or [] if v["name"] in self.mounts]
        self._token_born: dict[str, float] = {}
        self._token_cache: dict[str, bytes] = {}
        for v in self.volumes:
            kinds = set(v) - {"name"}
            if not kinds <= KINDS:
                raise Unsupported(f"volume {v['name']}: {', '.join(sorted(kinds))}")
            for source in (v.get("projected") or {}).get("sources") or []:
                if not set(source) <= PROJECTED_SOURCES:
                    raise Unsupported(f"volume {v['name']}: projected {', '.join(sorted(source))}")
            if "hostPath" in v:
                if host is None:
                    raise Unsupported(f"volume {v['name']}: hostPath (this node has no host folder)")
                if (v["hostPath"].get("type") or "") not in HOST_PATH_TYPES:
                    raise Unsupported(f"volume {v['name']}: hostPath type {v['hostPath']['type']}")

    def sync(self) -> list[str]:
        """Bring every volume up to date; returns the names of those whose files changed."""
        changed = []
        for v in self.volumes:
            first, *others = self.mounts[v["name"]]
            target = host_path(self.root, first)
            if "hostPath" in v:
                is_dir = self._check_host_path(v).is_dir()
                for path in self.mounts[v["name"]]:  # where the node mounts it
                    mount_point = host_path(self.root, path)
                    if is_dir:
                        mount_point.mkdir(parents=True, exist_ok=True)
                    else:
                        mount_point.parent.mkdir(parents=True, exist_ok=True)
                        mount_point.touch(exist_ok=True)
                continue
            if "emptyDir" in v:
                target.mkdir(parents=True, exist_ok=True)
                target.chmod(0o777)  # as the kubelet makes it: any container user may write
            else:
                payload = self._payload(v)
                if payload is not None and volume.write(target, payload):
                    changed.append(v["name"])
            for other in others:  # the same volume mounted at another path too
                link = host_path(self.root, other)
                if not link.is_symlink():
                    link.parent.mkdir(parents=True, exist_ok=True)
                    link.symlink_to(os.path.relpath(target, link.parent))
        return changed

    def _host_source(self, v: Mapping[str, Any]) -> Path:
        assert self.host is not None
        return self.host.path(v["hostPath"]["path"])

    def _check_host_path(self, v: Mapping[str, Any]) -> Path:
        """The kubelet's checks of a hostPath volume's type (and the creation its type asks for);
        returns where the volume is on this node."""
        kind = v["hostPath"].get("type") or ""
        source = self._host_source(v)
        where = f"{v['hostPath']['path']} (on this node: {source})"
        if kind in ("", "DirectoryOrCreate") and not source.exists():
            # Unset, the runtime creates a missing path as a folder, as containerd does.
            source.mkdir(parents=True, exist_ok=True)
        elif kind == "FileOrCreate" and not source.exists():
            source.parent.mkdir(parents=True, exist_ok=True)
            source.touch()
        if kind in ("Directory", "DirectoryOrCreate") and not source.is_dir():
            raise RuntimeError(f"volume {v['name']}: hostPath type check failed: {where} is not a directory")
        if kind in ("File", "FileOrCreate") and not source.is_file():
            raise RuntimeError(f"volume {v['name']}: hostPath type check failed: {where} is not a file")
        return source

    def host_mounts(self, c: Mapping[str, Any]) -> list[Mount]:
        """The container's hostPath mounts, for the node to make in its mount namespace."""
        by_name = {v["name"]: v for v in self.volumes if "hostPath" in v}
        return [
            Mount(self._host_source(by_name[m["name"]]), m["mountPath"], bool(m.get("readOnly")))
            for m in c.get("volumeMounts") or []
            if m["name"] in by_name
        ]

    def _object(self, kind: str, ref: Mapping[str, Any], volume_name: str) -> dict[str, bytes]:
        name = ref.get("secretName") or ref.get("name")
        data = _object_data(self.client, kind, self.pod.namespace, name)
        if data is None:
            if not ref.get("optional"):
                raise RuntimeError(f"volume {volume_name}: {kind} {name} not found (not optional)")
            return {}
        items = ref.get("items")
        if items:
            return {i["path"]: data[i["key"]] for i in items if i["key"] in data}
        return data

    def _downward(self, items: list[Mapping[str, Any]]) -> dict[str, bytes]:
        return {i["path"]: _field(self.obj, i["fieldRef"]["fieldPath"]).encode() for i in items if "fieldRef" in i}

    def _payload(self, v: Mapping[str, Any]) -> Optional[dict[str, bytes]]:
        if "secret" in v:
            return self._object("secret", v["secret"], v["name"])
        if "configMap" in v:
            return self._object("configMap", v["configMap"], v["name"])
        if "downwardAPI" in v:
            return self._downward(v["downwardAPI"].get("items") or [])
        payload: dict[str, bytes] = {}
        for source in v["projected"]["sources"]:
            if "configMap" in source:
                payload.update(self._object("configMap", source["configMap"], v["name"]))
            elif "secret" in source:
                payload.update(self._object("secret", source["secret"], v["name"]))
            elif "downwardAPI" in source:
                payload.update(self._downward(source["downwardAPI"].get("items") or []))
            else:
                token = source["serviceAccountToken"]
                seconds = int(token.get("expirationSeconds") or DEFAULT_TOKEN_SECONDS)
                key = f"{v['name']}/{token['path']}"
                born = self._token_born.get(key)
                if born is None or time.time() - born >= seconds * TOKEN_REFRESH_FRACTION:
                    self._token_cache[key] = request_token(
                        self.client, self.pod, token.get("audience"), seconds
                    ).encode()
                    self._token_born[key] = time.time()
                payload[token["path"]] = self._token_cache[key]
        return payload

    @property
    def service_account_dir(self) -> Path:
        return host_path(self.root, SERVICE_ACCOUNT_DIR)


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


_REFERENCE = re.compile(r"\$\$|\$\(([^)]*)\)")


def expand(text: str, env: Mapping[str, str]) -> str:
    """Kubernetes' `$(VAR)` expansion of env values, command and args (k8s.io/kubernetes
    third_party/forked/golang/expansion): a defined VAR is replaced, `$$` is a literal `$`, an
    undefined reference stays as written."""

    def one(match: re.Match) -> str:
        if match.group(0) == "$$":
            return "$"
        name = match.group(1)
        return env[name] if name in env else match.group(0)

    return _REFERENCE.sub(one, text)


def environment(
    client: KubeClient,
    pod: PodIdentity,
    obj: Mapping[str, Any],
    c: Mapping[str, Any],
    services: Optional[Mapping[str, str]] = None,
) -> dict[str, str]:
    """The container's environment as the kubelet resolves it (`obj` is the Pod): the service
    variables the kubelet adds (`services`: KUBERNETES_SERVICE_HOST and the like), then `envFrom`,
    then `env`, whose values may refer to those before them as `$(NAME)`."""
    env: dict[str, str] = {"HOSTNAME": pod.name, **(services or {})}
    for source in c.get("envFrom") or []:
        kind = "configMap" if "configMapRef" in source else "secret" if "secretRef" in source else None
        if kind is None:
            raise Unsupported(f"envFrom {json.dumps(source)}")
        ref = source[f"{kind}Ref"]
        data = _object_data(client, kind, pod.namespace, ref["name"])
        if data is None:
            if not ref.get("optional"):
                raise RuntimeError(f"envFrom: {kind} {ref['name']} not found")
            continue
        prefix = source.get("prefix") or ""
        env.update({prefix + key: value.decode() for key, value in data.items()})
    for item in c.get("env") or []:
        name = item["name"]
        source = item.get("valueFrom")
        if not source:  # the API server stores an empty value as no value at all
            env[name] = expand(str(item.get("value", "")), env)
            continue
        if "fieldRef" in source:
            env[name] = _field(obj, source["fieldRef"]["fieldPath"])
        elif "resourceFieldRef" in source:
            ref = source["resourceFieldRef"]
            limit = ((c.get("resources") or {}).get("limits") or {}).get(ref["resource"].split(".", 1)[1])
            amount = _quantity(limit) if limit else _node_allocatable(ref["resource"])
            divisor = _quantity(str(ref.get("divisor") or "1")) or 1.0
            env[name] = str(math.ceil(amount / divisor))
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
