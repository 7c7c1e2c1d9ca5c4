"""A cluster's east-west gateway and cross-network Gateway as resources.

The objects and the source ranges they admit are planned in `mesh/plan/gateway.py`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional, Sequence

import pulumi

from . import kube
from .plan.gateway import ingress_address
from .plan.ordering import prerequisites


@dataclass(frozen=True)
class EastWestGatewayArgs:
    manifests: Sequence[dict[str, Any]]
    """The gateway's objects in apply order (`eastwest_gateway_manifests`), its Service among them."""
    cross_network_gateway: dict[str, Any]
    ready_timeout_seconds: int
    namespace: pulumi.Resource
    """`istio-system`, where every object of the gateway lives."""
    control_plane: pulumi.Resource
    """The `Istio` resource: the gateway's pods (injection) and its `Gateway` (validation) wait
    for it (`mesh/plan/ordering.py`); the rest needs only the namespace."""


class EastWestGateway(pulumi.ComponentResource):
    """The gateway objects on one cluster; `address` is the load balancer's once assigned."""

    address: pulumi.Output[Optional[str]]

    def __init__(self, name: str, args: EastWestGatewayArgs, opts: Optional[pulumi.ResourceOptions] = None):
        super().__init__("istio-mesh:mesh:EastWestGateway", name, None, opts)
        seconds = args.ready_timeout_seconds
        timeouts = pulumi.CustomTimeouts(create=f"{seconds}s", update=f"{seconds}s")

        def options(manifest: dict[str, Any]) -> pulumi.ResourceOptions:
            first = prerequisites(manifest, args.namespace, args.control_plane)
            return pulumi.ResourceOptions(parent=self, depends_on=first, custom_timeouts=timeouts)

        objects = {manifest["kind"]: kube.create(name, manifest, options(manifest)) for manifest in args.manifests}
        self.service = objects["Service"]
        self.gateway = kube.create(name, args.cross_network_gateway, options(args.cross_network_gateway))
        self.address = self.service.status.apply(ingress_address)
        self.register_outputs({"address": self.address})
