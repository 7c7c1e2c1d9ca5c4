"""A client of the lab's Vault stand-in (lab/vault/server.py), and the two set-ups a mesh needs on it.

`VaultClient` calls the HTTP API as `vault write` and `vault read` do (JSON in, Vault's envelope
out, `{"errors": [...]}` raised as `VaultError`). `Lab.vault` hands out a `VaultHandle`: the
stand-in's address, the PEM of the CA its serving certificate is from, the root token, and:

- `setup_mesh_pki(mount="pki")`: a pki mount with a root CA made inside it (the key never leaves
  Vault), its max lease TTL tuned up from Vault's 32 days, and a token whose only policy allows
  `update` on `<mount>/root/sign-intermediate`: what a cert-manager Vault Issuer with
  `auth.tokenSecretRef` needs to sign each cluster's intermediate;
- `setup_kubernetes_auth(cluster, path, role, sa_name, namespace, policies)`: on that lab
  cluster a token-reviewer ServiceAccount bound to `system:auth-delegator` and a token for it
  from the TokenRequest API, then a kubernetes auth mount at `auth/<path>` configured with them
  and a role bound to the service account `namespace/sa_name`: what an Issuer with
  `auth.kubernetes` logs in with.
"""

from __future__ import annotations

import json
import ssl
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from typing import Any

from ..clusters.kubeapi import KubeClient

REVIEWER = ("kube-system", "vault-token-reviewer")
REVIEWER_TOKEN_SECONDS = 7 * 24 * 3600  # outlives any lab; a real cluster would rotate it


class VaultError(Exception):
    def __init__(self, status: int, method: str, path: str, errors: list[str]):
        super().__init__(f"{method} /v1/{path}: HTTP {status}: {'; '.join(errors) or '(no errors)'}")
        self.status, self.errors = status, errors


@dataclass
class VaultClient:
    address: str
    ca_bundle: str  # PEM of the CA the server's certificate is from
    token: str = ""
    timeout: float = 30.0

    def request(self, method: str, path: str, data: dict | None = None) -> Any:
        """The decoded JSON answer (None for 204), or the text of a non-JSON one (ca/pem)."""
        body = None if data is None else json.dumps(data).encode()
        req = urllib.request.Request(f"{self.address}/v1/{path.lstrip('/')}", data=body, method=method)
        if self.token:
            req.add_header("X-Vault-Token", self.token)
        if body is not None:
            req.add_header("Content-Type", "application/json")
        context = ssl.create_default_context(cadata=self.ca_bundle)
        try:
            with urllib.request.urlopen(req, context=context, timeout=self.timeout) as answer:
                raw, kind = answer.read(), answer.headers.get("Content-Type", "")
        except urllib.error.HTTPError as error:
            text = error.read().decode(errors="replace")
            try:
                errors = json.loads(text).get("errors") or []
            except ValueError:
                errors = [text]
            raise VaultError(error.code, method, path, errors) from None
        if not raw:
            return None
        return json.loads(raw) if kind.startswith("application/json") else raw.decode()

    def write(self, path: str, **data: Any) -> Any:
        return self.request("POST", path, data)

    def read(self, path: str) -> Any:
        return self.request("GET", path)

    def with_token(self, token: str) -> "VaultClient":
        return VaultClient(self.address, self.ca_bundle, token, self.timeout)


@dataclass(frozen=True)
class MeshPKI:
    mount: str
    root_certificate: str  # PEM
    policy: str  # allows update on <mount>/root/sign-intermediate, nothing else
    token: str  # carries that policy (and Vault's `default`)


def sign_intermediate_policy(mount: str) -> str:
    return f'path "{mount}/root/sign-intermediate" {{\n  capabilities = ["update"]\n}}\n'


def setup_mesh_pki(
    vault: VaultClient,
    mount: str = "pki",
    common_name: str = "mesh root",
    ttl: str = "87600h",
    key_type: str = "ec",
    key_bits: int = 0,
) -> MeshPKI:
    """A pki mount holding a root CA of `ttl` (the mount's max lease TTL tuned to it), a policy
    allowing only sign-intermediate on it, and a token with that policy. `vault` is root's."""
    vault.write(f"sys/mounts/{mount}", type="pki")
    vault.write(f"sys/mounts/{mount}/tune", max_lease_ttl=ttl)
    root = vault.write(
        f"{mount}/root/generate/internal", common_name=common_name, ttl=ttl, key_type=key_type, key_bits=key_bits
    )
    policy = f"{mount.replace('/', '-')}-sign-intermediate"
    vault.write(f"sys/policies/acl/{policy}", policy=sign_intermediate_policy(mount))
    token = vault.write("auth/token/create", policies=[policy], display_name=policy)["auth"]["client_token"]
    return MeshPKI(mount, root["data"]["certificate"], policy, token)


def setup_kubernetes_auth(
    vault: VaultClient,
    kube: KubeClient,
    kubernetes_ca_cert: str,
    path: str,
    role: str,
    sa_name: str,
    namespace: str,
    policies: list[str],
    audience: str = "",
) -> None:
    """On the cluster `kube` talks to (as admin): the token reviewer's ServiceAccount, its
    binding to system:auth-delegator (so it may create TokenReviews) and a token for it from the
    TokenRequest API. In Vault: a kubernetes auth mount at auth/<path> (unless there), its config
    (the cluster's address and CA, the reviewer's token) and `role`, bound to the service account
    `namespace/sa_name`, giving `policies`, checking `audience` when one is given."""
    ns, name = REVIEWER
    account = {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": name, "namespace": ns}}
    kube.apply(f"/api/v1/namespaces/{ns}/serviceaccounts/{name}", account, "lab-vault")
    binding = {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "ClusterRoleBinding",
        "metadata": {"name": name},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "system:auth-delegator"},
        "subjects": [{"kind": "ServiceAccount", "name": name, "namespace": ns}],
    }
    kube.apply(f"/apis/rbac.authorization.k8s.io/v1/clusterrolebindings/{name}", binding, "lab-vault")
    request = {
        "apiVersion": "authentication.k8s.io/v1",
        "kind": "TokenRequest",
        "spec": {"expirationSeconds": REVIEWER_TOKEN_SECONDS},
    }
    token = kube.request("POST", f"/api/v1/namespaces/{ns}/serviceaccounts/{name}/token", request)["status"]["token"]
    if f"{path}/" not in (vault.read("sys/auth")["data"] or {}):
        vault.write(f"sys/auth/{path}", type="kubernetes")
    vault.write(
        f"auth/{path}/config",
        kubernetes_host=kube.server,
        kubernetes_ca_cert=kubernetes_ca_cert,
        token_reviewer_jwt=token,
    )
    vault.write(
        f"auth/{path}/role/{role}",
        bound_service_account_names=[sa_name],
        bound_service_account_namespaces=[namespace],
        token_policies=policies,
        **({"audience": audience} if audience else {}),
    )


@dataclass(frozen=True)
class VaultHandle:
    """The lab's Vault stand-in, as `Lab.vault` hands it out."""

    address: str  # https://127.0.0.1:<port>
    ca_bundle: str  # PEM of its serving CA: an Issuer's spec.vault.caBundle
    root_token: str
    pid: int | None
    log: str
    # cluster name -> (admin client, PEM of the cluster's CA), for setup_kubernetes_auth
    clusters: dict[str, tuple[KubeClient, str]] = field(default_factory=dict, repr=False)

    def client(self, token: str | None = None) -> VaultClient:
        """A client with `token`, root's by default."""
        return VaultClient(self.address, self.ca_bundle, self.root_token if token is None else token)

    def setup_mesh_pki(self, mount: str = "pki", **options: Any) -> MeshPKI:
        return setup_mesh_pki(self.client(), mount, **options)

    def setup_kubernetes_auth(
        self,
        cluster: str,
        path: str,
        role: str,
        sa_name: str,
        namespace: str,
        policies: list[str],
        audience: str = "",
    ) -> None:
        kube, ca = self.clusters[cluster]
        setup_kubernetes_auth(self.client(), kube, ca, path, role, sa_name, namespace, policies, audience)
