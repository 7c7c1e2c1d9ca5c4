"""The Kubernetes auth method of the lab's Vault stand-in (lab/vault/server.py), as
hashicorp/vault-plugin-auth-kubernetes has it: a mount's config (path_config.go), its roles
(path_role.go), and what a login checks (path_login.go, token_review.go): the JWT's claims against
the role (audience, service account name and namespace; without `pem_keys` its signature is not
checked, as in Vault), then the cluster's own verdict from a TokenReview, which must name the same
service account. The server turns a login that passes into a token."""

from __future__ import annotations

import base64
import json
import re
import ssl
import time
import urllib.error
import urllib.request

from . import x509
from .api import LOG, Fields, VaultError, denied

CONFIG = {
    "kubernetes_host": ("string", ""),
    "kubernetes_ca_cert": ("string", ""),
    "token_reviewer_jwt": ("string", ""),
    "pem_keys": ("strings", []),
    "issuer": ("string", ""),
    "disable_iss_validation": ("bool", True),
    "disable_local_ca_jwt": ("bool", False),
    "use_annotations_as_alias_metadata": ("bool", False),
}
ROLE = {
    "bound_service_account_names": ("strings", []),
    "bound_service_account_namespaces": ("strings", []),
    "bound_service_account_namespace_selector": ("string", ""),
    "audience": ("string", ""),
    "alias_name_source": ("string", "serviceaccount_uid"),
    "token_policies": ("strings", []),
    "policies": ("strings", []),
    "token_ttl": ("duration", 0),
    "ttl": ("duration", 0),
    "token_max_ttl": ("duration", 0),
    "token_no_default_policy": ("bool", False),
    "token_bound_cidrs": ("strings", []),
    "token_num_uses": ("int", 0),
    "token_period": ("duration", 0),
}


def write_config(body: dict) -> tuple[dict, list[str]]:
    """path_config.go pathConfigWrite: the mount's configuration, and warnings."""
    f = Fields(body, CONFIG, unimplemented=("pem_keys", "use_annotations_as_alias_metadata"))
    if not f["kubernetes_host"]:
        raise VaultError(400, "no host provided")
    if f["kubernetes_ca_cert"] and not x509.pem_blocks(f["kubernetes_ca_cert"]):
        raise VaultError(400, "The provided CA PEM data contains no valid certificates")
    kept = (
        "kubernetes_host",
        "kubernetes_ca_cert",
        "token_reviewer_jwt",
        "issuer",
        "disable_iss_validation",
        "disable_local_ca_jwt",
    )
    return {**{name: f[name] for name in kept}, "pem_keys": []}, f.warnings


def config_view(config: dict) -> dict:
    """What reading the config shows: the reviewer's JWT only as set or not."""
    data = {k: v for k, v in config.items() if k != "token_reviewer_jwt"}
    return {**data, "token_reviewer_jwt_set": bool(config.get("token_reviewer_jwt"))}


def write_role(existing: dict | None, name: str, body: dict) -> tuple[dict, list[str]]:
    """path_role.go pathRoleCreateUpdate: the role after this write (fields not given are kept),
    and warnings."""
    f = Fields(
        body,
        ROLE,
        unimplemented=(
            "bound_service_account_namespace_selector",
            "token_bound_cidrs",
            "token_num_uses",
            "token_period",
        ),
    )
    role = dict(existing or {})
    for field in (
        "bound_service_account_names",
        "bound_service_account_namespaces",
        "audience",
        "alias_name_source",
        "token_max_ttl",
        "token_no_default_policy",
    ):
        if f.given(field) or field not in role:
            role[field] = f[field]
    # tokenutil.UpgradeValue: the old names `policies` and `ttl` stand for token_*.
    for new, old in (("token_policies", "policies"), ("token_ttl", "ttl")):
        if f.given(new) or f.given(old) or new not in role:
            role[new] = f[new] if f.given(new) or not f.given(old) else f[old]
    names, namespaces = role["bound_service_account_names"], role["bound_service_account_namespaces"]
    if not names:
        raise VaultError(400, '"bound_service_account_names" can not be empty')
    if len(names) > 1 and "*" in names or len(namespaces) > 1 and "*" in namespaces:
        raise VaultError(400, 'can not mix "*" with values')
    if not namespaces:
        raise VaultError(
            400,
            '"bound_service_account_namespaces" can not be empty if "bound_service_account_namespace_selector" is not set',
        )
    if role["token_max_ttl"] and role["token_ttl"] > role["token_max_ttl"]:
        raise VaultError(400, "token ttl should not be greater than token max ttl")
    warnings = list(f.warnings)
    if not role["audience"].strip():
        warnings.append(
            f"Role {name} does not have an audience configured. While audiences are not required, consider specifying one if your use case would benefit from additional JWT claim verification."
        )
    return role, warnings


def authenticate(role: dict, config: dict, jwt: str) -> dict:
    """path_login.go pathLogin for a known role: the service account (name, namespace, uid) the
    JWT stands for, once its claims fit the role and the cluster's TokenReview confirms it;
    otherwise a 403, with the reason for claims that do not fit and a bare `permission denied`
    when the review does not confirm (the reason goes to the stand-in's log)."""
    claims = _jwt_claims(jwt)
    _check_claims(claims, role, config)
    account = _service_account(claims)
    want = [role["audience"]] if role["audience"] else _audiences(claims)
    try:
        _token_review(config, jwt, want, account)
    except (OSError, ValueError, urllib.error.URLError) as error:
        print(f"{LOG} kubernetes login refused: {error}", flush=True)
        raise denied() from None
    return account


def _jwt_claims(jwt: str) -> dict:
    try:
        payload = jwt.split(".")[1]
        claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    except (IndexError, ValueError):
        raise denied() from None  # "error verifying token signature" maps to permission denied
    if not isinstance(claims, dict):
        raise denied()
    return claims


def _audiences(claims: dict) -> list[str]:
    aud = claims.get("aud") or []
    return [aud] if isinstance(aud, str) else list(aud)


def _service_account(claims: dict) -> dict:
    """path_login.go serviceAccount: a projected token's `kubernetes.io` claims, else the legacy
    secret token's flat ones."""
    projected = claims.get("kubernetes.io")
    if isinstance(projected, dict):
        account = projected.get("serviceaccount") or {}
        return {
            "name": account.get("name", ""),
            "uid": account.get("uid", ""),
            "namespace": projected.get("namespace", ""),
        }
    return {
        "name": claims.get("kubernetes.io/serviceaccount/service-account.name", ""),
        "uid": claims.get("kubernetes.io/serviceaccount/service-account.uid", ""),
        "namespace": claims.get("kubernetes.io/serviceaccount/namespace", ""),
    }


def _glob(patterns: list[str], value: str) -> bool:
    """strutil.StrListContainsGlob: `*` matches any run of characters."""
    return any(re.fullmatch(".*".join(map(re.escape, p.split("*"))), value) for p in patterns)


def _check_claims(claims: dict, role: dict, config: dict) -> None:
    """hashicorp/cap jwt.go validateAll (issuer, audience, times with a minute's leeway) and
    path_login.go's name and namespace checks: each failure a 403 with the reason."""
    if not config["disable_iss_validation"] and config["issuer"] and claims.get("iss") != config["issuer"]:
        raise VaultError(403, "invalid issuer (iss) claim")
    if role["audience"] and role["audience"] not in _audiences(claims):
        raise VaultError(403, "invalid audience (aud) claim: audience claim does not match any expected audience")
    now, leeway = time.time(), 60
    if claims.get("nbf") and now + leeway < claims["nbf"]:
        raise VaultError(403, "invalid not before (nbf) claim: token not yet valid")
    if claims.get("exp") and now - leeway > claims["exp"]:
        raise VaultError(403, "invalid expiration time (exp) claim: token is expired")
    account = _service_account(claims)
    names, namespaces = role["bound_service_account_names"], role["bound_service_account_namespaces"]
    if names != ["*"] and not _glob(names, account["name"]):
        raise VaultError(403, "service account name not authorized")
    if not (namespaces and (namespaces[0] == "*" or _glob(namespaces, account["namespace"]))):
        raise VaultError(403, "namespace not authorized")


def _token_review(config: dict, jwt: str, audiences: list[str], account: dict) -> None:
    """token_review.go Review: POST a TokenReview to the cluster, bearing the reviewer's JWT (or
    the login JWT itself when none is configured); the answer must be authenticated, for one of
    the audiences, and name the JWT's service account and uid. Raises ValueError saying why not."""
    review = {
        "apiVersion": "authentication.k8s.io/v1",
        "kind": "TokenReview",
        "spec": {"token": jwt, "audiences": audiences},
    }
    request = urllib.request.Request(
        config["kubernetes_host"].rstrip("/") + "/apis/authentication.k8s.io/v1/tokenreviews",
        data=json.dumps(review).encode(),
        method="POST",
        headers={
            "Authorization": f"Bearer {config['token_reviewer_jwt'] or jwt}",
            "Content-Type": "application/json",
            "Accept": "application/json",
        },
    )
    context = ssl.create_default_context(cadata=config["kubernetes_ca_cert"] or None)
    try:
        with urllib.request.urlopen(request, context=context, timeout=10) as answer:
            status = json.loads(answer.read()).get("status") or {}
    except urllib.error.HTTPError as error:
        if error.code == 401:
            raise ValueError(
                "lookup failed: service account unauthorized; this could mean it has been deleted or recreated with a new token"
            ) from None
        raise ValueError(f"TokenReview answered HTTP {error.code}") from None
    if status.get("error"):
        raise ValueError(f"lookup failed: {status['error']}")
    if not status.get("authenticated"):
        raise ValueError("lookup failed: service account jwt not valid")
    if audiences and not set(audiences) & set(status.get("audiences") or []):
        raise ValueError(
            f"lookup failed: service account jwt valid for audience(s) {status.get('audiences')}, but wanted {audiences}"
        )
    user = status.get("user") or {}
    parts = (user.get("username") or "").split(":")
    if len(parts) != 4 or parts[:2] != ["system", "serviceaccount"]:
        raise ValueError("lookup failed: username returned is not a service account")
    if (parts[3], parts[2], user.get("uid")) != (account["name"], account["namespace"], account["uid"]):
        raise ValueError("JWT names, namespaces or UIDs did not match the TokenReview's")
