"""Every `mesh:` config key, once: its kind, default and meaning.

This table drives the parser (`mesh/config/parse.py`: unknown keys, missing keys, defaults,
checks), docs/configuration.md's tables and the JSON Schema users point their editor at
(`mesh/config/docs.py`; `tests/test_config_docs.py` keeps both equal to it). Checks that span
keys are in `mesh/config/rules.py`, hooked in per section here.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Callable, Optional, Union

from . import kinds, rules
from .errors import NAMESPACE
from .model import CertificateConfig, ClusterConfig, FailoverConfig, MeshConfig, VaultConfig

REQUIRED = object()

# trust: a new root is trusted beside the old one; sign: the intermediates are signed by the new
# root, both still trusted; retire: only the new root is trusted. docs/root-rotation.md.
ROOT_ROTATION_PHASES = ("trust", "sign", "retire")
UPDATE_STRATEGIES = ("InPlace", "RevisionBased")
FAILOVER_MODES = ("spread", "local-first")
READER_ACCESS = ("istio-reader", "cluster-reader")
KEY_ALGORITHMS = ("RSA", "ECDSA")
RSA_BITS = (2048, 3072, 4096)
ECDSA_CURVES = ("P256", "P384", "P521")
HELLOWORLD_VERSIONS = ("v1", "v2")
# Who issues and renews the intermediates: pulumi-tls on `up`, or cert-manager on each cluster.
CERTIFICATE_BACKENDS = ("pulumi-tls", "cert-manager")
# cert-manager's issuer of the intermediates: a CA issuer holding the stack's root, or a Vault PKI
# mount holding a root the stack never sees.
CERTIFICATE_ISSUERS = ("ca", "vault")


@dataclass(frozen=True)
class Key:
    name: str
    """As written in the stack file, after `mesh:` or its parent key."""
    kind: Union[kinds.Kind, "Section", "ListOf"]
    doc: str
    default: Any = REQUIRED
    """The value when the key is absent; None where a rule of the section fills it in."""
    shown_default: Optional[str] = None
    """How docs/configuration.md shows the default, where the value alone would not say it."""
    field: Optional[str] = None
    """The model's field; the key's name in snake_case unless given."""

    @property
    def attribute(self) -> str:
        return self.field or re.sub(r"(?<!^)(?=[A-Z])", "_", self.name).lower()


@dataclass(frozen=True)
class Section:
    """An object of keys, parsed into `model`; `finish` checks what spans its keys."""

    keys: tuple[Key, ...]
    model: type
    finish: Optional[Callable[..., dict[str, Any]]] = None


@dataclass(frozen=True)
class ListOf:
    item: Section
    least: int
    accepted: str
    too_few: str
    """The refusal of a shorter list, given its length: `{count} ...`."""


VAULT = Section(
    (
        Key("server", kinds.VAULT_SERVER, "Vault's address as cert-manager on each cluster reaches it", None, "unset"),
        Key("path", kinds.VAULT_SIGN_PATH, "the PKI mount's sign-intermediate path", None, "unset"),
        Key(
            "caBundle",
            kinds.CA_BUNDLE,
            "PEM of the CA that signed Vault's serving certificate",
            None,
            "the system's CAs",
        ),
        Key(
            "rootCertificate",
            kinds.ROOT_CERTIFICATE,
            "the root at the top of the mount's chain (PEM): the mesh's root, pinned; checked against the "
            "mount's `ca_chain` before anything changes",
            None,
            "unset",
        ),
        Key(
            "token",
            kinds.SECRET_TEXT,
            "a Vault token that may `update` `path`; or use `kubernetesRole`",
            None,
            "unset",
        ),
        Key(
            "kubernetesRole",
            kinds.TEXT,
            "the role cert-manager logs in as on each cluster's Kubernetes auth mount (`vaultAuthPath`); or use `token`",
            None,
            "unset",
        ),
        Key(
            "certManagerServiceAccount",
            kinds.SERVICE_ACCOUNT,
            "cert-manager's controller, allowed to request the issuer's service account tokens (`kubernetesRole`)",
            "cert-manager/cert-manager",
        ),
    ),
    VaultConfig,
)

CERTIFICATES = Section(
    (
        Key(
            "backend",
            kinds.choice(*CERTIFICATE_BACKENDS),
            "who issues and renews each cluster's intermediate: pulumi-tls on `up`, or cert-manager on the cluster, "
            "from the mesh's root (docs/certificates.md)",
            "pulumi-tls",
        ),
        Key(
            "issuer",
            kinds.choice(*CERTIFICATE_ISSUERS),
            "with `backend: cert-manager`: a CA issuer from the stack's root (its key in a Secret on every cluster), "
            "or a Vault PKI mount (the root stays in Vault; `vault` below)",
            "ca",
        ),
        Key("vault", VAULT, "the Vault PKI mount, with `issuer: vault` (keys below)", {}),
        Key("keyAlgorithm", kinds.choice(*KEY_ALGORITHMS), "algorithm of every CA key", "RSA"),
        Key("rsaBits", kinds.choice(*RSA_BITS), "RSA key size (only with `keyAlgorithm: RSA`)", 4096),
        Key("ecdsaCurve", kinds.choice(*ECDSA_CURVES), "ECDSA curve (only with `keyAlgorithm: ECDSA`)", "P256"),
        Key("rootValidityHours", kinds.POSITIVE, "root lifetime (Istio's tools: 3650 days)", 3650 * 24),
        Key("intermediateValidityHours", kinds.POSITIVE, "intermediate lifetime, at most the root's", 3650 * 24),
        Key(
            "intermediateEarlyRenewalHours",
            kinds.NON_NEGATIVE,
            "reissue an intermediate on the first `up` this many hours before it expires (equal to its validity: "
            "on every `up`)",
            0,
        ),
        Key("rootGeneration", kinds.NON_NEGATIVE, "which root signs; one higher for each root rotation", 0),
        Key(
            "rootRotation",
            kinds.choice(*ROOT_ROTATION_PHASES),
            "phase of a root rotation in progress (docs/root-rotation.md)",
            None,
            "unset",
        ),
        Key(
            "rootRotationWaitHours",
            kinds.NON_NEGATIVE,
            "least time between rotation phases (the workload certificate lifetime)",
            24,
        ),
    ),
    CertificateConfig,
    rules.certificates,
)

FAILOVER = Section(
    (
        Key(
            "services",
            kinds.SERVICES,
            "the Services (`<name>.<namespace>`) that get a DestinationRule with outlier detection and locality "
            "failover on every cluster; refused beside a DestinationRule istiod would use instead; empty: off "
            '(docs/operations.md, "Failover")',
            (),
            "`[]` (off)",
        ),
        Key(
            "mode",
            kinds.choice(*FAILOVER_MODES),
            "while all is healthy, `spread`: requests go to every cluster (active-active); `local-first`: each "
            "cluster's requests stay on its own endpoints (Istio's locality failover); a failing cluster is taken "
            "out either way",
            "spread",
        ),
        Key(
            "consecutiveErrors",
            kinds.POSITIVE,
            "errors in a row (5xx, connect failures, resets) after which an endpoint is ejected",
            3,
        ),
        Key(
            "interval",
            kinds.DURATION,
            "how often Envoy's outlier detection sweeps",
            1,
            "`1s`",
            field="interval_seconds",
        ),
        Key(
            "baseEjectionTime",
            kinds.DURATION,
            "how long an ejected endpoint stays out (longer each time it is ejected again)",
            30,
            "`30s`",
            field="base_ejection_seconds",
        ),
        Key(
            "connectTimeout",
            kinds.DURATION,
            "how long a sidecar waits for a connection (Istio's default is 10 s: a gateway that stopped answering "
            "holds each request that long)",
            1,
            "`1s`",
            field="connect_timeout_seconds",
        ),
    ),
    FailoverConfig,
)

CLUSTER = Section(
    (
        Key("name", kinds.LABEL, "names the provider and the resources (`east`); unique"),
        Key(
            "kubeconfig",
            kinds.KUBECONFIG,
            "a file path, or the kubeconfig document itself (kept secret)",
            None,
            "`$KUBECONFIG` or `~/.kube/config`",
        ),
        Key(
            "context",
            kinds.TEXT,
            "context in that kubeconfig; it must exist, and no two entries may reach the same API server",
        ),
        Key("clusterName", kinds.LABEL, "Istio `multiCluster.clusterName`; unique (`cluster1`)"),
        Key("network", kinds.LABEL, "Istio network and the `topology.istio.io/network` label; unique (`network1`)"),
        Key(
            "apiServerUrl",
            kinds.API_SERVER_URL,
            "URL the OTHER clusters' istiod use to reach this API server; unique; a path is fine (Rancher), a "
            "query, fragment or user/password is refused",
        ),
        Key(
            "helloworldVersion",
            kinds.choice(*HELLOWORLD_VERSIONS),
            "which helloworld runs here",
            None,
            "`v1` for the 1st, `v2` for the 2nd, …",
        ),
        Key(
            "egressCidrs", kinds.CIDRS, "ranges this cluster's traffic leaves from; the peers' gateways admit them", ()
        ),
        Key(
            "vaultAuthPath",
            kinds.VAULT_AUTH_PATH,
            "Vault's Kubernetes auth mount for this cluster, with `certificates.vault.kubernetesRole`; unique",
            None,
            "unset",
        ),
        Key(
            "istioValues",
            kinds.ISTIO_VALUES,
            "Helm values for this cluster's `Istio` resource, deep-merged over the mesh-wide `istioValues` "
            '(docs/operations.md, "Istio\'s own settings")',
            {},
        ),
    ),
    ClusterConfig,
    rules.cluster,
)

MESH = Section(
    (
        Key(
            "clusters",
            ListOf(
                CLUSTER, 2, "a list of clusters", "{count} cluster(s) given; a multicluster mesh needs at least two"
            ),
            "at least two clusters (keys below)",
        ),
        Key("meshId", kinds.LABEL, "Istio `meshID`"),
        Key(
            "istioVersion",
            kinds.ISTIO_VERSION,
            "`spec.version` of `Istio`/`IstioCNI`; checked before anything changes against the `spec.version` enum of each reachable cluster's Sail CRDs (the operator installed there)",
        ),
        Key("updateStrategy", kinds.choice(*UPDATE_STRATEGIES), "the `Istio` resource's update strategy", "InPlace"),
        Key(
            "istioValues",
            kinds.ISTIO_VALUES,
            "Helm values deep-merged into every cluster's `Istio` resource (`spec.values`): `pilot.env`, `meshConfig`, "
            "…; not the program's own (docs/operations.md, \"Istio's own settings\")",
            {},
        ),
        Key(
            "manageIstioCni", kinds.BOOLEAN, "create `istio-cni` and the `IstioCNI` resource (OpenShift needs it)", True
        ),
        Key("sampleApps", kinds.BOOLEAN, "deploy the article's helloworld and sleep apps in namespace `sample`", False),
        Key(
            "readerAccess",
            kinds.choice(*READER_ACCESS),
            "rights of the remote reader: Istio's least-privilege reader rules, or OpenShift's `cluster-reader` "
            "(what the article binds)",
            "istio-reader",
        ),
        Key(
            "readyTimeout",
            kinds.DURATION,
            "how long `up` waits for `Istio`/`IstioCNI` Ready, a gateway address, a token",
            600,
            "`10m`",
            field="ready_timeout_seconds",
        ),
        Key(
            "awaitWorkloads",
            kinds.BOOLEAN,
            "wait for Deployments to roll out and Services to get endpoints; `false` where no pods can run",
            True,
        ),
        Key("certificates", CERTIFICATES, "the mesh's CAs (keys below)", {}),
        Key(
            "gatewayExtraSourceRanges",
            kinds.CIDRS,
            "CIDRs admitted to every east-west gateway besides the peers' `egressCidrs`",
            (),
        ),
        Key(
            "gatewayAllowOpenToInternet",
            kinds.BOOLEAN,
            "accept a gateway with no source ranges or with `0.0.0.0/0`",
            False,
        ),
        Key("readerTokenRotation", kinds.ROTATION, "change it to rotate every reader token", "1"),
        Key("failover", FAILOVER, "outlier detection and locality failover for chosen Services (keys below)", {}),
    ),
    MeshConfig,
    rules.mesh,
)

ROOT = f"{NAMESPACE}:"
