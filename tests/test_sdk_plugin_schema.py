"""The SDKs users install and the plugins the tests run agree on everything the program uses.

requirements.txt pins the released SDKs (pulumi-kubernetes 4.34.2, pulumi-tls 5.6.2, ...); this
machine can only build other plugin versions (toolchain/versions.env), which the engine takes
from PATH whatever version the SDK asks for. That is safe only where the two agree, so: the
program runs under mocks (as in test_mesh_graph) and every resource type it registers, every
input it sends, every output it reads and every provider setting it gives is looked up in the
SDK's own classes and in the schema the plugin itself serves (`pulumi package get-schema`,
the real CLI asking the real plugin). Each must exist in both, with the same type.
"""

from __future__ import annotations

import ast
import functools
import json
import os
import shutil
import subprocess
import sys
import typing
from collections.abc import Awaitable, Mapping, Sequence

import pytest

from lab.stack import REPO, VENV
from lab.toolchain import versions

from . import engine_mocks

pytestmark = pytest.mark.toolchain  # the built plugins' schemas (`pulumi package get-schema`)

PACKAGES = {
    "kubernetes": "PULUMI_KUBERNETES_SDK_VERSION",
    "tls": "PULUMI_TLS_SDK_VERSION",
    "random": "PULUMI_RANDOM_SDK_VERSION",
}
PRIMITIVES = {str: "string", int: "integer", bool: "boolean", float: "number"}


# --- what the program uses ---------------------------------------------------------------


@pytest.fixture(scope="module")
def registrations(tmp_path_factory):
    """Every registration of the east-west stack (sample apps on, CNI managed) under mocks."""
    from .conftest import stack_config, write_kubeconfig

    raw = stack_config("east-west")
    kubeconfig = write_kubeconfig(tmp_path_factory.mktemp("kube") / "config", [c["context"] for c in raw["clusters"]])
    for cluster in raw["clusters"]:
        cluster["kubeconfig"] = str(kubeconfig)
    monitor = engine_mocks.install()
    engine_mocks.run_stack(raw)
    return [
        r for r in monitor.registrations if r.type.split(":")[0] in PACKAGES or r.type.startswith("pulumi:providers:")
    ]


@functools.cache
def attributes_read_by_the_program() -> frozenset[str]:
    """Every `x.name` in the program's package: an output read from a resource is one of them."""
    names = set()
    for path in (REPO / "mesh").rglob("*.py"):
        names.update(node.attr for node in ast.walk(ast.parse(path.read_text())) if isinstance(node, ast.Attribute))
    return frozenset(names)


# --- what the SDK declares ----------------------------------------------------------------


def sdk_classes(token: str) -> tuple[type, type]:
    """The SDK's resource class for a type token and its Args class."""
    import importlib

    from pulumi.runtime import rpc

    if token.startswith("pulumi:providers:"):
        module = importlib.import_module(f"pulumi_{token.split(':')[2]}")
        return module.Provider, module.ProviderArgs
    importlib.import_module(f"pulumi_{token.split(':')[0]}")  # registers its modules
    for module_info in rpc._RESOURCE_MODULES.get(token.rsplit(":", 1)[0], []):
        class_name = module_info.mod_info["classes"].get(token)
        if class_name:
            module = importlib.import_module(module_info.mod_info["fqn"])
            return getattr(module, class_name), getattr(module, class_name + "Args")
    raise LookupError(token)


def sdk_has(token: str) -> bool:
    try:
        sdk_classes(token)
        return True
    except LookupError:
        return False


def sdk_properties(cls: type) -> dict[str, tuple[str, typing.Any]]:
    """Pulumi name -> (Python name, type) of each property the SDK declares on a class; the type
    is the annotation without its Input/Output/Optional wrapping, names of classes resolved."""
    from pulumi import _types

    module = vars(sys.modules[cls.__module__])
    return {
        name: (python_name, sdk_type(prop.fget.__annotations__.get("return"), module))
        for python_name, name, prop in _types._py_properties(cls)
    }


def sdk_type(annotation: typing.Any, module: dict) -> typing.Any:
    inner = unwrap(annotation)
    if typing.get_origin(inner) is typing.Union:
        return typing.Union[tuple(sdk_type(a, module) for a in typing.get_args(inner))]
    return eval(inner.__forward_arg__, module) if isinstance(inner, typing.ForwardRef) else inner


def sdk_kind(inner: typing.Any) -> tuple[str, typing.Any]:
    """An SDK type as (schema kind, what is inside: a class for an object, the item type of a list)."""
    origin = typing.get_origin(inner)
    if inner in PRIMITIVES:
        return PRIMITIVES[inner], None
    if origin is typing.Literal:
        value = typing.get_args(inner)[0]
        return f"{PRIMITIVES[type(value)]}={value}", None
    if origin in (Sequence, list):
        return "array", typing.get_args(inner)[0]
    if origin in (Mapping, dict):
        return "map", None
    if inner is typing.Any:
        return "any", None
    if origin is typing.Union:
        return "oneOf:" + "|".join(sorted(sdk_kind(unwrap(a))[0] for a in typing.get_args(inner))), None
    if isinstance(inner, type):  # 'outputs.ServiceStatus', '_meta.v1.ObjectMetaArgs', 'SelfSignedCertSubjectArgs'
        return "ref:" + inner.__name__.removesuffix("Args"), inner
    raise AssertionError(f"an SDK type this test does not know: {inner!r}")


def sdk_item(cls: type, item: typing.Any) -> typing.Any:
    """A list's item type, resolved in the module of the class that declares the list."""
    return sdk_type(item, vars(sys.modules[cls.__module__]))


def unwrap(annotation: typing.Any) -> typing.Any:
    """Strip Input (a Union with Awaitable and Output), Output[...] and Optional[...]."""
    while True:
        origin, args = typing.get_origin(annotation), typing.get_args(annotation)
        if origin is typing.Union:
            kept = [
                a
                for a in args
                if a is not type(None)
                and typing.get_origin(a) is not Awaitable
                and not (isinstance(a, typing.ForwardRef) and a.__forward_arg__.startswith("Output["))
            ]
            if len(kept) > 1:  # a value of either type (IntOrString): the schema's oneOf
                return typing.Union[tuple(kept)]
            annotation = kept[0]
        elif getattr(origin, "__name__", "") == "Output":
            annotation = args[0]
        else:
            return annotation


# --- what the plugin serves ---------------------------------------------------------------


def plugin_binary(name: str) -> str:
    """The plugin the engine runs for the SDK's version: one on PATH (the lab puts the venv's bin
    first), else the one installed in PULUMI_HOME at exactly that version."""
    search = os.pathsep.join([str(VENV / "bin"), os.environ.get("PATH", "")])
    found = shutil.which(f"pulumi-resource-{name}", path=search)
    if found:
        return found
    installed = (
        VENV / "pulumi-home" / "plugins" / f"resource-{name}-v{versions()[PACKAGES[name]]}" / f"pulumi-resource-{name}"
    )
    assert installed.exists(), f"no pulumi-resource-{name} on PATH or in PULUMI_HOME: run setup.sh"
    return str(installed)


@functools.cache
def plugin_schema(name: str) -> dict:
    pulumi = shutil.which("pulumi", path=str(VENV / "bin"))
    assert pulumi, "no pulumi CLI in .venv/bin: run setup.sh"
    env = {**os.environ, "PULUMI_HOME": str(VENV / "pulumi-home"), "PULUMI_SKIP_UPDATE_CHECK": "true"}
    done = subprocess.run(
        [pulumi, "package", "get-schema", plugin_binary(name)], capture_output=True, text=True, env=env, timeout=120
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout)


def plugin_properties(token: str, inputs: bool) -> dict[str, dict]:
    """Property -> its schema, as the plugin declares them for a resource or its provider."""
    declared = plugin_schema(package_of(token))
    declared = declared["provider"] if token.startswith("pulumi:providers:") else declared["resources"][token]
    return declared.get("inputProperties" if inputs else "properties", {})


def package_of(token: str) -> str:
    return token.split(":")[2] if token.startswith("pulumi:providers:") else token.split(":")[0]


def schema_kind(spec: dict, package: str) -> tuple[str, typing.Any]:
    """A schema property as (kind, what is inside: an object type's properties, a list's item)."""
    if "$ref" in spec:
        if spec["$ref"].endswith("#/Any"):
            return "any", None
        token = spec["$ref"].removeprefix("#/types/")
        name = token.rsplit(":", 1)[-1].rsplit("/", 1)[-1]
        return "ref:" + name, plugin_schema(package)["types"][token].get("properties")  # an enum has none
    if "oneOf" in spec:
        return "oneOf:" + "|".join(sorted(schema_kind(one, package)[0] for one in spec["oneOf"])), None
    kind = spec.get("type")
    if kind == "array":
        return "array", spec["items"]
    if kind == "object" and "additionalProperties" in spec:
        return "map", None
    if "const" in spec:
        return f"{kind}={spec['const']}", None
    return kind, None


def compare(value: typing.Any, sdk: typing.Any, owner: type, spec: dict, package: str, path: str) -> int:
    """Hold a value the program sends to both declarations of its place, recursively through
    objects and lists; returns how many properties were compared."""
    sdk_k, sdk_inner = sdk_kind(sdk)
    plugin_k, plugin_inner = schema_kind(spec, package)
    assert sdk_k == plugin_k, f"{path}: the SDK declares {sdk_k}, the plugin {plugin_k}"
    if sdk_k == "array" and isinstance(value, list):
        item = sdk_item(owner, sdk_inner)
        return sum(compare(v, item, owner, plugin_inner, package, f"{path}[]") for v in value)
    if sdk_k.startswith("ref:") and isinstance(value, dict):
        return compare_fields(value, sdk_properties(sdk_inner), sdk_inner, plugin_inner, package, path)
    return 0


def compare_fields(value: dict, sdk: dict, owner: type, plugin: dict, package: str, path: str) -> int:
    compared = 0
    for key, item in value.items():
        if item is None or key == "__defaults":
            continue
        assert key in plugin, f"{path}.{key}: the program sends it; the plugin does not declare it"
        assert key in sdk, f"{path}.{key}: the program sends it; the SDK does not declare it"
        compared += 1 + compare(item, sdk[key][1], owner, plugin[key], package, f"{path}.{key}")
    return compared


# --- the checks ---------------------------------------------------------------------------


def used_tokens(registrations) -> list[str]:
    return sorted({r.type for r in registrations})


def test_the_program_uses_each_package(registrations):
    """Guards the checks below: they look at resources of all three packages and at providers."""
    packages = {token.split(":")[0] for token in used_tokens(registrations)}
    assert packages == {"kubernetes", "tls", "random", "pulumi"}, packages
    assert "pulumi:providers:kubernetes" in used_tokens(registrations)


def test_both_know_the_same_resource_types(registrations):
    """A typed kind the plugin serves is a typed class in the SDK; a custom resource's kind (the
    Sail and Istio APIs) is in neither, so both take it as a generic CustomResource."""
    for token in used_tokens(registrations):
        if token.startswith("pulumi:providers:"):
            continue
        in_plugin = token in plugin_schema(token.split(":")[0])["resources"]
        assert in_plugin == sdk_has(token), f"{token}: plugin {'has' if in_plugin else 'lacks'} it, the SDK not"
        if token.split(":")[0] != "kubernetes":
            assert in_plugin, f"{token} is in neither the SDK nor the plugin"


def test_every_input_the_program_sends_is_declared_alike_by_both(registrations):
    """Every field the program sends, down to the last nested one (a container's port, a
    certificate subject's organization), exists in both with the same type."""
    compared = 0
    for registration in registrations:
        if not sdk_has(registration.type):
            continue  # a custom resource: no schema on either side
        resource, args = sdk_classes(registration.type)
        compared += compare_fields(
            registration.inputs,
            sdk_properties(args),
            args,
            plugin_properties(registration.type, inputs=True),
            package_of(registration.type),
            registration.type,
        )
    assert compared >= 500, compared  # the whole manifests, not a handful of top-level keys


def test_every_output_the_program_reads_is_declared_alike_by_both(registrations):
    read = attributes_read_by_the_program()
    checked = []
    for token in used_tokens(registrations):
        if not sdk_has(token) or token.startswith("pulumi:providers:"):
            continue
        plugin = plugin_properties(token, inputs=False)
        for name, (python_name, declared) in sdk_properties(sdk_classes(token)[0]).items():
            if python_name in read and name not in {"metadata", "kind", "apiVersion"}:
                assert name in plugin, f"{token}: the program reads {python_name}, which the plugin does not declare"
                sdk_k, plugin_k = sdk_kind(declared)[0], schema_kind(plugin[name], package_of(token))[0]
                assert sdk_k == plugin_k, f"{token}.{name}: the SDK declares {sdk_k}, the plugin {plugin_k}"
                checked.append(f"{token.rsplit(':', 1)[-1]}.{name}")
    # What the program waits on and hands to the clusters, among them:
    for expected in ("PrivateKey.privateKeyPem", "LocallySignedCert.certPem", "LocallySignedCert.validityEndTime",
                     "CertRequest.certRequestPem", "RandomId.hex", "Secret.data", "Service.status"):  # fmt: skip
        assert expected in checked, (expected, checked)


def test_what_only_the_sdk_has_the_program_does_not_use(registrations):
    """The released SDKs are newer than the plugins built here: what they add (pulumi-tls 5.6's
    write-only key inputs, newer provider settings) must not be something the program touches."""
    read = attributes_read_by_the_program()
    sent = {(r.type, key) for r in registrations for key in r.inputs}
    only_sdk = []
    for token in used_tokens(registrations):
        if not sdk_has(token):
            continue
        resource, args = sdk_classes(token)
        plugin = set(plugin_properties(token, inputs=True)) | set(plugin_properties(token, inputs=False))
        for cls in (args, resource):
            for name, (python_name, _) in sdk_properties(cls).items():
                if name not in plugin:
                    only_sdk.append(f"{token}.{name}")
                    assert (token, name) not in sent, f"{token}: the program sends {name}, unknown to the plugin"
                    assert cls is args or python_name not in read, f"{token}: the program reads {python_name}"
    print("only in the SDKs:", sorted(set(only_sdk)))


def test_the_check_fails_on_a_field_the_plugin_lacks_or_types_otherwise(registrations, monkeypatch):
    """The comparison can fail: a plugin schema without the tls key's `rsaBits`, or with a
    container port typed as a string, is caught."""
    served = plugin_schema
    for package, edit, message in [
        ("tls", lambda s: s["resources"]["tls:index/privateKey:PrivateKey"]["inputProperties"].pop("rsaBits"), "rsaBits"),
        ("kubernetes", lambda s: s["types"]["kubernetes:core/v1:ServicePort"]["properties"]["port"].update(type="string"),
         "ports\\[\\].port: the SDK declares integer, the plugin string"),
    ]:  # fmt: skip
        schema = json.loads(json.dumps(served(package)))
        edit(schema)
        monkeypatch.setitem(
            globals(), "plugin_schema", lambda name, p=package, s=schema: s if name == p else served(name)
        )
        with pytest.raises(AssertionError, match=message):
            test_every_input_the_program_sends_is_declared_alike_by_both(registrations)
