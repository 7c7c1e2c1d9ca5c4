"""STAND-IN for HashiCorp Vault: its PKI secrets engine, its token and Kubernetes auth methods, and
the bits of its HTTP API that a platform engineer uses to set up a PKI mount for Istio's
intermediate CAs and that cert-manager's Vault Issuer calls.

Real Vault cannot be built faithfully on this machine, so this process plays its visible part on
these endpoints and no more, with Vault's paths, JSON shapes, status codes and `{"errors": [...]}`
bodies, each checked against the upstream source named beside its code (hashicorp/vault,
hashicorp/vault-plugin-auth-kubernetes, hashicorp/cap):

- `GET sys/health`; `sys/policies/acl/<name>` (lab/vault/policy.py's HCL subset);
  `sys/mounts/<path>` and `sys/mounts/<path>/tune`; `sys/auth/<path>`;
- tokens: a root token (`<lab>/vault/root-token`), `auth/token/create`, `X-Vault-Token` (or
  `Authorization: Bearer`) on every request but the unauthenticated ones, 403 `permission denied`
  without the capability;
- a `pki` mount: `root/generate/internal`, `intermediate/generate/internal`,
  `root/sign-intermediate` (and `issuer/<ref>/sign-intermediate`), `intermediate/set-signed`,
  `ca`, `ca/pem`, `ca_chain`;
- a `kubernetes` auth mount: `config`, `role/<name>`, `login`, which reviews the service account's
  token with the cluster's TokenReview API as Vault does.

The pieces: lab/vault/api.py (parameters, errors and responses as Vault's framework has them),
lab/vault/issuance.py (what the PKI engine decides for a certificate), lab/vault/x509.py (keys,
CSRs and certificates by the openssl CLI), lab/vault/policy.py (ACLs), lab/vault/kubernetes.py
(the Kubernetes auth method); this module keeps the state, routes and authorizes each request,
serves the endpoints, and is the HTTPS server. lab/vault/client.py is the client side.

Not done: seal/unseal and storage backends (the state is one JSON file beside the keys), leases,
renewal and revocation, CRLs, OCSP and AIA URLs, PKI roles and leaf issuance, other engines and
auth methods, namespaces, response wrapping, HCL beyond lab/vault/policy.py's subset. Parameters
Vault knows but the stand-in does not implement are refused by name (400), never ignored.

State lives in `<lab>/vault/` (mode 0700): the serving CA and certificate (`serving/`),
`root-token`, `state.json` (policies, mounts, issuers, token hashes, auth configuration) and each
mount's private keys under `mounts/<uuid>/keys/` (0600). No endpoint returns a private key.

Run by `lab up --vault` as `python -m lab.vault.server --dir DIR --port PORT`. One line per request on
stdout: method, path, status, time; never a token, key or CSR.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import os
import re
import secrets
import shutil
import signal
import ssl
import sys
import threading
import time
import traceback
import urllib.parse
import uuid
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Callable

from ..clusters import pki
from . import kubernetes, x509
from .api import LOG, Fields, Reply, VaultError, denied, envelope, unsupported
from .issuance import (
    CA_COMMON,
    CA_ISSUE,
    KEY_GENERATION,
    NO_AIA,
    NO_AIA_CSR,
    NO_SUBJECT,
    TRUNCATED,
    UNIMPLEMENTED,
    ca_key_usage,
    creation_names,
    signature_digest,
    key_params,
    validity,
)
from .policy import DEFAULT_POLICY, Acl, PolicyError
from .policy import parse as parse_policy

VERSION = "0.0.0+lab.vault-pki-standin"  # not a Vault release: what `sys/health` reports
# vault/expiration.go: maxLeaseTTL = 32 * 24 * time.Hour, defaultLeaseTTL = maxLeaseTTL. A mount
# uses these unless tuned (sys/mounts/<path>/tune).
SYSTEM_TTL = 32 * 24 * 3600


def _pem(cert: x509.Certificate) -> str:
    return cert.pem.strip()  # certutil's CertBundle holds PEM without the final newline


# -- state -------------------------------------------------------------------------------------


def _write_private(path: Path, text: str) -> None:
    """Write text readable by the owner only, atomically."""
    tmp = path.with_suffix(path.suffix + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(text)
    os.replace(tmp, path)


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _id() -> str:
    return str(uuid.uuid4())


@dataclass
class Route:
    handler: Callable[..., Reply]
    methods: tuple[str, ...]
    unauthenticated: bool = False
    sudo: bool = False
    # For paths with an existence check in Vault, whether the object is there: a write asks for
    # `create` where it is not, `update` where it is. None: always `update`.
    exists: Callable[[], bool] | None = None


class Vault:
    """The stand-in's state and endpoints; `handle` serves one request."""

    def __init__(self, dir: Path):
        self.dir = dir
        self.dir.mkdir(parents=True, exist_ok=True)
        self.dir.chmod(0o700)
        self.lock = threading.RLock()
        self.state_path = dir / "state.json"
        if self.state_path.exists():
            self.state = json.loads(self.state_path.read_text())
        else:
            self.state = {
                "cluster_id": _id(),
                "policies": {"default": DEFAULT_POLICY},
                "tokens": {},
                "mounts": {},
                "auth": {},
            }
        token_file = dir / "root-token"
        if not token_file.exists():
            _write_private(token_file, "hvs." + secrets.token_urlsafe(24) + "\n")
        root = token_file.read_text().strip()
        self.state["tokens"].setdefault(
            _hash(root),
            {"policies": ["root"], "expires": None, "accessor": secrets.token_urlsafe(18), "display_name": "root"},
        )
        self._save()

    def _save(self) -> None:
        _write_private(self.state_path, json.dumps(self.state, indent=1) + "\n")

    # -- routing and authorization ---------------------------------------------------------

    def handle(self, method: str, path: str, body: dict, token: str) -> Reply:
        path = path.strip("/")
        method = "POST" if method == "PUT" else method  # Vault treats PUT as POST
        with self.lock:
            route, args = self._route(path)
        caller = None
        if route is None or not route.unauthenticated:
            caller = self._authorize(token, path, method, route)
        if route is None:
            in_auth = path.startswith("auth/") and self._mount_of(path[len("auth/") :], self.state["auth"])
            if in_auth or self._mount_of(path, self.state["mounts"]):
                raise VaultError(404, "1 error occurred:\n\t* unsupported path\n\n")
            raise VaultError(404, f'no handler for route "{path}". route entry not found.')
        if method not in route.methods and not (method == "HEAD" and "GET" in route.methods):
            raise VaultError(405, "1 error occurred:\n\t* unsupported operation\n\n")
        if route.handler == self.login:  # it calls the cluster: not under the lock
            return self.login(*args, body)
        with self.lock:
            if route.handler == self.create_token:
                reply = self.create_token(caller, body)
            else:
                reply = route.handler(method, *args, body)
            if method != "GET":
                self._save()
            return reply

    def _authorize(self, token: str, path: str, method: str, route: Route | None) -> dict:
        """The token's entry, if its policies allow the request; else 403."""
        if not token:
            raise denied()
        with self.lock:
            entry = self.state["tokens"].get(_hash(token))
            if entry is None or (entry["expires"] is not None and entry["expires"] < time.time()):
                # Vault since 1.17 names both (website/content/docs/concepts/tokens.mdx, PR #26687).
                raise VaultError(403, "permission denied", "invalid token")
            policies = [
                parse_policy(self.state["policies"][p]) for p in entry["policies"] if p in self.state["policies"]
            ]
            acl = Acl.of(policies, root="root" in entry["policies"])
            exists = route.exists() if route is not None and route.exists is not None else True
        capability = {"GET": "read", "HEAD": "read", "DELETE": "delete", "LIST": "list"}.get(
            method, "update" if exists else "create"
        )
        if not acl.allows(path, capability, sudo=route is not None and route.sudo):
            raise denied()
        return entry

    @staticmethod
    def _mount_of(path: str, table: dict) -> str | None:
        """The longest mount path (ending in /) that path is under."""
        found = [m for m in table if (path + "/").startswith(m)]
        return max(found, key=len) if found else None

    def _route(self, path: str) -> tuple[Route | None, tuple]:
        policy = re.fullmatch(r"sys/policies/acl/(.+)", path)
        if path == "sys/health":
            return Route(self.health, ("GET",), unauthenticated=True), ()
        if policy:
            name = policy.group(1).lower()
            return Route(self.policy, ("GET", "POST", "DELETE"), exists=lambda: name in self.state["policies"]), (name,)
        tune = re.fullmatch(r"sys/mounts/(.+)/tune", path)
        if tune:
            return Route(self.tune, ("GET", "POST")), (tune.group(1).strip("/") + "/",)
        mount = re.fullmatch(r"sys/mounts/(.+)", path)
        if mount:
            return Route(self.mount, ("POST", "DELETE")), (mount.group(1).strip("/") + "/",)
        if path in ("sys/mounts", "sys/auth"):
            return Route(self.list_mounts, ("GET",)), (path,)
        auth = re.fullmatch(r"sys/auth/(.+)", path)
        if auth:  # enabling an auth method is root-protected (vault/logical_system.go)
            return Route(self.enable_auth, ("POST", "DELETE"), sudo=True), (auth.group(1).strip("/") + "/",)
        if path == "auth/token/create":
            return Route(self.create_token, ("POST",)), ()
        if path.startswith("auth/"):
            mount_path = self._mount_of(path[len("auth/") :], self.state["auth"])
            if mount_path:
                return self._kubernetes_route(mount_path, path[len("auth/") + len(mount_path) :])
            return None, ()
        mount_path = self._mount_of(path, self.state["mounts"])
        if mount_path:
            return self._pki_route(mount_path, path[len(mount_path) :])
        return None, ()

    def _pki_route(self, mount: str, rest: str) -> tuple[Route | None, tuple]:
        if rest in ("ca", "ca/pem", "ca_chain"):
            # the PKI backend's PathsSpecial: unauthenticated (builtin/logical/pki/backend.go)
            return Route(self.fetch_ca, ("GET",), unauthenticated=True), (mount, rest)
        generate = re.fullmatch(r"(root|intermediate)/generate/([^/]+)", rest)
        if generate:
            handler = self.generate_root if generate.group(1) == "root" else self.generate_intermediate
            return Route(handler, ("POST",)), (mount, generate.group(2))
        if rest == "root/sign-intermediate":
            return Route(self.sign_intermediate, ("POST",)), (mount, "default")
        by_issuer = re.fullmatch(r"issuer/([^/]+)/sign-intermediate", rest)
        if by_issuer:
            return Route(self.sign_intermediate, ("POST",)), (mount, by_issuer.group(1))
        if rest == "intermediate/set-signed":
            return Route(self.set_signed, ("POST",)), (mount,)
        return None, ()

    def _kubernetes_route(self, mount: str, rest: str) -> tuple[Route | None, tuple]:
        entry = self.state["auth"][mount]
        if rest == "login":
            return Route(self.login, ("POST",), unauthenticated=True), (mount,)
        if rest == "config":
            return Route(self.kubernetes_config, ("GET", "POST"), exists=lambda: bool(entry["config"])), (mount,)
        role = re.fullmatch(r"role/([^/]+)", rest)
        if role:
            name = role.group(1).lower()
            route = Route(self.kubernetes_role, ("GET", "POST", "DELETE"), exists=lambda: name in entry["roles"])
            return route, (mount, name)
        return None, ()

    # -- sys -------------------------------------------------------------------------------

    def health(self, method: str, body: dict) -> Reply:
        """http/sys_health.go: 200 when initialized, unsealed and active, with this body."""
        health = {
            "initialized": True,
            "sealed": False,
            "standby": False,
            "performance_standby": False,
            "replication_performance_mode": "disabled",
            "replication_dr_mode": "disabled",
            "server_time_utc": int(time.time()),
            "version": VERSION,
            "cluster_name": "vault-cluster-lab",
            "cluster_id": self.state["cluster_id"],
        }
        return Reply(200, json.dumps(health).encode() + b"\n")

    def policy(self, method: str, name: str, body: dict) -> Reply:
        """vault/logical_system.go handlePoliciesSet/Read/Delete for the ACL type."""
        policies = self.state["policies"]
        if method == "GET":
            if name not in policies:
                raise VaultError(404)
            return envelope({"name": name, "policy": policies[name]}, mount_type="system")
        if method == "DELETE":
            if name in ("root", "default"):
                raise VaultError(400, f'cannot delete "{name}" policy')
            policies.pop(name, None)
            return Reply(204)
        f = Fields(body, {"policy": ("string", "")})
        if name == "root":
            raise VaultError(400, 'cannot update "root" policy')
        if not f["policy"]:
            raise VaultError(400, "'policy' parameter not supplied or empty")
        try:
            parse_policy(f["policy"])
        except PolicyError as error:
            raise VaultError(400, f"failed to parse policy: {error}") from None
        policies[name] = f["policy"]
        return envelope(warnings=f.warnings, mount_type="system")

    def mount(self, method: str, path: str, body: dict) -> Reply:
        """vault/logical_system.go handleMount/handleUnmount, for the pki engine only."""
        mounts = self.state["mounts"]
        if method == "DELETE":  # the mount's storage goes with it, its keys too
            gone = mounts.pop(path, None)
            if gone:
                shutil.rmtree(self.dir / "mounts" / gone["uuid"], ignore_errors=True)
            return Reply(204)
        f = Fields(body, {"type": ("string", ""), "description": ("string", ""), "config": ("map", {})})
        if path.split("/")[0] in ("sys", "auth", "cubbyhole", "identity"):
            raise VaultError(400, f"cannot mount {path!r}: reserved path")
        if f["type"] != "pki":
            raise unsupported(f"secrets engine type {f['type']!r} (it serves pki only)")
        if any(path.startswith(m) or m.startswith(path) for m in mounts):
            raise VaultError(400, f"path is already in use at {path}")
        mounts[path] = {
            "type": "pki",
            "uuid": _id(),
            "accessor": f"pki_{secrets.token_hex(4)}",
            "description": f["description"],
            "default_lease_ttl": 0,
            "max_lease_ttl": 0,
            "keys": {},
            "issuers": {},
            "default_issuer": None,
        }
        self._tune(mounts[path], f["config"])
        return envelope(warnings=f.warnings)

    def _tune(self, mount: dict, raw: dict) -> list[str]:
        f = Fields(
            raw,
            {
                "default_lease_ttl": ("duration", None),
                "max_lease_ttl": ("duration", None),
                "description": ("string", None),
            },
        )
        default = mount["default_lease_ttl"] if f["default_lease_ttl"] is None else f["default_lease_ttl"]
        maximum = mount["max_lease_ttl"] if f["max_lease_ttl"] is None else f["max_lease_ttl"]
        # vault/logical_system.go tuneMountTTLs: only TTLs given are compared.
        if default and maximum and default > maximum:
            raise VaultError(
                400, f"backend max lease TTL of {maximum} would be less than backend default lease TTL of {default}"
            )
        if default and not maximum and default > SYSTEM_TTL:
            raise VaultError(
                400, f"new backend default lease TTL of {default} greater than system max lease TTL of {SYSTEM_TTL}"
            )
        mount["default_lease_ttl"], mount["max_lease_ttl"] = default, maximum
        return f.warnings

    def tune(self, method: str, path: str, body: dict) -> Reply:
        """vault/logical_system.go handleTuneRead/handleTuneWrite: the lease TTLs."""
        mount = self.state["mounts"].get(path)
        if mount is None:
            raise VaultError(400, f"cannot tune '{path}': no mount at this path")
        if method == "GET":
            data = {
                "default_lease_ttl": mount["default_lease_ttl"] or SYSTEM_TTL,
                "max_lease_ttl": mount["max_lease_ttl"] or SYSTEM_TTL,
                "description": mount["description"],
                "force_no_cache": False,
            }
            return envelope(data, mount_type="system")
        return envelope(warnings=self._tune(mount, body))

    def list_mounts(self, method: str, which: str, body: dict) -> Reply:
        table = self.state["mounts"] if which == "sys/mounts" else self.state["auth"]
        data = {
            path: {
                "type": entry["type"],
                "accessor": entry["accessor"],
                "uuid": entry["uuid"],
                "description": entry.get("description", ""),
                "config": {
                    "default_lease_ttl": entry.get("default_lease_ttl", 0),
                    "max_lease_ttl": entry.get("max_lease_ttl", 0),
                },
            }
            for path, entry in table.items()
        }
        return envelope(data, mount_type="system")

    def enable_auth(self, method: str, path: str, body: dict) -> Reply:
        """vault/logical_system.go handleEnableAuth, for the kubernetes method only."""
        table = self.state["auth"]
        if method == "DELETE":
            table.pop(path, None)
            return Reply(204)
        f = Fields(body, {"type": ("string", ""), "description": ("string", ""), "config": ("map", {})})
        if path == "token/" or path.startswith("token/"):
            raise VaultError(400, "token credential backend cannot be instantiated")
        if f["type"] != "kubernetes":
            raise unsupported(f"auth method type {f['type']!r} (it serves kubernetes only)")
        if any(path.startswith(m) or m.startswith(path) for m in table):
            raise VaultError(400, f"path is already in use at auth/{path}")
        table[path] = {
            "type": "kubernetes",
            "uuid": _id(),
            "accessor": f"auth_kubernetes_{secrets.token_hex(4)}",
            "description": f["description"],
            "config": None,
            "roles": {},
        }
        return envelope(warnings=f.warnings)

    # -- tokens ----------------------------------------------------------------------------

    def _new_token(
        self, policies: list[str], ttl: int | None, display_name: str, meta: dict | None
    ) -> tuple[str, dict]:
        now = time.time()
        # Expired tokens go (Vault's expiration manager revokes them); cert-manager logs in anew
        # for every certificate it signs, so the list would only grow.
        tokens = self.state["tokens"]
        for key in [k for k, e in tokens.items() if e["expires"] is not None and e["expires"] < now]:
            del tokens[key]
        token = "hvs." + secrets.token_urlsafe(24)
        entry = {
            "policies": policies,
            "expires": None if ttl is None else time.time() + ttl,
            "accessor": secrets.token_urlsafe(18),
            "display_name": display_name,
        }
        self.state["tokens"][_hash(token)] = entry
        auth = {
            "client_token": token,
            "accessor": entry["accessor"],
            "policies": policies,
            "token_policies": policies,
            "metadata": meta or None,
            "lease_duration": ttl or 0,
            "renewable": ttl is not None,
            "entity_id": "",
            "token_type": "service",
            "orphan": False,
            "mfa_requirement": None,
            "num_uses": 0,
        }
        return token, auth

    def create_token(self, caller: dict, body: dict) -> Reply:
        """vault/token_store.go handleCreateCommon: a child of the caller's token. Without policies
        it gets the caller's; otherwise they must be among the caller's (unless root), and
        `default` is added unless no_default_policy."""
        f = Fields(
            body,
            {
                "policies": ("strings", []),
                "ttl": ("duration", 0),
                "display_name": ("string", "token"),
                "no_default_policy": ("bool", False),
                "meta": ("map", {}),
                "renewable": ("bool", True),
                "no_parent": ("bool", False),
                "num_uses": ("int", 0),
                "period": ("duration", 0),
                "explicit_max_ttl": ("duration", 0),
                "type": ("string", "service"),
                "id": ("string", ""),
            },
            unimplemented=("num_uses", "period", "explicit_max_ttl", "id"),
        )
        if f["type"] != "service":
            raise unsupported(f"token type {f['type']!r}")
        parent_root = "root" in caller["policies"]
        requested = sorted({p.lower() for p in f["policies"]})
        if not requested:
            requested = list(caller["policies"])
        elif not parent_root and not set(requested) - {"default"} <= set(caller["policies"]):
            raise VaultError(400, "child policies must be subset of parent")
        if "root" in requested:
            policies = ["root"]
        else:
            policies = sorted(set(requested) | ({"default"} if not f["no_default_policy"] else set()))
        ttl = None if policies == ["root"] and not f["ttl"] else min(f["ttl"] or SYSTEM_TTL, SYSTEM_TTL)
        _, auth = self._new_token(policies, ttl, "token-" + f["display_name"], f["meta"])
        auth["orphan"] = f["no_parent"]
        return envelope(warnings=f.warnings, auth=auth, mount_type="token")

    # -- the PKI engine --------------------------------------------------------------------

    def _mount(self, path: str) -> dict:
        return self.state["mounts"][path]

    def _ttls(self, mount: dict) -> tuple[int, int]:
        return mount["default_lease_ttl"] or SYSTEM_TTL, mount["max_lease_ttl"] or SYSTEM_TTL

    def _key_path(self, mount: dict, key_id: str) -> Path:
        path = self.dir / "mounts" / mount["uuid"] / "keys" / f"{key_id}.pem"
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        return path

    def _new_key(self, mount: dict, key_type: str, bits: int, name: str) -> tuple[str, Path]:
        key_id = _id()
        path = self._key_path(mount, key_id)
        public = x509.new_key(path, key_type, bits)
        spki = base64.b64encode(public.spki).decode()
        mount["keys"][key_id] = {"name": name, "type": key_type, "bits": bits, "spki": spki}
        return key_id, path

    def _import_issuer(self, mount: dict, cert: x509.Certificate, name: str = "") -> tuple[str, bool]:
        """storage.go importIssuer: the same certificate is the existing issuer; a new one gets the
        key with its public key if the mount has it, and becomes the default issuer when there
        is none and it has a key. Its leaf_not_after_behavior is `err`."""
        for issuer_id, issuer in mount["issuers"].items():
            if x509.pem_to_der(issuer["certificate"]) == cert.der:
                return issuer_id, True
        if name and any(issuer["name"] == name for issuer in mount["issuers"].values()):
            raise VaultError(400, f"another issuer is using the requested name: {name}")
        key_id = next((k for k, key in mount["keys"].items() if base64.b64decode(key["spki"]) == cert.key.spki), None)
        issuer_id = _id()
        mount["issuers"][issuer_id] = {
            "name": name,
            "certificate": cert.pem,
            "key_id": key_id,
            "leaf_not_after_behavior": "err",
        }
        if mount["default_issuer"] is None and key_id:
            mount["default_issuer"] = issuer_id
        return issuer_id, False

    def _issuer(self, mount: dict, ref: str) -> tuple[str, dict]:
        issuer_id = mount["default_issuer"] if ref == "default" else ref
        if issuer_id not in mount["issuers"]:
            issuer_id = next((i for i, e in mount["issuers"].items() if e["name"] == ref and ref), None)
        if issuer_id is None:
            raise VaultError(
                400, "could not fetch the CA certificate (was one set?): no default issuer currently configured"
            )
        return issuer_id, mount["issuers"][issuer_id]

    def _chain(self, mount: dict, issuer_id: str) -> list[x509.Certificate]:
        """The issuer and its parents up to a self-issued root, as far as the mount holds them:
        GetFullChain of the CAChain chain_util.go rebuildIssuersChains builds (a parent is an issuer
        whose subject is the child's issuer and whose key id is the child's authority key id). An
        intermediate imported without its root has a chain of itself alone."""
        certs = {i: x509.parse_certificate(e["certificate"]) for i, e in mount["issuers"].items()}
        chain, seen = [certs[issuer_id]], {issuer_id}
        while not chain[-1].self_issued:
            child = chain[-1]
            parent = next(
                (
                    i
                    for i, c in certs.items()
                    if i not in seen
                    and c.subject.der == child.issuer.der
                    and (
                        not child.authority_key_id or not c.subject_key_id or c.subject_key_id == child.authority_key_id
                    )
                ),
                None,
            )
            if parent is None:
                break
            chain.append(certs[parent])
            seen.add(parent)
        return chain

    def generate_root(self, method: str, mount_path: str, exported: str, body: dict) -> Reply:
        """path_root.go pathCAGenerateRoot: a self-signed CA made inside the mount; its key stays."""
        if exported != "internal":
            raise unsupported(f"root/generate/{exported} (only internal: no key leaves the stand-in)")
        mount = self._mount(mount_path)
        schema = {**CA_COMMON, **CA_ISSUE, **KEY_GENERATION, "key_usage": ("strings", ["CertSign", "CRLSign"])}
        f = Fields(body, schema, UNIMPLEMENTED)
        if f["format"] != "pem":
            raise unsupported(f"format {f['format']!r}")
        key_type, bits = key_params(f)
        max_path = f["max_path_length"]
        if max_path < -1:
            raise VaultError(
                400,
                f"requested max_path_length {max_path} is invalid: must be a non-negative integer or -1 for no constraint",
            )
        digest = signature_digest(x509.PublicKey(b"", key_type, bits), f["signature_bits"])
        names = creation_names(f)
        not_before, not_after, ttl_warnings = validity(f, self._ttls(mount), None, "err")
        usage, bad_usages = ca_key_usage(f["key_usage"])
        key_id, key_path = self._new_key(mount, key_type, bits, f["key_name"])
        csr = x509.make_csr(key_path, names.subject, [])
        extensions = [x509.key_usage(usage), x509.basic_constraints_ca(max_path), names.alt_names()]
        cert = x509.sign(
            self.dir / "work", csr, signer_key=key_path, signer_cert_pem=None, subject=names.subject,
            extensions=[e for e in extensions if e], not_before=not_before, not_after=not_after, digest=digest,
        )  # fmt: skip
        issuer_id, _ = self._import_issuer(mount, cert, f["issuer_name"])
        data = {
            "expiration": int(cert.not_after.timestamp()),
            "serial_number": cert.serial_hex,
            "certificate": _pem(cert),
            "issuing_ca": _pem(cert),
            "issuer_id": issuer_id,
            "issuer_name": f["issuer_name"],
            "key_id": key_id,
            "key_name": f["key_name"],
        }
        warnings = [f"Invalid key usage will be ignored: {'; '.join(bad_usages)}"] if bad_usages else []
        warnings += [NO_SUBJECT] if not names.subject else []
        warnings.append(NO_AIA)
        if cert.basic_constraints[1] == 0:
            warnings.append(
                "Max path length of the generated certificate is zero. This certificate cannot be used to issue intermediate CA certificates."
            )
        return envelope(data, f.warnings + warnings + ttl_warnings, mount_type="pki")

    def generate_intermediate(self, method: str, mount_path: str, exported: str, body: dict) -> Reply:
        """path_intermediate.go pathGenerateIntermediate: a key kept in the mount and a CSR for it
        (cert_util.go generateIntermediateCSR: key usage only if asked, basic constraints only
        with add_basic_constraints)."""
        if exported != "internal":
            raise unsupported(f"intermediate/generate/{exported} (only internal: no key leaves the stand-in)")
        mount = self._mount(mount_path)
        schema = {
            **CA_COMMON,
            **KEY_GENERATION,
            "add_basic_constraints": ("bool", False),
            "key_usage": ("strings", []),
        }
        f = Fields(body, schema, UNIMPLEMENTED)
        if f["format"] != "pem":
            raise unsupported(f"format {f['format']!r}")
        key_type, bits = key_params(f)
        names = creation_names(f)
        key_id, key_path = self._new_key(mount, key_type, bits, f["key_name"])
        alt_names = x509.subject_alt_names(names.dns, names.emails, names.ips, names.uris, critical=False)
        extensions = [alt_names] if alt_names else []
        if f["key_usage"]:
            extensions.append(x509.key_usage(sum({x509.KEY_USAGES.get(u.strip().lower(), 0) for u in f["key_usage"]})))
        if f["add_basic_constraints"]:
            extensions.append(x509.basic_constraints_ca(-1))
        csr = x509.make_csr(key_path, names.subject, extensions)
        return envelope({"csr": csr.strip(), "key_id": key_id}, f.warnings + [NO_AIA_CSR], mount_type="pki")

    def sign_intermediate(self, method: str, mount_path: str, issuer_ref: str, body: dict) -> Reply:
        """path_root.go pathIssuerSignIntermediate (the call cert-manager's Vault Issuer makes for
        an isCA Certificate), with issuing/sign_cert.go SignCert and certutil signCertificate."""
        mount = self._mount(mount_path)
        schema = {
            **CA_COMMON,
            **CA_ISSUE,
            "csr": ("string", ""),
            "use_csr_values": ("bool", False),
            "signature_bits": ("int", 0),
            "use_pss": ("bool", False),
            "skid": ("string", ""),
            "key_usage": ("strings", ["CertSign", "CRLSign"]),
            "enforce_leaf_not_after_behavior": ("bool", False),
            "issuer_ref": ("string", issuer_ref),
        }
        f = Fields(body, schema, UNIMPLEMENTED + ("skid",))
        if f["format"] != "pem":
            raise unsupported(f"format {f['format']!r}")
        issuer_id, issuer = self._issuer(mount, f["issuer_ref"])
        if not issuer["key_id"]:
            raise VaultError(
                400, "could not fetch the CA certificate (was one set?): issuer has no key associated with it"
            )
        signer = x509.parse_certificate(issuer["certificate"])
        signer_key = mount["keys"][issuer["key_id"]]
        csr = self._csr(f["csr"])

        # Since Vault 1.17 an intermediate is truncated to its issuer's notAfter unless asked to
        # enforce the issuer's own leaf_not_after_behavior (path_root.go).
        behavior, warn_truncate = issuer["leaf_not_after_behavior"], False
        if not f["enforce_leaf_not_after_behavior"] and behavior != "always_enforce_err":
            behavior, warn_truncate = "truncate", True

        _, signer_path_len = signer.basic_constraints
        if f.given("max_path_length"):
            max_path = f["max_path_length"]
            if max_path < -1:
                raise VaultError(
                    400,
                    f"requested max_path_length {max_path} is invalid: must be a non-negative integer or -1 for no constraint",
                )
            if signer_path_len >= 0 and (max_path < 0 or max_path >= signer_path_len):
                raise VaultError(
                    400,
                    f"requested max_path_length {max_path} is not allowed: the signing CA has a pathLenConstraint of "
                    f"{signer_path_len}, so the intermediate's pathLenConstraint must be a non-negative value less "
                    f"than {signer_path_len}",
                )
        else:  # issue_common.go: derived from the signer's
            max_path = -1 if signer_path_len < 0 else max(signer_path_len - 1, 0)
        if signer_path_len == 0:
            raise VaultError(
                400, "signing certificate has a max path length of zero, and cannot issue further CA certificates"
            )

        names = creation_names(f, csr, cn_from_csr=not f["common_name"])
        not_before, not_after, ttl_warnings = validity(f, self._ttls(mount), signer, behavior)
        usage, bad_usages = ca_key_usage(f["key_usage"])
        extensions = [x509.key_usage(usage), x509.basic_constraints_ca(max_path)]
        subject: list[tuple[str, str]] | None = names.subject
        if f["use_csr_values"]:
            # certutil signCertificate with UseCSRValues: the CSR's subject, and its extensions
            # copied over Vault's own (Go's ExtraExtensions win), but for basic constraints.
            subject = None
            copied = [e for e in csr.extensions if e.oid != x509.OID_BASIC_CONSTRAINTS]
            extensions = [e for e in extensions if e.oid not in {c.oid for c in copied}] + copied
        else:
            extensions.append(names.alt_names())
        cert = x509.sign(
            self.dir / "work", csr.pem, signer_key=self._key_path(mount, issuer["key_id"]),
            signer_cert_pem=signer.pem, subject=subject, extensions=[e for e in extensions if e],
            not_before=not_before, not_after=not_after,
            digest=signature_digest(x509.PublicKey(b"", signer_key["type"], signer_key["bits"]), f["signature_bits"]),
        )  # fmt: skip

        # path_root.go signIntermediateResponse: ca_chain is the new certificate followed by the
        # issuer's full chain, as far as this mount knows it.
        chain = self._chain(mount, issuer_id)
        data = {
            "expiration": int(cert.not_after.timestamp()),
            "serial_number": cert.serial_hex,
            "certificate": _pem(cert),
            "issuing_ca": _pem(signer),
            "ca_chain": [_pem(cert)] + [_pem(c) for c in chain],
        }
        warnings = []
        if cert.not_after > signer.not_after:
            warnings.append(
                "The expiration time for the signed certificate is after the CA's expiration time. If the new certificate is not treated as a root, validation paths with the certificate past the issuing CA's expiration time will fail."
            )
        warnings += [NO_SUBJECT] if not cert.subject.attributes else []
        warnings.append(NO_AIA)
        if cert.basic_constraints[1] == 0:
            warnings.append(
                "Max path length of the signed certificate is zero. This CA certificate cannot be used to issue intermediate CA certificates."
            )
        warnings += ttl_warnings
        if warn_truncate and cert.not_after == signer.not_after:
            warnings.append(TRUNCATED)
        if cert.basic_constraints[1] == 0:
            warnings.append(
                "Max path length of the generated certificate is zero. This CA certificate cannot be used to issue further intermediate CA certificates."
            )
        if bad_usages and f.given("key_usage"):
            warnings.append(f"Invalid key usage: {'; '.join(bad_usages)}")
        return envelope(data, f.warnings + warnings, mount_type="pki")

    @staticmethod
    def _csr(text: str) -> x509.CertRequest:
        """cert_util.go GetCSR and sign_cert.go SignCert's checks of the CSR's key."""
        if not text:
            raise VaultError(400, '"csr" is empty')
        blocks = x509.pem_blocks(text, "CERTIFICATE REQUEST")
        if not blocks:
            raise VaultError(400, "csr contains no data")
        try:
            csr = x509.parse_csr(blocks[0])
        except (IndexError, ValueError) as error:
            raise VaultError(400, f"certificate request could not be parsed: {error}") from None
        if not x509.csr_signature_ok(blocks[0]):
            raise VaultError(400, "request signature invalid")
        if csr.key.type == "rsa" and csr.key.bits < 2048:
            raise VaultError(400, "RSA keys < 2048 bits are unsafe and not supported")
        if csr.key.type == "ec" and csr.key.bits < 224:
            raise VaultError(400, f"role requires a minimum of a 224-bit key, but CSR's key is {csr.key.bits} bits")
        if csr.key.type not in ("rsa", "ec", "ed25519"):
            raise VaultError(400, f"Unknown key type in CSR: {csr.key.type}")
        return csr

    def set_signed(self, method: str, mount_path: str, body: dict) -> Reply:
        """path_manage_issuers.go pathImportIssuers (intermediate/set-signed): every certificate in
        the PEM becomes an issuer; the one whose key the mount generated gets that key. Import the
        intermediate alone and the mount knows no root: its chains end at the intermediate."""
        mount = self._mount(mount_path)
        f = Fields(body, {"certificate": ("string", "")})
        text = f["certificate"]
        if len(text.strip()) < 75:
            raise VaultError(
                400,
                "provided data for import was too short; perhaps a path was passed to the API rather than the contents of a PEM file",
            )
        blocks = re.findall(r"-----BEGIN ([A-Z0-9 ]+)-----.*?-----END \1-----", text, re.S)
        if any(
            kind not in ("CERTIFICATE", "X509 CERTIFICATE", "CRL", "X509 CRL", "EC PARAMS", "EC PARAMETERS")
            for kind in blocks
        ):
            raise VaultError(
                400, "private keys found in the PEM bundle but not allowed by the path; use /issuers/import/bundle"
            )
        imported, mapping = [], {}
        for index, pem in enumerate(x509.pem_blocks(text)):
            cert = x509.parse_certificate(pem)
            if not cert.basic_constraints[0]:
                raise VaultError(400, f"Error parsing issuer {index}: Refusing to import non-CA certificate\n{pem}")
            issuer_id, existing = self._import_issuer(mount, cert)
            mapping[issuer_id] = mount["issuers"][issuer_id]["key_id"] or ""
            if not existing:
                imported.append(issuer_id)
        warnings = []
        default = mount["default_issuer"]
        if default in mapping and not mapping[default]:
            warnings.append(
                "The default issuer has no key associated with it. Some operations like issuing certificates and signing CRLs will be unavailable with the requested default issuer until a key is imported or the default issuer is changed."
            )
        warnings.append(NO_AIA)
        data = {"mapping": mapping, "imported_keys": None, "imported_issuers": imported or None}
        return envelope(data, f.warnings + warnings, mount_type="pki")

    def fetch_ca(self, method: str, mount_path: str, which: str, body: dict) -> Reply:
        """path_fetch.go pathFetchRead: the default issuer as DER (`ca`) or PEM (`ca/pem`), or its
        full chain as PEM (`ca_chain`); 204 while the mount has none."""
        mount = self._mount(mount_path)
        if mount["default_issuer"] is None:
            return Reply(204)
        chain = self._chain(mount, mount["default_issuer"])
        if which == "ca":
            return Reply(200, chain[0].der, "application/pkix-cert")
        if which == "ca/pem":
            return Reply(200, _pem(chain[0]).encode(), "application/pem-certificate-chain")
        return Reply(200, "\n".join(_pem(c) for c in chain).encode(), "application/pkix-cert")

    # -- the kubernetes auth method --------------------------------------------------------

    def kubernetes_config(self, method: str, mount_path: str, body: dict) -> Reply:
        entry = self.state["auth"][mount_path]
        if method == "GET":
            return envelope(
                kubernetes.config_view(entry["config"]) if entry["config"] else None, mount_type="kubernetes"
            )
        entry["config"], warnings = kubernetes.write_config(body)
        return envelope(warnings=warnings)

    def kubernetes_role(self, method: str, mount_path: str, name: str, body: dict) -> Reply:
        roles = self.state["auth"][mount_path]["roles"]
        if method == "GET":
            if name not in roles:
                raise VaultError(404)
            return envelope(roles[name], mount_type="kubernetes")
        if method == "DELETE":
            roles.pop(name, None)
            return Reply(204)
        roles[name], warnings = kubernetes.write_role(roles.get(name), name, body)
        return envelope(warnings=warnings)

    def login(self, mount_path: str, body: dict) -> Reply:
        """A kubernetes auth login (lab/vault/kubernetes.py), outside the lock while the cluster
        reviews the JWT; a token with the role's policies if it passes."""
        f = Fields(body, {"role": ("string", ""), "jwt": ("string", "")})
        for field in ("role", "jwt"):
            if not f[field]:
                raise VaultError(400, f"missing {field}")
        with self.lock:
            entry = self.state["auth"][mount_path]
            role, config = entry["roles"].get(f["role"].lower()), entry["config"]
        if role is None:
            raise VaultError(400, f'invalid role name "{f["role"]}"')
        if not config:
            raise VaultError(500, "could not load backend configuration")
        account = kubernetes.authenticate(role, config, f["jwt"])
        with self.lock:
            policies = sorted(
                set(role["token_policies"]) | ({"default"} if not role["token_no_default_policy"] else set())
            )
            ttl = min(role["token_ttl"] or SYSTEM_TTL, role["token_max_ttl"] or SYSTEM_TTL)
            meta = {
                "role": f["role"],
                "service_account_name": account["name"],
                "service_account_namespace": account["namespace"],
                "service_account_secret_name": "",
                "service_account_uid": account["uid"],
            }
            _, auth = self._new_token(policies, ttl, f"{entry['type']}-{account['namespace']}-{account['name']}", meta)
            auth.update(entity_id=_id(), orphan=True)
            self._save()
        return envelope(auth=auth, mount_type="kubernetes")


# -- HTTP --------------------------------------------------------------------------------------


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as Go's client expects
    server_version = "vault-pki-standin"
    timeout = 60

    def _serve(self) -> None:
        started = time.monotonic()
        url = urllib.parse.urlsplit(self.path)
        raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        token = self.headers.get("X-Vault-Token") or ""
        if not token and (self.headers.get("Authorization") or "").startswith("Bearer "):
            token = self.headers["Authorization"][len("Bearer ") :]
        try:
            if not url.path.startswith("/v1/"):
                raise VaultError(404)
            if self.command in ("GET", "HEAD", "DELETE", "LIST"):
                body = {k: v[-1] for k, v in urllib.parse.parse_qs(url.query).items()}
            else:
                try:
                    body = json.loads(raw) if raw.strip() else {}
                except ValueError as error:
                    raise VaultError(400, f"failed to parse JSON input: {error}") from None
                if not isinstance(body, dict):
                    raise VaultError(400, "failed to parse JSON input: not an object")
            reply = self.server.vault.handle(self.command, url.path[len("/v1/") :], body, token)  # type: ignore[attr-defined]
        except VaultError as error:
            reply = Reply(error.status, json.dumps({"errors": error.errors}).encode() + b"\n")
        except Exception as error:  # noqa: BLE001 - a 500 with the error, as Vault answers
            traceback.print_exc()
            reply = Reply(500, json.dumps({"errors": [f"1 error occurred:\n\t* {error}\n\n"]}).encode() + b"\n")
        self.send_response(reply.status)
        self.send_header("Cache-Control", "no-store")
        if reply.status != 204:
            self.send_header("Content-Type", reply.content_type)
            self.send_header("Content-Length", str(len(reply.body)))
        self.end_headers()
        if self.command != "HEAD" and reply.status != 204:
            self.wfile.write(reply.body)
        path = url.path
        if path.startswith("/v1/auth/token/") and path != "/v1/auth/token/create":
            path = "/v1/auth/token/..."  # paths there may hold a token or accessor
        elapsed = (time.monotonic() - started) * 1000
        print(f"{LOG} {self.command} {path} {reply.status} ({elapsed:.0f} ms)", flush=True)

    do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = do_LIST = _serve

    def log_request(self, code: Any = "-", size: Any = "-") -> None:
        pass  # _serve logs, without the query string

    def log_error(self, format: str, *args: Any) -> None:
        print(f"{LOG} {format % args}", flush=True)


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address: tuple[str, int], vault: Vault, context: ssl.SSLContext):
        super().__init__(address, _Handler)
        self.vault, self.context = vault, context

    def finish_request(self, request, client_address) -> None:  # type: ignore[override]
        # The TLS handshake in the request's own thread, not in the accepting one.
        request.settimeout(30)
        try:
            tls = self.context.wrap_socket(request, server_side=True)
        except (ssl.SSLError, OSError) as error:
            print(f"{LOG} TLS handshake with {client_address[0]} failed: {error}", flush=True)
            return
        try:
            super().finish_request(tls, client_address)
        finally:
            tls.close()

    def handle_error(self, request, client_address) -> None:
        print(f"{LOG} connection from {client_address[0]}: {sys.exc_info()[1]!r}", flush=True)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m lab.vault.server", description=__doc__.split("\n\n")[0])
    parser.add_argument("--dir", type=Path, required=True, help="the lab's state dir (state goes to DIR/vault)")
    parser.add_argument("--port", type=int, default=0, help="port on 127.0.0.1 (default: any free one)")
    args = parser.parse_args(argv)
    state = args.dir.resolve() / "vault"
    vault = Vault(state)
    serving = pki.create_serving(state / "serving", "vault-pki-standin", "IP:127.0.0.1,DNS:localhost")
    for key in (serving.ca_key, serving.key):
        key.chmod(0o600)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(str(serving.cert), str(serving.key))
    server = _Server(("127.0.0.1", args.port), vault, context)
    address = f"https://127.0.0.1:{server.server_address[1]}"
    (state / "address").write_text(address + "\n")
    signal.signal(signal.SIGTERM, lambda *_: threading.Thread(target=server.shutdown).start())
    print(f"{LOG} listening on {address} (state in {state})", flush=True)
    try:
        server.serve_forever(poll_interval=0.2)
    finally:
        server.server_close()
        print(f"{LOG} stopped", flush=True)


if __name__ == "__main__":
    main()
