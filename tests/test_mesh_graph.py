"""The resource graph of whole meshes, built with Pulumi mocks (no cluster, no CLI)."""

from __future__ import annotations

import base64

import pytest
import yaml

from mesh import config
from mesh.plan.pki import CACERTS_KEYS

from . import engine_mocks


def build(raw: dict, preview: bool = False, previous_outputs: dict | None = None, secret_keys: tuple[str, ...] = ()):
    monitor = engine_mocks.install(preview=preview, previous_outputs=previous_outputs)
    outputs = engine_mocks.run_stack(raw, secret_keys)
    return config.parse(raw), monitor.registrations, outputs


def by_kind(registrations, kind, name=None, namespace=None):
    found = [
        r
        for r in registrations
        if r.kind == kind
        and (name is None or r.metadata.get("name") == name)
        and (namespace is None or r.metadata.get("namespace") == namespace)
    ]
    return found


def providers(registrations):
    """Provider URN -> cluster name, from the provider registrations themselves."""
    return {
        f"{r.urn}::{r.name}_id": r.inputs["clusterIdentifier"]
        for r in registrations
        if r.type == "pulumi:providers:kubernetes"
    }


def cluster_of(registration, provider_map):
    return provider_map[registration.provider]


@pytest.fixture(params=["east_west", "three_clusters"])
def mesh_graph(request):
    raw = request.getfixturevalue(request.param)
    return build(raw)


def test_every_kubernetes_resource_goes_through_its_own_clusters_provider(mesh_graph):
    cfg, registrations, _ = mesh_graph
    provider_map = providers(registrations)
    assert sorted(provider_map.values()) == sorted(c.name for c in cfg.clusters)
    kube = [r for r in registrations if r.type.startswith("kubernetes:")]
    assert kube, "no Kubernetes resources were registered"
    for r in kube:
        assert r.provider in provider_map, f"{r.name} has no cluster provider: {r.provider!r}"
        # The logical name starts with the cluster the object belongs to.
        assert r.name.startswith(cluster_of(r, provider_map) + "-"), r.name


def test_providers_name_kubeconfig_context_and_a_stable_identifier(east_west):
    cfg, registrations, _ = build(east_west)
    for r in registrations:
        if r.type == "pulumi:providers:kubernetes":
            cluster = next(c for c in cfg.clusters if c.name == r.inputs["clusterIdentifier"])
            assert r.inputs["context"] == cluster.context
            assert r.inputs["kubeconfig"] == cluster.kubeconfig
            # Secrets (cacerts, remote secrets) change in place instead of delete-then-create.
            assert r.inputs["enableSecretMutable"] in (True, "true")  # provider config travels as text


def test_network_label_agrees_across_namespace_istio_and_gateway(mesh_graph):
    cfg, registrations, _ = mesh_graph
    provider_map = providers(registrations)
    for cluster in cfg.clusters:
        mine = [
            r for r in registrations if r.type.startswith("kubernetes:") and cluster_of(r, provider_map) == cluster.name
        ]
        (namespace,) = by_kind(mine, "Namespace", "istio-system")
        assert namespace.metadata["labels"]["topology.istio.io/network"] == cluster.network
        (istio,) = [r for r in mine if r.type == "kubernetes:sailoperator.io/v1:Istio"]
        values = istio.inputs["spec"]["values"]["global"]
        assert values == {
            "meshID": cfg.mesh_id,
            "multiCluster": {"clusterName": cluster.cluster_name},
            "network": cluster.network,
        }
        assert istio.inputs["spec"]["version"] == cfg.istio_version
        assert istio.inputs["metadata"]["annotations"]["pulumi.com/waitFor"] == (
            '["condition=Ready", "condition=Reconciled"]'
        )
        (service,) = by_kind(mine, "Service", "istio-eastwestgateway", "istio-system")
        assert service.metadata["labels"]["topology.istio.io/network"] == cluster.network
        assert service.inputs["spec"]["selector"]["topology.istio.io/network"] == cluster.network
        (deployment,) = by_kind(mine, "Deployment", "istio-eastwestgateway", "istio-system")
        env = deployment.inputs["spec"]["template"]["spec"]["containers"][0]["env"]
        assert {"name": "ISTIO_META_REQUESTED_NETWORK_VIEW", "value": cluster.network} in env


def test_cacerts_has_four_keys_as_a_secret_and_precedes_istio(mesh_graph):
    cfg, registrations, _ = mesh_graph
    provider_map = providers(registrations)
    for cluster in cfg.clusters:
        mine = [
            r for r in registrations if r.type.startswith("kubernetes:") and cluster_of(r, provider_map) == cluster.name
        ]
        (cacerts,) = by_kind(mine, "Secret", "cacerts", "istio-system")
        assert sorted(cacerts.inputs["stringData"]) == sorted(CACERTS_KEYS)
        assert "stringData" in cacerts.secret_inputs
        data = cacerts.inputs["stringData"]
        assert data["cert-chain.pem"] == data["ca-cert.pem"] + data["root-cert.pem"]
        assert f"cert-of-{cluster.name}-intermediate-ca-cert" in data["ca-cert.pem"]
        assert "cert-of-mesh-root-ca-cert" in data["root-cert.pem"]
        (istio,) = [r for r in mine if r.type == "kubernetes:sailoperator.io/v1:Istio"]
        assert cacerts.urn in istio.dependencies
        (namespace,) = by_kind(mine, "Namespace", "istio-system")
        assert namespace.urn in cacerts.dependencies


def test_only_pods_and_istio_objects_wait_for_the_control_plane(mesh_graph):
    """Injection needs istiod for a pod, validation for an Istio API object; everything else
    waits only for the namespace it lives in (made while istiod starts)."""
    cfg, registrations, _ = mesh_graph
    provider_map = providers(registrations)
    for cluster in cfg.clusters:
        mine = [
            r for r in registrations if r.type.startswith("kubernetes:") and cluster_of(r, provider_map) == cluster.name
        ]
        (istio,) = [r for r in mine if r.type == "kubernetes:sailoperator.io/v1:Istio"]
        waiting = sorted(f"{r.kind} {r.metadata['name']}" for r in mine if istio.urn in r.dependencies)
        assert waiting == [
            "Deployment helloworld-" + cluster.helloworld_version,
            "Deployment istio-eastwestgateway",
            "Deployment sleep",
            "Gateway cross-network-gateway",
        ]
        namespaces = {r.metadata["name"]: r.urn for r in mine if r.kind == "Namespace"}
        for r in mine:
            namespace = r.metadata.get("namespace")
            if namespace in namespaces:
                assert namespaces[namespace] in waits_for(r, registrations), f"{r.name} does not wait for its namespace"


def waits_for(registration, registrations) -> set[str]:
    """The URNs `registration` waits for, directly or through what it waits for."""
    by_urn = {r.urn: r for r in registrations}
    found: set[str] = set()
    pending = list(registration.dependencies)
    while pending:
        urn = pending.pop()
        if urn not in found:
            found.add(urn)
            pending.extend(by_urn[urn].dependencies if urn in by_urn else [])
    return found


def test_istio_cni_is_managed_when_configured(east_west):
    _, registrations, _ = build(east_west)
    cnis = [r for r in registrations if r.type == "kubernetes:sailoperator.io/v1:IstioCNI"]
    assert len(cnis) == 2
    assert all(r.inputs["metadata"]["name"] == "default" and r.inputs["spec"]["namespace"] == "istio-cni" for r in cnis)
    east_west["manageIstioCni"] = False
    _, registrations, _ = build(east_west)
    assert not [r for r in registrations if r.type == "kubernetes:sailoperator.io/v1:IstioCNI"]


def test_remote_secrets_form_the_full_mesh(mesh_graph):
    cfg, registrations, outputs = mesh_graph
    provider_map = providers(registrations)
    remote = [r for r in registrations if r.kind == "Secret" and r.metadata["name"].startswith("istio-remote-secret-")]
    n = len(cfg.clusters)
    assert len(remote) == n * (n - 1)
    seen = set()
    for secret in remote:
        holder = cluster_of(secret, provider_map)
        source_name = secret.metadata["annotations"]["networking.istio.io/cluster"]
        source = next(c for c in cfg.clusters if c.cluster_name == source_name)
        assert source.name != holder, "a cluster holds a remote secret for itself"
        assert secret.metadata["name"] == f"istio-remote-secret-{source.cluster_name}"
        assert secret.metadata["namespace"] == "istio-system"
        assert secret.metadata["labels"] == {"istio/multiCluster": "true"}
        assert "stringData" in secret.secret_inputs
        assert list(secret.inputs["stringData"]) == [source.cluster_name]
        kubeconfig = yaml.safe_load(secret.inputs["stringData"][source.cluster_name])
        assert kubeconfig["current-context"] == source.cluster_name
        assert kubeconfig["clusters"][0]["cluster"]["server"] == source.api_server_url
        token = kubeconfig["users"][0]["user"]["token"]
        # The token is the one the SOURCE cluster's token controller issued.
        assert token == engine_mocks.FAKE_TOKEN_PREFIX + f"{source.name}-secret-istio-system-istio-mesh-reader-token"
        ca = base64.b64decode(kubeconfig["clusters"][0]["cluster"]["certificate-authority-data"]).decode()
        assert f"{source.name}-secret-istio-system-istio-mesh-reader-token-apiserver-ca" in ca
        seen.add((source.name, holder))
    assert len(seen) == n * (n - 1)
    for cluster in cfg.clusters:
        expected = sorted(f"istio-remote-secret-{c.cluster_name}" for c in cfg.clusters if c is not cluster)
        assert outputs["clusters"][cluster.name]["remoteSecrets"] == expected


def test_reader_uses_its_own_names_and_least_privilege(east_west):
    _, registrations, _ = build(east_west)
    names = {r.metadata.get("name") for r in registrations if r.type.startswith("kubernetes:")}
    assert "istio-reader-service-account" not in names
    roles = by_kind(registrations, "ClusterRole", "istio-mesh-reader")
    assert len(roles) == 2
    verbs = {verb for rule in roles[0].inputs["rules"] for verb in rule["verbs"]}
    assert verbs == {"get", "list", "watch", "create"}
    tokens = [
        r for r in registrations if r.kind == "Secret" and r.inputs.get("type") == "kubernetes.io/service-account-token"
    ]
    assert len(tokens) == 2
    for token in tokens:
        assert token.metadata["name"] == "istio-mesh-reader-token-a1b2c3"
        assert token.metadata["annotations"]["kubernetes.io/service-account.name"] == "istio-mesh-reader"
        assert token.metadata["annotations"]["pulumi.com/waitFor"] == "jsonpath={.data.token}"


def test_cluster_reader_option_binds_openshift_role(east_west):
    east_west["readerAccess"] = "cluster-reader"
    _, registrations, _ = build(east_west)
    assert not by_kind(registrations, "ClusterRole", "istio-mesh-reader")
    for binding in by_kind(registrations, "ClusterRoleBinding", "istio-mesh-reader"):
        assert binding.inputs["roleRef"]["name"] == "cluster-reader"


def test_samples_follow_the_configured_versions(east_west):
    cfg, registrations, _ = build(east_west)
    provider_map = providers(registrations)
    deployments = {
        (cluster_of(r, provider_map), r.metadata["name"])
        for r in by_kind(registrations, "Deployment", namespace="sample")
    }
    assert deployments == {("east", "helloworld-v1"), ("east", "sleep"), ("west", "helloworld-v2"), ("west", "sleep")}
    for namespace in by_kind(registrations, "Namespace", "sample"):
        assert namespace.metadata["labels"] == {"istio-injection": "enabled"}
    assert len(by_kind(registrations, "Service", "helloworld", "sample")) == 2
    east_west["sampleApps"] = False
    _, registrations, _ = build(east_west)
    assert not by_kind(registrations, "Deployment", namespace="sample")


def test_outputs_hold_no_secret_in_plain_form(mesh_graph):
    cfg, registrations, outputs = mesh_graph
    text = repr(outputs)
    assert "PRIVATE KEY" not in text
    assert engine_mocks.FAKE_TOKEN_PREFIX not in text
    assert outputs["meshId"] == cfg.mesh_id
    assert outputs["rootCertificate"] == engine_mocks.fake_cert("mesh-root-ca-cert")
    for cluster in cfg.clusters:
        out = outputs["clusters"][cluster.name]
        assert out["clusterName"] == cluster.cluster_name
        assert out["network"] == cluster.network
        assert out["gatewayAddress"] == "192.0.2.10"


def test_private_keys_are_secret_and_root_is_protected(east_west):
    _, registrations, _ = build(east_west)
    keys = [r for r in registrations if r.type == "tls:index/privateKey:PrivateKey"]
    assert len(keys) == 3
    signing = [r for r in registrations if r.type == "tls:index/locallySignedCert:LocallySignedCert"]
    assert len(signing) == 2
    for cert in signing:
        assert "caPrivateKeyPem" in cert.secret_inputs
        assert cert.inputs["isCaCertificate"] is True
    (root,) = [r for r in registrations if r.type == "tls:index/selfSignedCert:SelfSignedCert"]
    assert root.inputs["maxPathLength"] == 1
    assert root.inputs["isCaCertificate"] is True
    assert root.inputs["subject"] == {"organization": "Istio", "commonName": "Root CA"}
    assert "privateKeyPem" in root.secret_inputs
    # Protected: the root and its key, as the engine is asked to; nothing else of the PKI.
    root_key = next(k for k in keys if k.parent == root.parent)
    assert (root.protect, root_key.protect) == (True, True)
    assert [k.protect for k in keys if k is not root_key] == [False, False]
    assert [c.protect for c in signing] == [False, False]


def test_no_kubernetes_resource_without_a_provider_even_in_preview(east_west):
    _, registrations, _ = build(east_west, preview=True)
    provider_map = providers(registrations)
    for r in registrations:
        if r.type.startswith("kubernetes:"):
            assert r.provider in provider_map


ROOT_SETTINGS = {"keyAlgorithm": "RSA", "rsaBits": 4096, "rootValidityHours": 87600}


def test_root_state_is_exported_and_an_unchanged_root_passes(east_west):
    _, _, outputs = build(east_west)
    state = outputs["rootCertificateAuthority"]
    assert (state["generation"], state["phase"], state["settings"]) == (0, "steady", {"0": ROOT_SETTINGS})
    _, registrations, again = build(east_west, previous_outputs={"rootCertificateAuthority": state})
    assert [r for r in registrations if r.type == "tls:index/selfSignedCert:SelfSignedCert"]
    assert again["rootCertificateAuthority"] == state


@pytest.mark.parametrize(
    "previous",
    [
        {"rootSettings": ROOT_SETTINGS},  # a stack made before root rotation existed
        {
            "rootCertificateAuthority": {
                "generation": 0,
                "phase": "steady",
                "since": "2026-01-01T00:00:00Z",
                "settings": {"0": ROOT_SETTINGS},
            }
        },
    ],
)
@pytest.mark.parametrize(
    "change,key",
    [
        ({"rsaBits": 2048}, "rsaBits"),
        ({"rootValidityHours": 175200}, "rootValidityHours"),
        ({"keyAlgorithm": "ECDSA"}, "keyAlgorithm"),
    ],
)
def test_a_change_of_root_settings_is_refused_before_the_root_is_touched(east_west, change, key, previous):
    east_west["certificates"] = change
    monitor = engine_mocks.install(previous_outputs=previous)
    with pytest.raises(Exception) as error:
        engine_mocks.run_stack(east_west)
    message = str(error.value)
    assert f"mesh:certificates.{key}" in message and "docs/root-rotation.md" in message, message
    # Refused at the program's entry, before anything but the stack and the read of its own
    # outputs (a read, which makes nothing): no component, provider, key or cluster object.
    registered = {r.type for r in monitor.registrations}
    assert registered <= {"pulumi:pulumi:Stack", "pulumi:pulumi:StackReference"}, registered


def test_the_istio_resource_carries_the_users_values_and_still_the_programs_own(east_west):
    """`istioValues` (mesh-wide, then a cluster's) reach each cluster's `Istio` resource; the
    program's identity and istiod env are still there."""
    east_west["istioValues"] = {
        "pilot": {"env": {"PILOT_ENABLE_STATUS": "true"}},
        "meshConfig": {"accessLogFile": "/dev/stdout"},
        "telemetry": {"enabled": False},
    }
    east_west["clusters"][1]["istioValues"] = {"meshConfig": {"accessLogFile": "/dev/null"}}
    cfg, registrations, _ = build(east_west)
    provider_map = providers(registrations)
    istios = {
        cluster_of(r, provider_map): r.inputs["spec"]["values"]
        for r in registrations
        if r.type == "kubernetes:sailoperator.io/v1:Istio"
    }
    assert sorted(istios) == ["east", "west"]
    for cluster in cfg.clusters:
        values = istios[cluster.name]
        assert values["pilot"]["env"] == {
            "PILOT_ENABLE_STATUS": "true",
            "AUTO_RELOAD_PLUGIN_CERTS": "true",
            "ISTIO_MULTIROOT_MESH": "true",
        }
        assert values["global"] == {
            "meshID": cfg.mesh_id,
            "multiCluster": {"clusterName": cluster.cluster_name},
            "network": cluster.network,
        }
        assert values["telemetry"] == {"enabled": False}
    assert istios["east"]["meshConfig"] == {"accessLogFile": "/dev/stdout"}
    assert istios["west"]["meshConfig"] == {"accessLogFile": "/dev/null"}


def test_revision_based_updates_point_workloads_at_the_active_revision_through_the_default_tag(east_west):
    _, registrations, _ = build(east_west)
    assert not [r for r in registrations if r.kind == "IstioRevisionTag"]  # InPlace: one revision, `default`
    east_west["updateStrategy"] = "RevisionBased"
    cfg, registrations, _ = build(east_west)
    provider_map = providers(registrations)
    for cluster in cfg.clusters:
        mine = [
            r for r in registrations if r.type.startswith("kubernetes:") and cluster_of(r, provider_map) == cluster.name
        ]
        (istio,) = [r for r in mine if r.kind == "Istio"]
        assert istio.inputs["spec"]["updateStrategy"] == {"type": "RevisionBased"}
        (tag,) = [r for r in mine if r.kind == "IstioRevisionTag"]
        assert tag.inputs["metadata"]["name"] == "default"
        assert tag.inputs["spec"] == {"targetRef": {"kind": "Istio", "name": "default"}}
        assert istio.urn in tag.dependencies
        # The injected workloads wait for the tag, whose webhook resolves their `default` labels.
        waiting = sorted(f"{r.kind} {r.metadata['name']}" for r in mine if tag.urn in r.dependencies)
        assert waiting == [
            "Deployment helloworld-" + cluster.helloworld_version,
            "Deployment istio-eastwestgateway",
            "Deployment sleep",
            "Gateway cross-network-gateway",
        ]


def test_a_running_istio_keeps_its_update_strategy(east_west):
    from mesh.plan.control_plane import update_strategy_refusal

    cfg = config.parse(east_west)
    in_place = {"spec": {"updateStrategy": {"type": "InPlace"}}}
    assert update_strategy_refusal(cfg, {"east": in_place, "west": None}) is None
    assert update_strategy_refusal(cfg, {"east": {"spec": {}}}) is None  # the CRD's default: InPlace
    east_west["updateStrategy"] = "RevisionBased"
    cfg = config.parse(east_west)
    assert update_strategy_refusal(cfg, {"east": None, "west": None}) is None  # nothing runs yet
    message = update_strategy_refusal(cfg, {"east": in_place, "west": None})
    assert message.startswith("config mesh:updateStrategy: 'RevisionBased': the Istio resource on east runs InPlace")
    assert "Nothing was changed" in message


def test_a_clusters_remote_secrets_wait_until_it_serves(mesh_graph):
    """The other clusters learn a cluster's endpoints (their remote secret for it) only once its
    east-west gateway and its workloads are Ready: a cluster joining a running mesh is not routed
    to before its gateway can carry the requests (found in the lab: requests reset at the new
    cluster's gateway); on removal the secrets go first."""
    cfg, registrations, _ = mesh_graph
    provider_map = providers(registrations)
    names = {c.cluster_name: c.name for c in cfg.clusters}
    for secret in [r for r in registrations if r.kind == "Secret" and r.metadata["name"].startswith("istio-remote-")]:
        source = names[secret.metadata["annotations"]["networking.istio.io/cluster"]]
        waited = waits_for(secret, registrations)
        theirs = {
            f"{r.kind} {r.metadata['name']}"
            for r in registrations
            if r.type.startswith("kubernetes:") and cluster_of(r, provider_map) == source and r.urn in waited
        }
        serving = next(c for c in cfg.clusters if c.name == source)
        for needed in (
            "Deployment istio-eastwestgateway",
            "Service istio-eastwestgateway",
            "Gateway cross-network-gateway",
            "Deployment helloworld-" + serving.helloworld_version,
            "Deployment sleep",
        ):
            assert needed in theirs, f"{secret.name} does not wait for {source}'s {needed}"
