"""Bad configuration fails before any resource, naming the key, the value and what is accepted."""

from __future__ import annotations

import copy
import json

import pulumi
import pytest

from mesh import config
from mesh import program

from . import engine_mocks


def test_east_west_stack_config_is_valid(east_west):
    cfg = config.parse(east_west)
    assert cfg.mesh_id == "mesh1"
    assert [(c.name, c.cluster_name, c.network) for c in cfg.clusters] == [
        ("east", "cluster1", "network1"),
        ("west", "cluster2", "network2"),
    ]
    assert cfg.ready_timeout_seconds == 600
    assert cfg.certificates.rsa_bits == 4096
    assert cfg.certificates.intermediate_validity_hours == 87600


def mutate(raw: dict, path: str, value):
    raw = copy.deepcopy(raw)
    target = raw
    keys = path.split(".")
    for key in keys[:-1]:
        target = target[int(key)] if key.isdigit() else target[key]
    last = keys[-1]
    if value is DELETE:
        del target[int(last) if last.isdigit() else last]
    elif last.isdigit():
        target[int(last)] = value
    else:
        target[last] = value
    return raw


DELETE = object()

BAD = [
    # (path to change, new value, fragments the message must contain)
    ("meshId", DELETE, ["mesh:meshId", "missing"]),
    ("istioVersion", DELETE, ["mesh:istioVersion", "missing"]),
    ("clusters", DELETE, ["mesh:clusters", "missing"]),
    ("surprise", 1, ["mesh:surprise", "unknown key", "meshId"]),
    ("clusters.0.zone", "a", ["mesh:clusters[0].zone", "unknown key", "clusterName"]),
    ("clusters.0.name", "East", ["mesh:clusters[0].name", "'East'", "DNS-1123 label"]),
    ("clusters.1.network", "network 2", ["mesh:clusters[1].network", "'network 2'", "DNS-1123"]),
    (
        "clusters.1.clusterName",
        "cluster1",
        ["mesh:clusters[1].clusterName", "'cluster1'", "already used", "clusters[0]"],
    ),
    ("clusters.1.name", "east", ["mesh:clusters[1].name", "'east'", "already used"]),
    ("clusters.1.network", "network1", ["mesh:clusters[1].network", "'network1'", "already used"]),
    ("clusters.0.clusterName", DELETE, ["mesh:clusters[0].clusterName", "missing"]),
    ("clusters.0.apiServerUrl", "api.east:6443", ["mesh:clusters[0].apiServerUrl", "'api.east:6443'", "https://"]),
    ("clusters.0.apiServerUrl", "https://api.east:64x3", ["mesh:clusters[0].apiServerUrl", "numeric port"]),
    ("clusters.0.context", "nowhere", ["mesh:clusters[0].context", "'nowhere'", "east, west"]),
    (
        "clusters.0.kubeconfig",
        "/does/not/exist",
        ["mesh:clusters[0].kubeconfig", "/does/not/exist", "existing kubeconfig"],
    ),
    ("clusters.0.helloworldVersion", "v3", ["mesh:clusters[0].helloworldVersion", "'v3'", "v1, v2"]),
    ("clusters.0.egressCidrs", ["10.0.0.1/8"], ["mesh:clusters[0].egressCidrs[0]", "CIDR"]),
    ("istioVersion", "1.28", ["mesh:istioVersion", "'1.28'", "v1.30.3"]),
    ("istioVersion", "v1.30", ["mesh:istioVersion", "'v1.30'", "v1.30-latest", "Sail operator lists"]),
    ("updateStrategy", "Rolling", ["mesh:updateStrategy", "'Rolling'", "InPlace, RevisionBased"]),
    ("readerAccess", "admin", ["mesh:readerAccess", "'admin'", "istio-reader, cluster-reader"]),
    ("readyTimeout", "soon", ["mesh:readyTimeout", "'soon'", "'10m'"]),
    ("sampleApps", "yes", ["mesh:sampleApps", "'yes'", "true or false"]),
    ("certificates", {"rsaBits": 1024}, ["mesh:certificates.rsaBits", "1024", "2048, 3072, 4096"]),
    ("certificates", {"keyAlgorithm": "DSA"}, ["mesh:certificates.keyAlgorithm", "'DSA'", "RSA, ECDSA"]),
    (
        "certificates",
        {"intermediateValidityHours": 100, "intermediateEarlyRenewalHours": 101},
        ["mesh:certificates.intermediateEarlyRenewalHours", "101", "at most intermediateValidityHours (100)"],
    ),
    (
        "certificates",
        {"rootValidityHours": 10, "intermediateValidityHours": 20},
        ["mesh:certificates.intermediateValidityHours", "20", "cannot outlive"],
    ),
    (
        "certificates",
        {"rootRotation": "swap", "rootGeneration": 1},
        ["mesh:certificates.rootRotation", "'swap'", "trust, sign, retire"],
    ),
    ("certificates", {"rootRotation": "trust"}, ["mesh:certificates.rootGeneration", "0", "1 or more"]),
    ("certificates", {"rootGeneration": -1}, ["mesh:certificates.rootGeneration", "-1", "0 or more"]),
    (
        "certificates",
        {"rootRotationWaitHours": "a day"},
        ["mesh:certificates.rootRotationWaitHours", "'a day'", "0 or more"],
    ),
    # istioValues: what the program sets, mesh-wide or per cluster, and the shape
    (
        "istioValues",
        {"global": {"meshID": "other"}},
        ["mesh:istioValues.global.meshID: 'other' is not accepted", "set by mesh:meshId ('mesh1')"],
    ),
    (
        "istioValues",
        {"global": {"network": "network9"}},
        ["mesh:istioValues.global.network: 'network9' is not accepted", "each cluster's mesh:clusters[i].network"],
    ),
    (
        "istioValues",
        {"global": {"multiCluster": {"clusterName": "cluster9"}}},
        [
            "mesh:istioValues.global.multiCluster.clusterName: 'cluster9' is not accepted",
            "each cluster's mesh:clusters[i].clusterName",
        ],
    ),
    (
        "clusters.0.istioValues",
        {"global": {"meshID": "mesh1"}},  # even the same value: one place sets it
        ["mesh:clusters[0].istioValues.global.meshID: 'mesh1' is not accepted", "set by mesh:meshId"],
    ),
    (
        "clusters.1.istioValues",
        {"global": {"network": "network9"}},
        [
            "mesh:clusters[1].istioValues.global.network: 'network9' is not accepted",
            "set by mesh:clusters[1].network ('network2') and cannot be overridden",
        ],
    ),
    (
        "clusters.1.istioValues",
        {"global": {"multiCluster": {"clusterName": "cluster9"}}},
        [
            "mesh:clusters[1].istioValues.global.multiCluster.clusterName: 'cluster9' is not accepted",
            "set by mesh:clusters[1].clusterName ('cluster2')",
        ],
    ),
    (
        "istioValues",
        {"pilot": {"env": {"ISTIO_MULTIROOT_MESH": "false"}}},
        [
            "mesh:istioValues.pilot.env.ISTIO_MULTIROOT_MESH: 'false' is not accepted",
            "expected 'true'",
            "root rotation",
        ],
    ),
    (
        "clusters.1.istioValues",
        {"pilot": {"env": {"AUTO_RELOAD_PLUGIN_CERTS": "1"}}},
        ["mesh:clusters[1].istioValues.pilot.env.AUTO_RELOAD_PLUGIN_CERTS: '1' is not accepted", "expected 'true'"],
    ),
    (
        "istioValues",
        {"pilot": {"env": {"PILOT_ENABLE_STATUS": False}}},
        ["mesh:istioValues.pilot.env.PILOT_ENABLE_STATUS: False is not accepted", "a string", "quote it", '"false"'],
    ),
    (
        "clusters.0.istioValues",
        {"pilot": {"env": {"PILOT_PUSH_THROTTLE": 100}}},
        ["mesh:clusters[0].istioValues.pilot.env.PILOT_PUSH_THROTTLE: 100 is not accepted", '"100"'],
    ),
    ("istioValues", ["pilot"], ["mesh:istioValues: a list of 1 item(s) is not accepted", "a mapping of Helm values"]),
    ("clusters.0.istioValues", "pilot.env.A=1", ["mesh:clusters[0].istioValues: 'pilot.env.A=1'", "a mapping"]),
    ("istioValues", {"pilot": {"env": ["A=1"]}}, ["mesh:istioValues.pilot.env: a list of 1 item(s)", "a mapping"]),
    ("istioValues", {"global": "mesh1"}, ["mesh:istioValues.global: 'mesh1' is not accepted", "a mapping"]),
]


@pytest.mark.parametrize("path,value,fragments", BAD, ids=[f"{p}={v!r}" for p, v, _ in BAD])
def test_bad_config_is_refused_with_key_value_and_accepted(east_west, path, value, fragments):
    with pytest.raises(config.ConfigError) as error:
        config.parse(mutate(east_west, path, value))
    message = str(error.value)
    for fragment in fragments:
        assert fragment in message, f"{fragment!r} not in {message!r}"


def test_fewer_than_two_clusters_is_refused(east_west):
    east_west["clusters"] = east_west["clusters"][:1]
    with pytest.raises(config.ConfigError, match=r"mesh:clusters: 1 cluster\(s\) given; .* at least two"):
        config.parse(east_west)


def test_open_gateway_is_refused_before_any_resource(east_west):
    for cluster in east_west["clusters"]:
        cluster.pop("egressCidrs")
    monitor = engine_mocks.install()
    with pytest.raises(pulumi.RunError, match="open to the whole internet") as refused:
        engine_mocks.run_stack(east_west)
    assert str(refused.value).startswith("config mesh:clusters[1].egressCidrs and mesh:gatewayExtraSourceRanges: ")
    registered = {r.type for r in monitor.registrations}
    assert registered <= {"pulumi:pulumi:Stack", "pulumi:pulumi:StackReference"}, registered


def test_inline_kubeconfig_is_accepted(east_west):
    path = east_west["clusters"][0]["kubeconfig"]
    with open(path, encoding="utf-8") as handle:
        east_west["clusters"][0]["kubeconfig"] = handle.read()
    cfg = config.parse(east_west)
    assert cfg.clusters[0].kubeconfig_is_content
    assert not cfg.clusters[1].kubeconfig_is_content


def test_stack_config_values_arrive_as_json_text(east_west):
    """Pulumi hands structured values to the program as JSON strings and scalars as text."""
    raw = {
        f"mesh:{key}": json.dumps(value) if not isinstance(value, str) else value for key, value in east_west.items()
    }
    raw["other:key"] = "not ours"
    pulumi.runtime.set_all_config(raw)
    try:
        cfg = program.stack_config()
    finally:
        pulumi.runtime.set_all_config({})
    assert cfg.sample_apps is True
    assert cfg.clusters[1].egress_cidrs == ("198.51.100.0/24",)


# --- secrets never in a message --------------------------------------------------------------

TOKEN = "eyJhbGciOiJSUzI1NiJ9.SECRET-TOKEN-VALUE"
INLINE = {
    "apiVersion": "v1",
    "kind": "Config",
    "current-context": "east",
    "clusters": [{"name": "east", "cluster": {"server": "https://api.east.example.com:6443"}}],
    "users": [{"name": "east", "user": {"token": TOKEN}}],
    "contexts": [{"name": "east", "context": {"cluster": "east", "user": "east"}}],
}


def _yaml(document) -> str:
    import yaml

    return yaml.safe_dump(document)


WRONG_SHAPES = [
    # (what the user wrote, where, what the message must still say)
    ("clusters.0.kubeconfig", INLINE, ["mesh:clusters[0].kubeconfig", "a mapping of 6 key(s)", "YAML block"]),
    ("clusters.0.kubeconfig", [INLINE], ["mesh:clusters[0].kubeconfig", "a list of 1 item(s)"]),
    ("clusters.0.kubeconfig", 12345, ["mesh:clusters[0].kubeconfig", "int (not shown)"]),
    (
        "clusters.0.kubeconfig",
        _yaml(INLINE) + "  bad: [\n",
        ["mesh:clusters[0].kubeconfig", "not shown", "kubeconfig YAML"],
    ),
    ("clusters.0.kubeconfig", "- " + json.dumps(INLINE) + "\n", ["mesh:clusters[0].kubeconfig", "kubeconfig YAML"]),
    ("clusters.0.kubeconfig", json.dumps(dict(INLINE, contexts=[])), ["mesh:clusters[0].context", "(it has none)"]),
    ("clusters.0.context", "nope", ["mesh:clusters[0].context", "'nope'", "east"]),
    ("clusters", {"east": {"kubeconfig": _yaml(INLINE)}}, ["mesh:clusters", "a mapping of 1 key(s): east"]),
    ("clusters.0", "kubeconfig: " + json.dumps(_yaml(INLINE)), ["mesh:clusters[0]", "a string of"]),
]


@pytest.mark.parametrize("path,value,fragments", WRONG_SHAPES)
def test_an_inline_kubeconfig_in_a_wrong_shape_is_never_echoed(east_west, path, value, fragments):
    raw = mutate(east_west, "clusters.0.kubeconfig", _yaml(INLINE))
    raw = mutate(raw, path, value)
    with pytest.raises(config.ConfigError) as error:
        config.parse(raw)
    message = str(error.value)
    assert TOKEN not in message and "SECRET-TOKEN" not in message, message
    for fragment in fragments:
        assert fragment in message, message


def test_a_one_line_json_kubeconfig_is_content_and_kept_out_of_reprs(east_west):
    raw = mutate(east_west, "clusters.0.kubeconfig", json.dumps(INLINE))
    cluster = config.parse(raw).clusters[0]
    assert cluster.kubeconfig_is_content and cluster.admin_server == "https://api.east.example.com:6443"
    assert TOKEN not in repr(cluster) and "SECRET-TOKEN" not in repr(config.parse(raw))


def test_a_key_set_under_the_project_namespace_is_named_with_the_fix():
    keys = {"istio-mesh:meshId": "mesh1", "mesh:istioVersion": "v1.30.3", "aws:region": "x"}
    with pytest.raises(config.ConfigError) as error:
        config.refuse_misplaced(keys, "istio-mesh")
    assert str(error.value) == (
        "config istio-mesh:meshId: set under the project's namespace, which this program does not read; "
        "expected mesh:meshId (`pulumi config set mesh:meshId ...`; without a namespace, `pulumi config set` "
        "uses the project's name, istio-mesh)"
    )
    config.refuse_misplaced({"mesh:meshId": "mesh1", "istio-mesh:other": "x"}, "istio-mesh")


def test_the_same_cluster_entered_twice_is_refused(east_west):
    raw = mutate(east_west, "clusters.1.context", "east")
    with pytest.raises(config.ConfigError) as error:
        config.parse(raw)
    assert str(error.value) == (
        "config mesh:clusters[1].context: 'east' reaches https://east.invalid:6443, as mesh:clusters[0].context "
        "'east' does: one cluster entered twice; expected a context of another cluster"
    )
    raw = mutate(east_west, "clusters.1.apiServerUrl", east_west["clusters"][0]["apiServerUrl"])
    with pytest.raises(
        config.ConfigError, match=r"mesh:clusters\[1\].apiServerUrl: .* is already used by mesh:clusters\[0\]"
    ):
        config.parse(raw)


@pytest.mark.parametrize(
    "url,fragment",
    [
        ("https://api.east.example.com:6443/?insecure=1", "without a query or fragment"),
        ("https://api.east.example.com:6443/#x", "without a query or fragment"),
    ],
)
def test_an_api_server_url_with_a_query_is_refused(east_west, url, fragment):
    with pytest.raises(config.ConfigError, match=fragment):
        config.parse(mutate(east_west, "clusters.0.apiServerUrl", url))


def test_credentials_in_an_api_server_url_are_refused_and_not_repeated(east_west):
    with pytest.raises(config.ConfigError) as error:
        config.parse(mutate(east_west, "clusters.0.apiServerUrl", "https://admin:hunter2@api.east.example.com:6443"))
    assert "hunter2" not in str(error.value)
    assert str(error.value).startswith("config mesh:clusters[0].apiServerUrl: a string of")


def test_a_path_in_the_api_server_url_is_accepted(east_west):
    url = "https://rancher.example.com/k8s/clusters/c-m-abc123"
    assert config.parse(mutate(east_west, "clusters.0.apiServerUrl", url)).clusters[0].api_server_url == url


@pytest.mark.parametrize(
    "certificates,key,algorithm",
    [
        ({"ecdsaCurve": "P384"}, "ecdsaCurve", "RSA"),
        ({"keyAlgorithm": "ECDSA", "rsaBits": 2048}, "rsaBits", "ECDSA"),
    ],
)
def test_a_setting_of_the_other_key_algorithm_is_refused_not_ignored(east_west, certificates, key, algorithm):
    with pytest.raises(config.ConfigError) as error:
        config.parse(dict(east_west, certificates=certificates))
    other = "ECDSA" if algorithm == "RSA" else "RSA"
    assert str(error.value) == (
        f"config mesh:certificates.{key}: {certificates[key]!r} is not accepted; expected no {key} while keyAlgorithm "
        f"is {algorithm!r} (the keys would be {algorithm} and it would be ignored); set keyAlgorithm: {other} to "
        f"use it, or remove {key}"
    )


# --- istioValues: Helm values passed through to every Istio resource ------------------------

USER_VALUES = {
    "pilot": {"env": {"PILOT_ENABLE_STATUS": "true", "PILOT_TRACE_SAMPLING": "1.0"}},
    "meshConfig": {
        "accessLogFile": "/dev/stdout",
        "defaultConfig": {"proxyMetadata": {"ISTIO_META_DNS_CAPTURE": "true"}},
        "extensionProviders": [{"name": "otel", "opentelemetry": {"service": "otel.observability", "port": 4317}}],
    },
    "global": {"logging": {"level": "default:info"}},
}


def test_deep_merge_merges_mappings_and_replaces_the_rest():
    from mesh.plan.control_plane import deep_merge

    base = {"a": {"b": 1, "c": [1, 2]}, "d": "x", "e": {"f": 1}}
    over = {"a": {"c": [3], "g": True}, "d": {"now": "a mapping"}, "e": None}
    before = copy.deepcopy((base, over))
    merged = deep_merge(base, over)
    assert merged == {"a": {"b": 1, "c": [3], "g": True}, "d": {"now": "a mapping"}, "e": None}
    assert (base, over) == before  # neither is changed
    merged["a"]["c"].append(4)
    assert over["a"]["c"] == [3]  # nor shared


def test_istio_values_reach_every_cluster_and_a_clusters_own_go_over_them(east_west):
    from mesh.plan.control_plane import PILOT_ENV, istio_manifest

    east_west["istioValues"] = copy.deepcopy(USER_VALUES)
    east_west["clusters"][1]["istioValues"] = {
        "pilot": {"env": {"PILOT_TRACE_SAMPLING": "10.0"}},
        "meshConfig": {"accessLogFile": "", "extensionProviders": []},
        "global": {"multiCluster": {"enabled": True}},
    }
    cfg = config.parse(east_west)
    east, west = (istio_manifest(cfg, cluster)["spec"]["values"] for cluster in cfg.clusters)
    assert east == {
        "pilot": {"env": {"PILOT_ENABLE_STATUS": "true", "PILOT_TRACE_SAMPLING": "1.0", **PILOT_ENV}},
        "meshConfig": USER_VALUES["meshConfig"],
        "global": {
            "logging": {"level": "default:info"},
            "meshID": "mesh1",
            "multiCluster": {"clusterName": "cluster1"},
            "network": "network1",
        },
    }
    assert west["pilot"]["env"] == {"PILOT_ENABLE_STATUS": "true", "PILOT_TRACE_SAMPLING": "10.0", **PILOT_ENV}
    # A list replaces, a mapping merges key by key.
    assert west["meshConfig"] == {
        "accessLogFile": "",
        "defaultConfig": {"proxyMetadata": {"ISTIO_META_DNS_CAPTURE": "true"}},
        "extensionProviders": [],
    }
    assert west["global"] == {
        "logging": {"level": "default:info"},
        "meshID": "mesh1",
        "multiCluster": {"enabled": True, "clusterName": "cluster2"},
        "network": "network2",
    }
    # The config is read, never changed, by the merge.
    assert cfg.istio_values == USER_VALUES and "ISTIO_MULTIROOT_MESH" not in cfg.istio_values["pilot"]["env"]


def test_without_istio_values_the_istio_resource_has_the_programs_own_alone(east_west):
    from mesh.plan.control_plane import PILOT_ENV, istio_manifest

    cfg = config.parse(east_west)
    assert cfg.istio_values == {} and cfg.clusters[0].istio_values == {}
    assert istio_manifest(cfg, cfg.clusters[0])["spec"]["values"] == {
        "global": {"meshID": "mesh1", "multiCluster": {"clusterName": "cluster1"}, "network": "network1"},
        "pilot": {"env": PILOT_ENV},
    }


def test_the_programs_own_env_at_its_own_value_is_accepted(east_west):
    from mesh.plan.control_plane import istio_manifest

    east_west["istioValues"] = {"pilot": {"env": {"ISTIO_MULTIROOT_MESH": "true"}}}
    east_west["clusters"][0]["istioValues"] = {"pilot": {"env": {"AUTO_RELOAD_PLUGIN_CERTS": "true"}}}
    cfg = config.parse(east_west)
    env = istio_manifest(cfg, cfg.clusters[0])["spec"]["values"]["pilot"]["env"]
    assert env == {"ISTIO_MULTIROOT_MESH": "true", "AUTO_RELOAD_PLUGIN_CERTS": "true"}


@pytest.mark.parametrize(
    "where,values,message",
    [
        (
            "istioValues",
            {"global": {"network": "network9"}},
            "config mesh:istioValues.global.network: 'network9' is not accepted; expected no global.network in "
            "istioValues: it is set by each cluster's mesh:clusters[i].network and cannot be overridden; remove it "
            "(change that key instead)",
        ),
        (
            "clusters.0.istioValues",
            {"global": {"multiCluster": {"clusterName": "c"}}},
            "config mesh:clusters[0].istioValues.global.multiCluster.clusterName: 'c' is not accepted; expected no "
            "global.multiCluster.clusterName in istioValues: it is set by mesh:clusters[0].clusterName ('cluster1') "
            "and cannot be overridden; remove it (change that key instead)",
        ),
        (
            "clusters.1.istioValues",
            {"pilot": {"env": {"ISTIO_MULTIROOT_MESH": "false"}}},
            "config mesh:clusters[1].istioValues.pilot.env.ISTIO_MULTIROOT_MESH: 'false' is not accepted; expected "
            "'true', the program's own value, or no ISTIO_MULTIROOT_MESH: istiod must take a root rotation's bundles "
            "(docs/root-rotation.md)",
        ),
        (
            "istioValues",
            {"pilot": {"env": {"PILOT_ENABLE_STATUS": False}}},
            "config mesh:istioValues.pilot.env.PILOT_ENABLE_STATUS: False is not accepted; expected a string, as every "
            "value of a container's env is (the API server refuses the Istio resource otherwise): quote it in the "
            'stack file, "false", or use `pulumi config set --path --type string`',
        ),
    ],
)
def test_istio_values_refusals_read_in_full(east_west, where, values, message):
    with pytest.raises(config.ConfigError) as error:
        config.parse(mutate(east_west, where, values))
    assert str(error.value) == message


@pytest.mark.parametrize(
    "text,path,key",
    [
        ("meshConfig:\n  1: x\n", "mesh:istioValues.meshConfig", "1"),
        ("pilot:\n  env:\n    true: x\n", "mesh:istioValues.pilot.env", "true"),
        (
            "meshConfig:\n  extensionProviders:\n    - name: a\n      2: b\n",
            "mesh:istioValues.meshConfig.extensionProviders[0]",
            "2",
        ),
    ],
)
def test_istio_values_keys_that_are_not_strings_are_refused(east_west, text, path, key):
    """YAML makes `1:` or `true:` a number or a boolean key, which Helm values cannot have (a JSON
    Schema cannot say so: its keys are always strings)."""
    import yaml

    east_west["istioValues"] = yaml.safe_load(text)
    with pytest.raises(config.ConfigError) as error:
        config.parse(east_west)
    assert str(error.value).startswith(f"config {path}: ")
    assert "keys that are strings" in str(error.value) and f'quote it in the stack file, "{key}"' in str(error.value)


def test_istio_values_arrive_as_json_text(east_west):
    """`pulumi config set --path mesh:istioValues.pilot.env.X ...` makes the key a structured value,
    which Pulumi hands to the program as JSON text; a cluster's arrive inside `mesh:clusters`."""
    east_west["istioValues"] = USER_VALUES
    east_west["clusters"][0]["istioValues"] = {"pilot": {"env": {"PILOT_TRACE_SAMPLING": "5.0"}}}
    raw = {f"mesh:{k}": json.dumps(v) if not isinstance(v, str) else v for k, v in east_west.items()}
    pulumi.runtime.set_all_config(raw)
    try:
        cfg = program.stack_config()
    finally:
        pulumi.runtime.set_all_config({})
    assert cfg.istio_values == USER_VALUES
    assert cfg.clusters[0].istio_values == {"pilot": {"env": {"PILOT_TRACE_SAMPLING": "5.0"}}}
