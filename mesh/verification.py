"""`mesh verify`: show that a deployed mesh works, cluster by cluster and pair by pair.

The checks follow Sail's own multicluster end-to-end test, in its order: `Istio` and `IstioCNI`
Ready, istiod available, east-west gateways available with an address, `cacerts` chaining to the
mesh's one root, remote secrets that open the right cluster, sample pods Ready, and finally
helloworld answering every source cluster from every version deployed in the mesh.

Each check is a plain function over Kubernetes API clients that returns `Result` records, so a
failure is data (with what to look at), never an exception. Names come from the modules that
create the objects, so the checks look exactly where `pulumi up` put things.
"""

from __future__ import annotations

import base64
import json
import re
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Callable, Mapping, Optional, Sequence

import kubernetes
import urllib3
import yaml
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from kubernetes.client.exceptions import ApiException
from kubernetes.stream import stream
from websocket import WebSocketException

from . import gateway, istiod_access, istiod_checks, samples
from .certificate_authority import CACERTS_KEYS
from .config import ClusterConfig, MeshConfig
from .control_plane import ISTIO_NAMESPACE, NETWORK_LABEL, cacerts_manifest, istio_cni_manifest, istio_manifest
from .reader import READER, reader_rules
from .remote_secret import CLUSTER_ANNOTATION, MULTICLUSTER_LABEL, remote_secret_name, remote_secret_pairs

PASS, FAIL, SKIP = "pass", "fail", "skip"

# The checks, in the order they run and are reported.
API_SERVERS = "API servers"
CONTROL_PLANE = "Istio and IstioCNI"
ISTIOD = "istiod"
GATEWAY = "east-west gateway"
CACERTS = "cacerts"
REMOTE_SECRETS = "remote secrets"
SAMPLE_PODS = "sample pods"
TRAFFIC = "traffic"
ISTIOD_PEERS = istiod_checks.ISTIOD_PEERS
REMOTE_ENDPOINTS = istiod_checks.REMOTE_ENDPOINTS
CHECKS = (API_SERVERS, CONTROL_PLANE, ISTIOD, GATEWAY, CACERTS, REMOTE_SECRETS, ISTIOD_PEERS, SAMPLE_PODS,
          REMOTE_ENDPOINTS, TRAFFIC)
NO_NODE = istiod_checks.NO_NODE

HELLOWORLD_URL = f"helloworld.{samples.NAMESPACE}:{samples.HELLOWORLD_PORT}/hello"
SLEEP = "sleep"
# What helloworld answers: "Hello version: v1, instance: helloworld-v1-776f57d5f6-s7zfc".
_HELLO = re.compile(r"Hello version: (?P<version>[^,\s]+), instance: (?P<instance>\S+)")
# An object deleted behind Pulumi's back is only recreated after a refresh.
RECREATE = "`pulumi up --refresh` recreates it"


@dataclass(frozen=True)
class Result:
    check: str
    cluster: str
    item: str
    status: str
    detail: str = ""

    @property
    def failed(self) -> bool:
        return self.status == FAIL

    @property
    def final(self) -> bool:
        """A failure that waiting cannot cure (no node will appear by itself)."""
        return self.failed and NO_NODE in self.detail


def _result(check: str, cluster: str, item: str, problems: Sequence[str], good: str) -> Result:
    """One record: passed with `good`, or failed with every problem found."""
    if problems:
        return Result(check, cluster, item, FAIL, "; ".join(problems))
    return Result(check, cluster, item, PASS, good)


def api_error(error: Exception) -> str:
    """A short, readable reason for a failed API call."""
    if isinstance(error, ApiException):
        # The exec websocket reports a refused upgrade as status 0 with the API server's Status
        # document at the end of `reason` ("Handshake status 400 ... -+-+- {...}").
        message = error.reason or ""
        for document in (error.body, message.rsplit("-+-+-", 1)[-1]):
            try:
                message = json.loads(document or "").get("message") or message
                break
            except (TypeError, ValueError, AttributeError):
                continue
        return f"API error {error.status}: {message}".strip()
    if isinstance(error, urllib3.exceptions.MaxRetryError):
        return f"cannot reach the API server: {error.reason}"
    return f"{type(error).__name__}: {error}"


def _not_found(error: Exception) -> bool:
    return isinstance(error, ApiException) and error.status == 404


# --- clients ------------------------------------------------------------------------------


class _TimedApiClient(kubernetes.client.ApiClient):
    """An ApiClient whose every call has a timeout: a verify must never hang on one cluster."""

    def __init__(self, configuration: kubernetes.client.Configuration, request_timeout: float):
        super().__init__(configuration)
        self.request_timeout = request_timeout

    def call_api(self, *args, _request_timeout=None, **kwargs):
        return super().call_api(*args, _request_timeout=_request_timeout or self.request_timeout, **kwargs)


def client_from_kubeconfig(document: Mapping[str, Any], context: Optional[str], request_timeout: float):
    configuration = kubernetes.client.Configuration()
    kubernetes.config.load_kube_config_from_dict(
        dict(document), context=context, client_configuration=configuration, persist_config=False
    )
    # One retry, not urllib3's three, on a dead server: the waits below do the retrying.
    configuration.retries = 1
    return _TimedApiClient(configuration, request_timeout)


def connect(cluster: ClusterConfig, request_timeout: float) -> kubernetes.client.ApiClient:
    """A client for `cluster` through the same kubeconfig and context the program uses."""
    if cluster.kubeconfig_is_content:
        text = cluster.kubeconfig
    else:
        with open(cluster.kubeconfig, encoding="utf-8") as handle:
            text = handle.read()
    return client_from_kubeconfig(yaml.safe_load(text), cluster.context, request_timeout)


def check_api_server(api: kubernetes.client.ApiClient, cluster: ClusterConfig) -> Result:
    """The cluster answers through its kubeconfig context; nothing else can be checked if not."""
    item = f"context {cluster.context}"
    try:
        version = kubernetes.client.VersionApi(api).get_code().git_version
    except Exception as error:  # noqa: BLE001 - any failure means unreachable, and says why
        return Result(API_SERVERS, cluster.name, item, FAIL, f"unreachable: {api_error(error)}")
    return Result(API_SERVERS, cluster.name, item, PASS, f"Kubernetes {version}")


# --- control plane: Istio, IstioCNI, istiod -----------------------------------------------


def _conditions(obj: Mapping[str, Any]) -> dict[str, Mapping[str, Any]]:
    return {c.get("type"): c for c in (obj.get("status") or {}).get("conditions") or []}


def _sail_object(custom, manifest: Mapping[str, Any]) -> dict:
    group, version = manifest["apiVersion"].split("/")
    # Both Sail kinds are cluster-scoped; their plurals are the lower-case kind plus "s".
    return custom.get_cluster_custom_object(group, version, manifest["kind"].lower() + "s", manifest["metadata"]["name"])


def check_control_plane(custom, mesh: MeshConfig, cluster: ClusterConfig) -> list[Result]:
    """`Istio` and `IstioCNI` Ready for their current spec, with the operator's message if not."""
    manifests = [istio_manifest(mesh, cluster)]
    if mesh.manage_istio_cni:
        manifests.append(istio_cni_manifest(mesh))
    results = []
    for manifest in manifests:
        item = f"{manifest['kind']} {manifest['metadata']['name']}"
        try:
            obj = _sail_object(custom, manifest)
        except ApiException as error:
            if not _not_found(error):
                raise
            results.append(Result(CONTROL_PLANE, cluster.name, item, FAIL, f"not found: {RECREATE}"))
            continue
        status = obj.get("status") or {}
        ready = _conditions(obj).get("Ready", {})
        problems = []
        if status.get("observedGeneration") != obj["metadata"].get("generation"):
            problems.append(
                f"the operator has not reconciled generation {obj['metadata'].get('generation')} yet "
                f"(observed {status.get('observedGeneration')}): is the Sail operator running?"
            )
        elif ready.get("status") != "True":
            said = ": ".join(filter(None, (ready.get("reason"), ready.get("message"))))
            problems.append(f"not Ready (state {status.get('state', 'unknown')}): {said or 'no Ready condition yet'}")
        results.append(_result(CONTROL_PLANE, cluster.name, item, problems, f"Ready, state {status.get('state')}"))
    if not mesh.manage_istio_cni:
        results.append(
            Result(CONTROL_PLANE, cluster.name, "IstioCNI default", SKIP, "mesh:manageIstioCni is false: not ours")
        )
    return results


def istiod_deployment_name(revision: str) -> str:
    # Sail renders the revision named "default" without a suffix (the istiod chart's empty
    # `revision`), every other revision as istiod-<revision>.
    return "istiod" if revision == "default" else f"istiod-{revision}"


def _deployment_problems(apps, name: str, namespace: str, nodeless: bool = False) -> list[str]:
    try:
        deployment = apps.read_namespaced_deployment(name, namespace)
    except ApiException as error:
        if _not_found(error):
            return [f"Deployment {namespace}/{name} not found"]
        raise
    status = deployment.status
    available = next((c for c in status.conditions or [] if c.type == "Available"), None)
    if (status.available_replicas or 0) >= 1 and available is not None and available.status == "True":
        return []
    reason = f": {available.message}" if available is not None and available.message else ""
    where = NO_NODE if nodeless else "look at its pods' events"
    return [
        f"Deployment {namespace}/{name} is not available ({status.available_replicas or 0} replicas "
        f"available{reason}); {where}"
    ]


def check_istiod(custom, apps, mesh: MeshConfig, cluster: ClusterConfig, nodeless: bool = False) -> list[Result]:
    """The active revision's istiod Deployment has an available replica."""
    manifest = istio_manifest(mesh, cluster)
    try:
        istio = _sail_object(custom, manifest)
    except ApiException as error:
        if not _not_found(error):
            raise
        return [Result(ISTIOD, cluster.name, "istiod", FAIL, "no Istio resource, so no istiod")]
    revision = (istio.get("status") or {}).get("activeRevisionName") or manifest["metadata"]["name"]
    name = istiod_deployment_name(revision)
    problems = _deployment_problems(apps, name, ISTIO_NAMESPACE, nodeless)
    return [_result(ISTIOD, cluster.name, f"Deployment {name}", problems, f"available (revision {revision})")]


# --- east-west gateway --------------------------------------------------------------------


def check_gateway(core, apps, cluster: ClusterConfig, nodeless: bool = False) -> list[Result]:
    """The gateway's pods are available and its Service has an address peers can reach."""
    results = [
        _result(
            GATEWAY,
            cluster.name,
            f"Deployment {gateway.NAME}",
            _deployment_problems(apps, gateway.NAME, ISTIO_NAMESPACE, nodeless),
            "available",
        )
    ]
    item = f"Service {gateway.NAME}"
    try:
        service = core.read_namespaced_service(gateway.NAME, ISTIO_NAMESPACE)
    except ApiException as error:
        if not _not_found(error):
            raise
        results.append(Result(GATEWAY, cluster.name, item, FAIL, f"not found: {RECREATE}"))
        return results
    # A load balancer's address, or an address given by hand (istio/istio#29359).
    address = gateway.ingress_address(service.status) or next(iter(service.spec.external_ips or []), None)
    problems = [] if address else [
        f"has no address (status.loadBalancer.ingress is empty), so cross-network traffic cannot flow "
        f"into {cluster.name}: look at the Service's events and the load-balancer controller"
    ]
    results.append(_result(GATEWAY, cluster.name, item, problems, f"address {address}"))
    return results


# --- cacerts ------------------------------------------------------------------------------


def fingerprint(certificate: x509.Certificate) -> str:
    """Enough of the SHA-256 fingerprint to tell roots apart in a table."""
    return "SHA256 " + certificate.fingerprint(hashes.SHA256()).hex(":")[:23]


def _is_ca(certificate: x509.Certificate) -> bool:
    try:
        return certificate.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    except x509.ExtensionNotFound:
        return False


def _issued_by(certificate: x509.Certificate, issuer: x509.Certificate) -> bool:
    try:
        certificate.verify_directly_issued_by(issuer)
    except (ValueError, TypeError, InvalidSignature):
        return False
    return True


@dataclass(frozen=True)
class Trust:
    """What one cluster's `cacerts` says: the root its intermediate chains to, and every root
    its `root-cert.pem` holds (two during a root rotation)."""

    signing_root: x509.Certificate
    trusted: tuple[x509.Certificate, ...]


def _cacerts_problems(data: Mapping[str, bytes], now: datetime) -> tuple[list[str], Optional[Trust]]:
    """Everything wrong inside one cluster's bundle, and its roots when they are readable."""
    missing = [key for key in CACERTS_KEYS if not data.get(key)]
    if missing:
        return [f"missing {', '.join(missing)}: istiod fails on a partial bundle"], None
    try:
        intermediate = x509.load_pem_x509_certificate(data["ca-cert.pem"])
        trusted = tuple(x509.load_pem_x509_certificates(data["root-cert.pem"]))
        chain = x509.load_pem_x509_certificates(data["cert-chain.pem"])
        key = serialization.load_pem_private_key(data["ca-key.pem"], password=None)
    except ValueError as error:
        return [f"unreadable PEM data: {error}"], None
    problems = []
    for root in trusted:
        if not (_is_ca(root) and _issued_by(root, root)):
            problems.append(f"root-cert.pem holds {root.subject.rfc4514_string()}, not a self-signed CA certificate")
    if not _is_ca(intermediate):
        problems.append("ca-cert.pem is not a CA certificate: istiod cannot sign workload certificates with it")
    signing_root = next((root for root in trusted if _issued_by(intermediate, root)), None)
    if signing_root is None:
        problems.append(
            f"ca-cert.pem ({intermediate.subject.rfc4514_string()}) is not signed by root-cert.pem "
            f"({', '.join(fingerprint(root) for root in trusted)})"
        )
    elif chain != [intermediate, signing_root]:
        problems.append("cert-chain.pem is not ca-cert.pem followed by the root in root-cert.pem that signed it")
    public = serialization.PublicFormat.SubjectPublicKeyInfo
    encoding = serialization.Encoding.DER
    if key.public_key().public_bytes(encoding, public) != intermediate.public_key().public_bytes(encoding, public):
        problems.append("ca-key.pem is not the key of ca-cert.pem")
    for name, certificate in [("root-cert.pem", root) for root in trusted] + [("ca-cert.pem", intermediate)]:
        if not certificate.not_valid_before_utc <= now <= certificate.not_valid_after_utc:
            problems.append(
                f"{name} is outside its validity ({certificate.not_valid_before_utc:%Y-%m-%d} to "
                f"{certificate.not_valid_after_utc:%Y-%m-%d})"
            )
    return problems, Trust(signing_root, trusted) if signing_root is not None else None


def check_cacerts(
    bundles: Mapping[str, Optional[Mapping[str, bytes]]],
    mesh_roots: Sequence[x509.Certificate] = (),
    now: Optional[datetime] = None,
) -> list[Result]:
    """Each cluster's `cacerts` is a valid chain, and every cluster trusts every other one.

    `bundles` maps cluster name to the secret's decoded data (None when there is no secret).
    A cluster's intermediate must chain to a root that every other cluster's `root-cert.pem`
    holds, else their workloads reject each other's mTLS; this holds at every phase of a root
    rotation. `mesh_roots` (the stack output `rootCertificate`) are the roots the mesh should
    trust; when given, each cluster must trust exactly those.
    """
    now = now or datetime.now(timezone.utc)
    item = f"Secret {cacerts_manifest()['metadata']['name']}"
    checked: dict[str, tuple[list[str], Optional[Trust]]] = {}
    results = []
    for cluster, data in bundles.items():
        if data is None:
            results.append(Result(CACERTS, cluster, item, FAIL, "not found: istiod would sign with a self-made root"))
        else:
            checked[cluster] = _cacerts_problems(data, now)
    expected = {fingerprint(root) for root in mesh_roots}
    for cluster, (problems, trust) in checked.items():
        if trust is None:
            results.append(_result(CACERTS, cluster, item, problems, ""))
            continue
        signer = fingerprint(trust.signing_root)
        held = {fingerprint(root) for root in trust.trusted}
        if expected and held != expected:
            problems.append(
                f"its root-cert.pem holds {', '.join(sorted(held))}, not the mesh's root certificate "
                f"({', '.join(sorted(expected))})"
            )
        for peer, (_, peer_trust) in checked.items():
            if peer != cluster and peer_trust is not None and trust.signing_root not in peer_trust.trusted:
                problems.append(
                    f"its chain ends in root {signer}, which {peer}'s root-cert.pem does not hold: "
                    f"workloads on {peer} will not trust workloads here"
                )
        others = sorted(held - {signer})
        good = f"valid chain under root {signer}" + (f"; also trusts {', '.join(others)}" if others else "")
        results.append(_result(CACERTS, cluster, item, problems, good))
    return results


def read_cacerts(core) -> Optional[dict[str, bytes]]:
    try:
        secret = core.read_namespaced_secret(cacerts_manifest()["metadata"]["name"], ISTIO_NAMESPACE)
    except ApiException as error:
        if _not_found(error):
            return None
        raise
    return {key: base64.b64decode(value) for key, value in (secret.data or {}).items()}


# --- remote secrets -----------------------------------------------------------------------


def annotation_note(secret, source: ClusterConfig) -> Optional[str]:
    """istioctl writes the cluster's name into an annotation too; istiod never reads it (it goes by
    the data key, pkg/kube/multicluster), so a different one is worth saying, not a failure."""
    named = (secret.metadata.annotations or {}).get(CLUSTER_ANNOTATION)
    if named == source.cluster_name:
        return None
    return (f"its annotation {CLUSTER_ANNOTATION} says {named or 'nothing'}, not {source.cluster_name}: istiod "
            "ignores it, but istioctl-made secrets carry the data key's name there")


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


def remote_access_problems(api: kubernetes.client.ApiClient, source: ClusterConfig) -> list[str]:
    """The kubeconfig's identity works on `source` (and nowhere else) and has every right of
    Istio's reader role."""
    core = kubernetes.client.CoreV1Api(api)
    fix = f"look at {READER} and its token secret on {source.name}, then run `pulumi up`"
    try:
        namespace = core.read_namespace(ISTIO_NAMESPACE)
    except ApiException as error:
        if error.status == 401:
            return [f"{source.name} rejects its token (revoked or rotated away): {fix}"]
        return [f"reading namespace {ISTIO_NAMESPACE} on {source.name} failed ({api_error(error)}): {fix}"]
    except Exception as error:  # noqa: BLE001 - network errors vary by transport
        return [f"cannot reach {source.api_server_url} from here ({api_error(error)})"]
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
                    review = authorization.create_self_subject_access_review({"spec": {"resourceAttributes": {
                        "group": group, "resource": resource, "verb": verb}}})
                    if not review.status.allowed:
                        missing.append(f"{verb} {resource}{'.' + group if group else ''}")
    return missing


def check_remote_secret(
    holder_core, holder: ClusterConfig, source: ClusterConfig, request_timeout: float
) -> Result:
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
            f"not found in {ISTIO_NAMESPACE}: {holder.name}'s istiod cannot see {source.name}'s endpoints; "
            + RECREATE,
        )
    problems, kubeconfig = remote_secret_problems(secret, source)
    if kubeconfig is not None:
        try:
            api = client_from_kubeconfig(kubeconfig, None, request_timeout)
        except Exception as error:  # noqa: BLE001 - the loader raises many kinds
            problems.append(f"its kubeconfig does not load: {error}")
        else:
            with api:
                problems.extend(remote_access_problems(api, source))
    good = f"opens {source.name} ({source.network}) and may read what istiod reads"
    note = annotation_note(secret, source)
    if note:
        good = f"{good}; {note}"
    return _result(REMOTE_SECRETS, holder.name, name, problems, good)


# --- what istiod itself says ----------------------------------------------------------------


def _istiods(api, custom, mesh: MeshConfig, cluster: ClusterConfig) -> list[istiod_access.Istiod]:
    manifest = istio_manifest(mesh, cluster)
    try:
        istio = _sail_object(custom, manifest)
        revision = (istio.get("status") or {}).get("activeRevisionName") or manifest["metadata"]["name"]
    except ApiException as error:
        if not _not_found(error):
            raise
        revision = manifest["metadata"]["name"]
    found = istiod_access.find(api, revision)
    if not found:
        raise istiod_access.Unreachable(
            f"no Running, Ready istiod pod of revision {revision} in {ISTIO_NAMESPACE} (see the istiod check)"
        )
    return found


def _ask_each(api, istiods: Sequence[istiod_access.Istiod], path: str, timeout: float) -> list[tuple[str, Any]]:
    """(which istiod, its answer) for every ready istiod replica."""
    return [(i.describe(), istiod_access.get_json(api, i, path, timeout)) for i in istiods]


def check_istiod_peers(
    api, mesh: MeshConfig, holder: ClusterConfig, remote_problems: Mapping[str, str], timeout: float
) -> list[Result]:
    """Every replica of `holder`'s istiod has every other cluster synced (`/debug/clusterz`)."""
    custom = kubernetes.client.CustomObjectsApi(api)
    try:
        answers = _ask_each(api, _istiods(api, custom, mesh, holder), "/debug/clusterz", timeout)
    except istiod_access.Unreachable as error:
        return [Result(ISTIOD_PEERS, holder.name, "istiod", FAIL, str(error))]
    results = []
    for peer in istiod_checks.peers(mesh.clusters, holder):
        problem = remote_problems.get(remote_secret_name(peer.cluster_name))
        verdicts = [(who, *istiod_checks.peer_result(holder, peer, clusterz, problem)) for who, clusterz in answers]
        failed = [(who, detail) for who, status, detail in verdicts if status == FAIL]
        item = f"peer {peer.name}"
        if failed:
            who, detail = failed[0]
            results.append(Result(ISTIOD_PEERS, holder.name, item, FAIL, f"{who}: {detail}" if len(answers) > 1 else detail))
        else:
            results.append(Result(ISTIOD_PEERS, holder.name, item, PASS, verdicts[0][2]))
    return results


def _ready_helloworld_endpoints(api) -> int:
    slices = kubernetes.client.DiscoveryV1Api(api).list_namespaced_endpoint_slice(
        samples.NAMESPACE, label_selector="kubernetes.io/service-name=helloworld"
    ).items
    return sum(1 for s in slices for e in s.endpoints or [] if not e.conditions or e.conditions.ready is not False)


def _gateway_address(api) -> Optional[str]:
    try:
        service = kubernetes.client.CoreV1Api(api).read_namespaced_service(gateway.NAME, ISTIO_NAMESPACE)
    except ApiException as error:
        if _not_found(error):
            return None
        raise
    return gateway.ingress_address(service.status) or next(iter(service.spec.external_ips or []), None)


def check_remote_endpoints(
    apis: Mapping[str, Any], mesh: MeshConfig, holder: ClusterConfig, nodeless: set[str], timeout: float
) -> list[Result]:
    """`holder`'s istiod serves every other cluster's helloworld behind that cluster's gateway."""
    api = apis[holder.name]
    custom = kubernetes.client.CustomObjectsApi(api)
    try:
        istiods = _istiods(api, custom, mesh, holder)
        networkz = _ask_each(api, istiods, "/debug/networkz", timeout)
        shardz = _ask_each(api, istiods, "/debug/endpointShardz", timeout)
        clusterz = _ask_each(api, istiods, "/debug/clusterz", timeout)
    except istiod_access.Unreachable as error:
        return [Result(REMOTE_ENDPOINTS, holder.name, "istiod", FAIL, str(error))]
    results = []
    for peer in istiod_checks.peers(mesh.clusters, holder):
        peer_api = apis.get(peer.name)
        facts = (None, False, True) if peer_api is None else (
            _gateway_address(peer_api), _ready_helloworld_endpoints(peer_api) > 0, peer.name not in nodeless)
        verdicts = [
            (who, *istiod_checks.endpoint_result(holder, peer, networks, shards, *facts, clusters))
            for (who, networks), (_, shards), (_, clusters) in zip(networkz, shardz, clusterz)
        ]
        failed = [(who, detail) for who, status, detail in verdicts if status == FAIL]
        item = f"helloworld of {peer.name}"
        detail = (f"{failed[0][0]}: {failed[0][1]}" if len(verdicts) > 1 else failed[0][1]) if failed else verdicts[0][2]
        results.append(Result(REMOTE_ENDPOINTS, holder.name, item, FAIL if failed else PASS, detail))
    return results


def nodeless_clusters(apis: Mapping[str, Any], clusters: Sequence[ClusterConfig]) -> set[str]:
    """Clusters that have no Node at all (a lab; a cluster whose nodes are all gone)."""
    found = set()
    for cluster in clusters:
        try:
            if not kubernetes.client.CoreV1Api(apis[cluster.name]).list_node(limit=1).items:
                found.add(cluster.name)
        except Exception:  # noqa: BLE001 - may not list nodes: then say nothing about them
            pass
    return found


# --- sample apps --------------------------------------------------------------------------


def sample_deployments(cluster: ClusterConfig) -> dict[str, dict]:
    """The sample Deployments on `cluster`, by name, exactly as the program creates them."""
    return {
        m["metadata"]["name"]: m for m in samples.sample_manifests(cluster.helloworld_version) if m["kind"] == "Deployment"
    }


def _selector(deployment: Mapping[str, Any]) -> str:
    return ",".join(f"{k}={v}" for k, v in deployment["spec"]["selector"]["matchLabels"].items())


def _pod_ready(pod) -> bool:
    return any(c.type == "Ready" and c.status == "True" for c in pod.status.conditions or [])


def ready_pods(core, deployment: Mapping[str, Any]) -> tuple[list, list]:
    """(Ready pods, all pods) of a sample Deployment."""
    pods = core.list_namespaced_pod(samples.NAMESPACE, label_selector=_selector(deployment)).items
    return [p for p in pods if _pod_ready(p) and not p.metadata.deletion_timestamp], pods


def check_sample_pods(core, cluster: ClusterConfig, nodeless: bool = False) -> list[Result]:
    results = []
    for name, deployment in sample_deployments(cluster).items():
        ready, pods = ready_pods(core, deployment)
        problems = []
        if not ready:
            seen = ", ".join(f"{p.metadata.name} {p.status.phase}" for p in pods) or "none"
            where = NO_NODE if nodeless else f"look at `kubectl -n {samples.NAMESPACE} describe pod`"
            problems.append(f"no Ready pod (pods: {seen}); {where}")
        results.append(_result(SAMPLE_PODS, cluster.name, f"Deployment {name}", problems, f"{len(ready)} Ready"))
    return results


# --- traffic ------------------------------------------------------------------------------

Exec = Callable[[str], str]
"""Runs the article's curl once in the sleep pod of the named cluster; returns its output."""


class ExecError(Exception):
    """The curl could not be run at all (no pod, exec refused): further tries are pointless."""


def curl_command(timeout: float) -> list[str]:
    # --max-time: a blackholed gateway must not leave curl waiting longer than we do.
    return ["curl", "-sS", "--max-time", str(int(max(timeout, 1))), HELLOWORLD_URL]


class PodExec:
    """The real `Exec`: the pod exec API into a Ready pod of Deployment `sleep` (container `sleep`)."""

    def __init__(self, mesh: MeshConfig, apis: Mapping[str, kubernetes.client.ApiClient], request_timeout: float):
        self.clusters = {c.name: c for c in mesh.clusters}
        self.apis = apis
        self.request_timeout = request_timeout
        self._pods: dict[str, str] = {}

    def _pod(self, core, cluster: ClusterConfig) -> str:
        if cluster.name not in self._pods:
            ready, _ = ready_pods(core, sample_deployments(cluster)[SLEEP])
            if not ready:
                raise ExecError(f"no Ready pod of Deployment {SLEEP} in namespace {samples.NAMESPACE}")
            self._pods[cluster.name] = ready[0].metadata.name
        return self._pods[cluster.name]

    def __call__(self, cluster_name: str) -> str:
        cluster = self.clusters[cluster_name]
        core = kubernetes.client.CoreV1Api(self.apis[cluster_name])
        try:
            pod = self._pod(core, cluster)
            container = sample_deployments(cluster)[SLEEP]["spec"]["template"]["spec"]["containers"][0]["name"]
            return stream(
                core.connect_get_namespaced_pod_exec,
                pod,
                samples.NAMESPACE,
                container=container,
                command=curl_command(self.request_timeout - 1),
                stderr=True,
                stdin=False,
                stdout=True,
                tty=False,
                _request_timeout=self.request_timeout,
            )
        except (ApiException, WebSocketException, OSError, urllib3.exceptions.HTTPError) as error:
            raise ExecError(f"exec into {samples.NAMESPACE}/{SLEEP} failed: {api_error(error)}") from error


def parse_response(output: str) -> tuple[Optional[str], Optional[str]]:
    """(helloworld version, None) for an answer, (None, the error line) for anything else."""
    match = _HELLO.search(output)
    if match:
        return match.group("version"), None
    lines = [line.strip() for line in output.splitlines() if line.strip()]
    return None, (lines[0] if lines else "empty response")


@dataclass
class TrafficRow:
    """What one source cluster's sleep saw."""

    source: str
    versions: Counter = field(default_factory=Counter)
    errors: Counter = field(default_factory=Counter)
    missing: tuple[str, ...] = ()
    exec_error: Optional[str] = None
    """Set when curl could not be run at all; then nothing was measured."""

    @property
    def requests(self) -> int:
        return sum(self.versions.values()) + sum(self.errors.values())


def expected_versions(mesh: MeshConfig) -> dict[str, list[str]]:
    """Every helloworld version deployed in the mesh, and the clusters it runs on."""
    where: dict[str, list[str]] = {}
    for cluster in mesh.clusters:
        where.setdefault(cluster.helloworld_version, []).append(cluster.name)
    return dict(sorted(where.items()))


def measure_traffic(mesh: MeshConfig, exec_: Exec, requests: int, progress: Callable[[str], None]) -> list[TrafficRow]:
    expected = expected_versions(mesh)
    rows = []
    for cluster in mesh.clusters:
        progress(f"traffic: {requests} requests from {cluster.name}'s {SLEEP} to {HELLOWORLD_URL}")
        row = TrafficRow(cluster.name)
        for _ in range(requests):
            try:
                version, error = parse_response(exec_(cluster.name))
            except ExecError as failure:
                row.exec_error = str(failure)
                break
            if version:
                row.versions[version] += 1
            else:
                row.errors[error] += 1
        row.missing = tuple(v for v in expected if not row.versions[v])
        rows.append(row)
    return rows


def traffic_result(row: TrafficRow, mesh: MeshConfig) -> Result:
    """Passes when `row.source` saw every version deployed anywhere; errors alone do not fail."""
    item = f"{SLEEP} -> helloworld"
    if row.exec_error:
        return Result(TRAFFIC, row.source, item, FAIL, row.exec_error)
    where = expected_versions(mesh)
    seen = ", ".join(f"{v} x{n}" for v, n in sorted(row.versions.items())) or "no answer"
    problems = []
    for version in row.missing:
        remote = [c for c in where[version] if c != row.source]
        hint = (
            f"traffic from {row.source} does not reach {', '.join(remote)}: look at the gateway, "
            "remote-secret and cacerts checks above"
            if remote
            else f"the local helloworld-{version} does not answer"
        )
        problems.append(f"never answered by {version} ({', '.join(where[version])}): {hint}")
    if row.errors:
        error, count = row.errors.most_common(1)[0]
        failures = f"{sum(row.errors.values())} of {row.requests} failed, e.g. {count}x {error!r}"
        if problems:
            problems.append(failures)
        else:
            seen = f"{seen}; {failures}"
    return _result(TRAFFIC, row.source, item, problems, seen)


# --- the whole run ------------------------------------------------------------------------


@dataclass(frozen=True)
class Settings:
    requests: int = 10
    timeout: float = 120.0
    """How long, in all, to wait for things that are still settling."""
    request_timeout: float = 15.0
    """How long one API call (or one curl through exec) may take."""
    mesh_roots: tuple[x509.Certificate, ...] = ()
    """The roots the mesh should trust (`pulumi stack output rootCertificate`); () skips that check."""
    interval: float = 2.0


@dataclass
class Report:
    results: list[Result]
    traffic: list[TrafficRow]
    requests: int
    expected_versions: dict[str, list[str]]

    @property
    def ok(self) -> bool:
        return not any(r.failed for r in self.results)

    def counts(self) -> Counter:
        return Counter(r.status for r in self.results)

    def summary(self) -> str:
        counts = self.counts()
        verdict = "the mesh works" if self.ok else "the mesh is NOT working"
        return f"{verdict}: {counts[PASS]} passed, {counts[FAIL]} failed, {counts[SKIP]} skipped"

    def to_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "summary": self.summary(),
            "results": [r.__dict__ for r in self.results],
            "traffic": {
                "url": HELLOWORLD_URL,
                "requests": self.requests,
                "expectedVersions": self.expected_versions,
                "sources": {
                    row.source: {
                        "versions": dict(row.versions),
                        "errors": dict(row.errors),
                        "missing": list(row.missing),
                    }
                    for row in self.traffic
                },
            },
        }


def _guarded(check: str, cluster: str, probe: Callable[[], list[Result]]) -> list[Result]:
    """A probe's results, or one failure that says which API call failed and why."""
    try:
        return probe()
    except Exception as error:  # noqa: BLE001 - one broken cluster must not hide the others
        return [Result(check, cluster, "-", FAIL, api_error(error))]


def _wait(
    what: str,
    probe: Callable[[], list[Result]],
    deadline: float,
    settings: Settings,
    progress: Callable[[str], None],
) -> list[Result]:
    """Probe until nothing fails or the deadline passes; say what is awaited when that changes,
    and every ten seconds otherwise."""
    said, said_at = "", 0.0
    while True:
        results = probe()
        failing = [r for r in results if r.failed and not r.final]
        now = time.monotonic()
        if not failing or now >= deadline:
            return results
        waiting_for = "; ".join(f"{r.cluster} {r.item}: {r.detail}" for r in failing[:2])
        if waiting_for != said or now - said_at >= 10:
            progress(f"waiting for {what}, {deadline - now:.0f}s left of --timeout: {waiting_for}")
            said, said_at = waiting_for, now
        time.sleep(min(settings.interval, deadline - now))


def verify(
    mesh: MeshConfig,
    apis: Mapping[str, kubernetes.client.ApiClient],
    exec_: Exec,
    settings: Settings = Settings(),
    progress: Callable[[str], None] = lambda line: None,
) -> Report:
    """Run every check on every cluster, in Sail's e2e order, waiting at most `settings.timeout`."""
    deadline = time.monotonic() + settings.timeout

    progress("connecting to " + ", ".join(c.name for c in mesh.clusters))
    results = [check_api_server(apis[c.name], c) for c in mesh.clusters]
    down = [r.cluster for r in results if r.failed]
    up = [c for c in mesh.clusters if c.name not in down]

    def per_cluster(check: str, probe: Callable[[ClusterConfig, kubernetes.client.ApiClient], list[Result]]):
        return lambda: [r for c in up for r in _guarded(check, c.name, lambda: probe(c, apis[c.name]))]

    core = kubernetes.client.CoreV1Api
    apps = kubernetes.client.AppsV1Api
    custom = kubernetes.client.CustomObjectsApi
    nodeless = nodeless_clusters(apis, up)
    waited = [
        (CONTROL_PLANE, lambda c, a: check_control_plane(custom(a), mesh, c)),
        (ISTIOD, lambda c, a: check_istiod(custom(a), apps(a), mesh, c, c.name in nodeless)),
        (GATEWAY, lambda c, a: check_gateway(core(a), apps(a), c, c.name in nodeless)),
    ]
    for check, probe in waited:
        progress(f"checking {check}")
        results += _wait(check, per_cluster(check, probe), deadline, settings, progress)

    progress(f"checking {CACERTS}")
    bundles, errors = {}, []
    for cluster in up:
        try:
            bundles[cluster.name] = read_cacerts(core(apis[cluster.name]))
        except Exception as error:  # noqa: BLE001
            errors.append(Result(CACERTS, cluster.name, "Secret cacerts", FAIL, api_error(error)))
    results += check_cacerts(bundles, settings.mesh_roots) + errors

    progress(f"checking {REMOTE_SECRETS}")
    # A holder's secret is checked even when its source is down: the access check says so.
    for source, holder in remote_secret_pairs(mesh.clusters):
        if holder.name in down:
            continue
        results += _guarded(
            REMOTE_SECRETS,
            holder.name,
            lambda: [check_remote_secret(core(apis[holder.name]), holder, source, settings.request_timeout)],
        )

    progress(f"checking {ISTIOD_PEERS}")
    remote_problems = {(r.cluster, r.item): r.detail for r in results if r.check == REMOTE_SECRETS and r.failed}
    results += _wait(
        ISTIOD_PEERS,
        per_cluster(ISTIOD_PEERS, lambda c, a: check_istiod_peers(
            a, mesh, c, {item: d for (holder, item), d in remote_problems.items() if holder == c.name},
            settings.request_timeout)),
        deadline, settings, progress,
    )

    rows: list[TrafficRow] = []
    if not mesh.sample_apps:
        for check in (SAMPLE_PODS, REMOTE_ENDPOINTS, TRAFFIC):
            results.append(Result(check, "-", "-", SKIP, "mesh:sampleApps is false: no sample apps deployed"))
    else:
        progress(f"checking {SAMPLE_PODS}")
        results += _wait(
            SAMPLE_PODS, per_cluster(SAMPLE_PODS, lambda c, a: check_sample_pods(core(a), c, c.name in nodeless)),
            deadline, settings, progress,
        )
        progress(f"checking {REMOTE_ENDPOINTS}")
        results += _wait(
            REMOTE_ENDPOINTS,
            per_cluster(REMOTE_ENDPOINTS, lambda c, a: check_remote_endpoints(
                apis, mesh, c, nodeless, settings.request_timeout)),
            deadline, settings, progress,
        )
        if down:
            results.append(Result(TRAFFIC, "-", "-", SKIP, "not measured: " + ", ".join(down) + " unreachable"))
        else:
            rows = measure_traffic(mesh, exec_, settings.requests, progress)
            for row in rows:
                if row.exec_error and row.source in nodeless:
                    row.exec_error = f"{row.exec_error}; {NO_NODE}"
            results += [traffic_result(row, mesh) for row in rows]
    return Report(results, rows, settings.requests, expected_versions(mesh))
