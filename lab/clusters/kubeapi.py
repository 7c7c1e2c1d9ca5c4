"""A minimal Kubernetes REST client on the standard library.

The lab needs a handful of calls (readiness, server-side apply, status patches);
the stdlib keeps it free of the `kubernetes` package's large dependency tree and
its version coupling to the server.
"""

from __future__ import annotations

import json
import ssl
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any


class ApiError(Exception):
    def __init__(self, status: int, method: str, path: str, body: str):
        super().__init__(f"{method} {path}: HTTP {status}: {body[:500]}")
        self.status = status


class KubeClient:
    def __init__(self, server: str, ca_file: Path, cert_file: Path, key_file: Path, timeout: float = 10.0):
        self.server = server.rstrip("/")
        self.timeout = timeout
        self._ctx = ssl.create_default_context(cafile=str(ca_file))
        self._ctx.load_cert_chain(str(cert_file), str(key_file))
        self._resources: dict[str, dict[str, tuple[str, bool]]] = {}

    def request(self, method: str, path: str, body: Any = None, content_type: str = "application/json") -> Any:
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.server + path, data=data, method=method)
        if data is not None:
            req.add_header("Content-Type", content_type)
        req.add_header("Accept", "application/json")
        try:
            with urllib.request.urlopen(req, context=self._ctx, timeout=self.timeout) as resp:
                raw = resp.read()
        except urllib.error.HTTPError as e:
            raise ApiError(e.code, method, path, e.read().decode(errors="replace")) from None
        if not raw:
            return None
        try:
            return json.loads(raw)
        except ValueError:  # /readyz and friends answer plain text
            return raw.decode()

    def delete(self, path: str, missing_ok: bool = False) -> Any:
        try:
            return self.request("DELETE", path)
        except ApiError as error:
            if missing_ok and error.status == 404:
                return None
            raise

    def path_of(self, obj: dict) -> str:
        """The REST path of `obj` (its kind's plural and scope from API discovery, cached)."""
        api_version, kind = obj["apiVersion"], obj["kind"]
        base = "/api/v1" if api_version == "v1" else f"/apis/{api_version}"
        if api_version not in self._resources:
            listing = self.get(base)["resources"]
            self._resources[api_version] = {
                r["kind"]: (r["name"], r["namespaced"]) for r in listing if "/" not in r["name"]
            }
        plural, namespaced = self._resources[api_version][kind]
        md = obj["metadata"]
        scope = f"/namespaces/{md['namespace']}" if namespaced else ""
        return f"{base}{scope}/{plural}/{md['name']}"

    def get(self, path: str) -> Any:
        return self.request("GET", path)

    def merge_patch(self, path: str, body: Any) -> Any:
        return self.request("PATCH", path, body, "application/merge-patch+json")

    def apply(self, path: str, body: Any, field_manager: str) -> Any:
        """Server-side apply. JSON is valid YAML, so the apply content type takes it;
        force: the lab owns what it applies, whoever last touched it."""
        return self.request(
            "PATCH", f"{path}?fieldManager={field_manager}&force=true", body, "application/apply-patch+yaml"
        )
