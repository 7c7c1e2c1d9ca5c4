"""What the program writes into every `Istio` resource's `spec.values`, which a user's
`istioValues` (mesh-wide, or a cluster's) may not change: the cluster's identity in the mesh and
the istiod environment renewal and root rotation depend on.

Plain data, used three ways: the kind of `istioValues` (`kinds.ISTIO_VALUES`: its shape and
JSON Schema), the rule that refuses an owned key (`rules.istio_values`), and the manifest
(`mesh/plan/control_plane.py`), which writes these over the user's values.
"""

from __future__ import annotations

# istiod's environment, which renewal and root rotation depend on:
PILOT_ENV = {
    # istiod re-reads `cacerts` when it changes, so a renewed intermediate takes effect without a
    # restart (the default since Istio 1.18; explicit here because renewal depends on it).
    "AUTO_RELOAD_PLUGIN_CERTS": "true",
    # Without it istiod refuses any change of `root-cert.pem` ("Multi root is disabled, updating
    # new ROOT-CA not supported", pilot/pkg/bootstrap/istio_ca.go) and keeps the old bundle until
    # restarted, so a root rotation's trust and retire steps never reach it. With it, istiod takes
    # a bundle that adds roots to the current one or drops some (exactly those two steps) and
    # pushes it to workloads. Found by the lab's real istiod (tests/integration/test_lab_root_rotation.py).
    "ISTIO_MULTIROOT_MESH": "true",
}

# Why each entry of PILOT_ENV may not change, for the refusal.
PILOT_ENV_REASONS = {
    "AUTO_RELOAD_PLUGIN_CERTS": "istiod must reload a renewed or rotated cacerts without a restart",
    "ISTIO_MULTIROOT_MESH": "istiod must take a root rotation's bundles (docs/root-rotation.md)",
}

# The path of each `spec.values` key the program sets from a key of its own config, and that key
# (`[i]`: each cluster's).
OWNED_GLOBALS = (
    (("global", "meshID"), "meshId"),
    (("global", "multiCluster", "clusterName"), "clusters[i].clusterName"),
    (("global", "network"), "clusters[i].network"),
)

# Keys under which the program writes: a user's value there must be a mapping to merge into.
MAPPINGS = (("global",), ("global", "multiCluster"), ("pilot",), ("pilot", "env"))
ENV = ("pilot", "env")
