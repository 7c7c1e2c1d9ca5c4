"""Stack configuration: every `mesh:` key, read and checked once, before anything is registered.

Pulumi-free: the program's entry hands it the stack's config (`mesh.program`), `mesh verify`
a stack file. Everything else works from the frozen model and never reads config itself.

- `schema`: the table of keys (kinds, defaults, meanings), written once;
- `kinds`: what each kind of value accepts; `rules`: checks that span keys;
- `parse`: the walk that applies them; `kubeconfig`: reading a cluster's kubeconfig;
- `errors`: how a refusal is told, a secret never shown; `docs`: docs/configuration.md's tables, JSON Schema;
- `istio_values`: what the program writes into every `Istio` resource, which `istioValues` may not change.
"""

from .errors import NAMESPACE, ConfigError, shown
from .model import CertificateConfig, ClusterConfig, MeshConfig, VaultConfig
from .parse import mesh_keys, parse, refuse_misplaced
from .schema import (
    ECDSA_CURVES,
    HELLOWORLD_VERSIONS,
    KEY_ALGORITHMS,
    READER_ACCESS,
    ROOT_ROTATION_PHASES,
    RSA_BITS,
    UPDATE_STRATEGIES,
)

__all__ = [
    "NAMESPACE",
    "ConfigError",
    "shown",
    "CertificateConfig",
    "ClusterConfig",
    "MeshConfig",
    "VaultConfig",
    "mesh_keys",
    "parse",
    "refuse_misplaced",
    "ECDSA_CURVES",
    "HELLOWORLD_VERSIONS",
    "KEY_ALGORITHMS",
    "READER_ACCESS",
    "ROOT_ROTATION_PHASES",
    "RSA_BITS",
    "UPDATE_STRATEGIES",
]
