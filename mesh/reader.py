"""A cluster's reader identity as resources: service account, rights, rotating token secret.

The objects are planned in `mesh/plan/reader.py`. Names are our own (`istio-mesh-reader*`),
never the operator's: see there.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from typing import Any, Optional, Sequence

import pulumi
import pulumi_random as random

from . import kube
from .plan.reader import token_secret_manifest


@dataclass(frozen=True)
class RemoteReaderArgs:
    manifests: Sequence[dict[str, Any]]
    """The service account and its rights (`reader_manifests`)."""
    token_rotation: str
    """`mesh:readerTokenRotation`: a new value makes a new token."""
    ready_timeout_seconds: int
    namespace: pulumi.Resource


class RemoteReader(pulumi.ComponentResource):
    """Reader identity on one cluster; `token` and `ca_data` feed the other clusters' secrets."""

    token: pulumi.Output[str]
    ca_data: pulumi.Output[str]
    token_secret_name: pulumi.Output[str]

    def __init__(self, name: str, args: RemoteReaderArgs, opts: Optional[pulumi.ResourceOptions] = None):
        super().__init__("istio-mesh:mesh:RemoteReader", name, None, opts)
        objects = [
            kube.create(name, manifest, pulumi.ResourceOptions(parent=self, depends_on=[args.namespace]))
            for manifest in args.manifests
        ]
        # Changing mesh:readerTokenRotation gives a new suffix, so a new secret name: Pulumi
        # creates the new token, updates every remote secret that uses it, and only then
        # deletes the old one (deleting a token secret revokes its token at once).
        suffix = random.RandomId(
            f"{name}-reader-token-suffix",
            byte_length=3,
            keepers={"rotation": args.token_rotation},
            opts=pulumi.ResourceOptions(parent=self),
        )
        timeouts = pulumi.CustomTimeouts(create=f"{args.ready_timeout_seconds}s")
        secret = kube.create(
            name,
            token_secret_manifest(),
            pulumi.ResourceOptions(parent=self, depends_on=objects, custom_timeouts=timeouts),
            overrides={"metadata": suffix.hex.apply(lambda hex_: token_secret_manifest(hex_)["metadata"])},
        )
        data = pulumi.Output.secret(secret.data)
        self.token = data.apply(lambda d: base64.b64decode(d["token"]).decode())
        self.ca_data = data.apply(lambda d: d["ca.crt"])
        self.token_secret_name = secret.metadata.apply(lambda m: m["name"])
        self.register_outputs({"token_secret_name": self.token_secret_name})
