"""Pulumi mocks for the resource-graph tests: a stand-in for the engine and the providers.

`ProviderStandIn` plays the tls, random and kubernetes providers without a cluster: tls
returns recognisable fake PEM text, kubernetes echoes its inputs, and it also plays the two
cluster-side actors the program waits on: the token controller (fills a service-account token
secret) and a load-balancer controller (gives the east-west gateway an address).
`RecordingMonitor` keeps what the engine would know of each registration: parent, provider,
dependencies, and which inputs arrived as secrets.
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass, field
from typing import Any, Callable, Optional

import pulumi
from pulumi.runtime import mocks, rpc
from pulumi.runtime.stack import run_pulumi_func
from pulumi.runtime.sync_await import _sync_await

FAKE_TOKEN_PREFIX = "fake-token-for-"


def fake_key(name: str) -> str:
    return f"-----BEGIN RSA PRIVATE KEY-----\nkey-of-{name}\n-----END RSA PRIVATE KEY-----\n"


def fake_cert(name: str) -> str:
    return f"-----BEGIN CERTIFICATE-----\ncert-of-{name}\n-----END CERTIFICATE-----\n"


class ProviderStandIn(pulumi.runtime.Mocks):
    def __init__(self, previous_outputs: Optional[dict] = None):
        # The stack's outputs from its last update, as a StackReference to itself reads them.
        self.previous_outputs = previous_outputs or {}

    def new_resource(self, args: pulumi.runtime.MockResourceArgs):
        outputs = dict(args.inputs)
        if args.typ == "pulumi:pulumi:StackReference":
            outputs = {"name": args.inputs["name"], "outputs": self.previous_outputs, "secretOutputNames": []}
        elif args.typ == "tls:index/privateKey:PrivateKey":
            outputs["private_key_pem"] = outputs["privateKeyPem"] = fake_key(args.name)
        elif args.typ in ("tls:index/selfSignedCert:SelfSignedCert", "tls:index/locallySignedCert:LocallySignedCert"):
            outputs["cert_pem"] = outputs["certPem"] = fake_cert(args.name)
            outputs["validityEndTime"] = "2036-11-21T15:00:00Z"
        elif args.typ == "tls:index/certRequest:CertRequest":
            outputs["certRequestPem"] = f"csr-of-{args.name}"
        elif args.typ == "random:index/randomId:RandomId":
            outputs["hex"] = "a1b2c3"
        elif args.typ == "kubernetes:core/v1:Secret" and outputs.get("type") == "kubernetes.io/service-account-token":
            # The token controller's part.
            token = FAKE_TOKEN_PREFIX + args.name
            outputs["data"] = {
                "token": base64.b64encode(token.encode()).decode(),
                "ca.crt": base64.b64encode(fake_cert(args.name + "-apiserver-ca").encode()).decode(),
            }
        elif args.typ == "kubernetes:core/v1:Service" and outputs.get("spec", {}).get("type") == "LoadBalancer":
            # The load-balancer controller's part.
            outputs["status"] = {"loadBalancer": {"ingress": [{"ip": "192.0.2.10"}]}}
        return f"{args.name}_id", outputs

    def call(self, args: pulumi.runtime.MockCallArgs):
        return {}, None


@dataclass
class Registration:
    type: str
    name: str
    urn: str
    parent: str
    provider: str
    custom: bool
    dependencies: list[str]
    inputs: dict[str, Any]
    secret_inputs: set[str] = field(default_factory=set)
    protect: bool = False

    @property
    def kind(self) -> Optional[str]:
        return self.type.split(":")[-1] if self.type.startswith("kubernetes:") else None

    @property
    def metadata(self) -> dict[str, Any]:
        return self.inputs.get("metadata") or {}


class RecordingMonitor(mocks.MockMonitor):
    def __init__(self, stand_in: pulumi.runtime.Mocks):
        super().__init__(stand_in)
        self.registrations: list[Registration] = []

    def RegisterResource(self, request):
        response = super().RegisterResource(request)
        raw = rpc.deserialize_properties(request.object, keep_internal=True)
        secret_inputs = {key for key, value in raw.items() if rpc.is_rpc_secret(value)}
        self.registrations.append(
            Registration(
                type=request.type,
                name=request.name,
                urn=response.urn,
                parent=request.parent,
                provider=request.provider,
                custom=bool(request.custom),
                dependencies=list(request.dependencies),
                inputs={key: rpc.unwrap_rpc_secret(value) for key, value in raw.items()},
                secret_inputs=secret_inputs,
                protect=bool(request.protect),
            )
        )
        return response


def install(preview: bool = False, previous_outputs: Optional[dict] = None) -> RecordingMonitor:
    stand_in = ProviderStandIn(previous_outputs)
    monitor = RecordingMonitor(stand_in)
    pulumi.runtime.set_mocks(stand_in, project="istio-mesh", stack="test", preview=preview, monitor=monitor)
    return monitor


async def resolve(value: Any) -> tuple[Any, bool]:
    """Resolve nested Outputs; returns the plain value and whether any part was secret."""
    if isinstance(value, pulumi.Output):
        inner = await value.future()
        secret = await value.is_secret()
        plain, nested_secret = await resolve(inner)
        return plain, secret or nested_secret
    if isinstance(value, dict):
        result, secret = {}, False
        for key, item in value.items():
            result[key], item_secret = await resolve(item)
            secret = secret or item_secret
        return result, secret
    if isinstance(value, (list, tuple)):
        items = [await resolve(item) for item in value]
        return [item for item, _ in items], any(s for _, s in items)
    return value, False


def run_stack(raw: dict, secret_keys: tuple[str, ...] = ()) -> Any:
    """Run the program's entry (`mesh.program`) as `pulumi up` would, under the mocks `install`
    put in place, on a stack whose `mesh:` config is `raw` (handed over as Pulumi does: scalars
    as text, the rest as JSON). Returns the stack's outputs."""
    from mesh import program

    pulumi.runtime.set_all_config(
        {f"mesh:{key}": value if isinstance(value, str) else json.dumps(value) for key, value in raw.items()},
        list(secret_keys),
    )
    try:
        outputs, _ = run_program(lambda: program.build(program.checked_plan()).outputs())
    finally:
        pulumi.runtime.set_all_config({}, [])
    return outputs


def run_program(program: Callable[[], Any]) -> tuple[Any, bool]:
    """Run `program` as the engine would, wait for every registration, resolve what it returns.

    Returns the plain value and whether any part of it was secret.
    """
    returned = {}

    def body():
        returned["value"] = program()

    _sync_await(run_pulumi_func(body))
    return _sync_await(resolve(returned["value"]))
