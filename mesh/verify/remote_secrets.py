"""Remote secrets: the right format, and an identity that opens the right cluster and may read what istiod reads."""

from __future__ import annotations

import base64
from typing import Optional

import kubernetes
import urllib3
import yaml
from kubernetes.client.exceptions import ApiException

from ..config import ClusterConfig
from ..plan.names import ISTIO_NAMESPACE, NETWORK_LABEL
from ..plan.reader import READER, reader_rules
from ..plan.remote_secrets import CLUSTER_ANNOTATION, MULTICLUSTER_LABEL, remote_secret_name
from .clients import client_from_kubeconfig
from .results import FAIL, RECREATE, REMOTE_SECRETS, Result, _not_found, _result, api_error

# --- remote secrets -----------------------------------------------------------------------


def annotation_note(secret, source: ClusterConfig) -> Optional[str]:
    """istioctl writes the cluster's name into an annotation too; istiod never reads it (it goes by
    the data key, pkg/kube/multicluster), so a different one is worth saying, not a failure."""
    named = (secret.metadata.annotations or {}).get(CLUSTER_ANNOTATION)
    if named == source.cluster_name:
        return None
    return (
        f"its annotation {CLUSTER_ANNOTATION} says {named or 'nothing'}, not {source.cluster_name}: istiod "
        "ignores it, but istioctl-made secrets carry the data key's name there"
    )


def remote_secret_problems(secret, source: ClusterConfig) -> tuple[list[str], Optional[dict]]:
    """What is wrong with the secret that opens `source`, and its kubeconfig when readable."""
    expected = source.cluster_name
    problems = []
    labels = secret.metadata.labels or {}
    if labels.get(MULTICLUSTER_LABEL) != "true":
        problems.append(f'label {MULTICLUSTER_LABEL} is not "true": istiod ignores this secret')
    data = secret.data or {}
    if expected not in data:
        keys = ", ".join(sorted(data)) or "none"
        problems.append(f"no data key {expected!r} (keys: {keys}): istiod finds no kubeconfig for {expected}")
        return problems, None
    try:
        kubeconfig = yaml.safe_load(base64.b64decode(data[expected]))
        server = next(c["cluster"]["server"] for c in kubeconfig["clusters"] if c["name"] == expected)
    except (ValueError, TypeError, KeyError, StopIteration, yaml.YAMLError):
        problems.append(f"data key {expected!r} is not a kubeconfig with a cluster named {expected}")
        return problems, None
    if server != source.api_server_url:
        problems.append(f"its server is {server}, not {source.name}'s apiServerUrl {source.api_server_url}")
    return problems, kubeconfig


class NotFromHere(Exception):
    """The secret's server cannot be reached from where `mesh verify` runs: API servers are often
    private endpoints only the other clusters reach. What istiod itself reports decides."""


def _no_connection(error: Exception) -> bool:
    """No TCP connection at all (refused, timed out, name unknown): nothing of the secret was tried."""
    reason = getattr(error, "reason", None) if isinstance(error, urllib3.exceptions.MaxRetryError) else error
    return isinstance(
        reason,
        (urllib3.exceptions.NewConnectionError, urllib3.exceptions.ConnectTimeoutError, ConnectionRefusedError),
    )


def remote_access_problems(api: kubernetes.client.ApiClient, source: ClusterConfig) -> list[str]:
    """The kubeconfig's identity works on `source` (and nowhere else) and has every right of
    Istio's reader role. Raises NotFromHere when the server does not answer this machine."""
    core = kubernetes.client.CoreV1Api(api)
    fix = f"look at {READER} and its token secret on {source.name}, then run `pulumi up`"
    try:
        namespace = core.read_namespace(ISTIO_NAMESPACE)
    except ApiException as error:
        if error.status == 401:
            return [f"{source.name} rejects its token (revoked or rotated away): {fix}"]
        return [f"reading namespace {ISTIO_NAMESPACE} on {source.name} failed ({api_error(error)}): {fix}"]
    except Exception as error:  # noqa: BLE001 - network errors vary by transport
        if _no_connection(error):
            raise NotFromHere(api_error(error)) from error
        # It answered, and the TLS handshake or the exchange failed: the secret's CA or server is wrong.
        return [f"{source.api_server_url} answers, but not to this kubeconfig ({api_error(error)}): its "
                f"certificate-authority-data or server is not {source.name}'s; {fix}"]  # fmt: skip
    network = (namespace.metadata.labels or {}).get(NETWORK_LABEL)
    if network != source.network:
        return [
            f"it opens a cluster on network {network}, not {source.name} ({source.network}): "
            "the server URL or token belongs to another cluster"
        ]
    try:
        missing = missing_reader_rights(kubernetes.client.AuthorizationV1Api(api))
    except ApiException as error:
        return [f"asking {source.name} what it may read failed ({api_error(error)}): {fix}"]
    if missing:
        return [f"it may not {', '.join(missing)} on {source.name}, which istiod reads from a peer: {fix}"]
    return []


def missing_reader_rights(authorization) -> list[str]:
    """Which rights of Istio's reader role the client's identity lacks (`list pods`, `watch
    endpointslices.discovery.k8s.io`), asked with SelfSubjectAccessReviews: a role missing one
    rule lets istiod connect but never sync (a role without endpointslices is a known case)."""
    missing = []
    for rule in reader_rules():
        for group in rule["apiGroups"]:
            for resource in rule["resources"]:
                if resource == "*":
                    continue
                for verb in ("list", "watch") if "list" in rule["verbs"] else rule["verbs"]:
                    review = authorization.create_self_subject_access_review(
                        {"spec": {"resourceAttributes": {"group": group, "resource": resource, "verb": verb}}}
                    )
                    if not review.status.allowed:
                        missing.append(f"{verb} {resource}{'.' + group if group else ''}")
    return missing


def check_remote_secret(holder_core, holder: ClusterConfig, source: ClusterConfig, request_timeout: float) -> Result:
    """`holder` holds a secret that lets its istiod read `source`, and it does."""
    name = remote_secret_name(source.cluster_name)
    try:
        secret = holder_core.read_namespaced_secret(name, ISTIO_NAMESPACE)
    except ApiException as error:
        if not _not_found(error):
            raise
        return Result(
            REMOTE_SECRETS,
            holder.name,
            name,
            FAIL,
            f"not found in {ISTIO_NAMESPACE}: {holder.name}'s istiod cannot see {source.name}'s endpoints; " + RECREATE,
        )
    problems, kubeconfig = remote_secret_problems(secret, source)
    good = f"opens {source.name} ({source.network}) and may read what istiod reads"
    if kubeconfig is not None:
        try:
            api = client_from_kubeconfig(kubeconfig, None, request_timeout)
        except Exception as error:  # noqa: BLE001 - the loader raises many kinds
            problems.append(f"its kubeconfig does not load: {error}")
        else:
            with api:
                try:
                    problems.extend(remote_access_problems(api, source))
                except NotFromHere as unreachable:
                    good = (
                        f"well formed for {source.name}; its server {source.api_server_url} does not answer from "
                        f"here ({unreachable}), as a private endpoint would not: {holder.name}'s istiod peers "
                        "check below says whether istiod reaches it"
                    )
    note = annotation_note(secret, source)
    if note:
        good = f"{good}; {note}"
    return _result(REMOTE_SECRETS, holder.name, name, problems, good)
