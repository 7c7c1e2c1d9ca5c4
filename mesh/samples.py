"""The article's sample apps on one cluster as resources; planned in `mesh/plan/samples.py`."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional, Sequence

import pulumi

from . import kube
from .plan.ordering import prerequisites


@dataclass(frozen=True)
class SampleAppsArgs:
    manifests: Sequence[dict[str, Any]]
    """The `sample` namespace first, then the apps (`sample_manifests`)."""
    control_plane: pulumi.Resource
    """The `Istio` resource: the apps' pods wait for it (injection, `mesh/plan/ordering.py`)."""


class SampleApps(pulumi.ComponentResource):
    """The samples on one cluster; their pods after its control plane so that injection works."""

    def __init__(self, name: str, args: SampleAppsArgs, opts: Optional[pulumi.ResourceOptions] = None):
        super().__init__("istio-mesh:mesh:SampleApps", name, None, opts)
        namespace, *apps = args.manifests
        created = kube.create(name, namespace, pulumi.ResourceOptions(parent=self))
        for manifest in apps:
            first = prerequisites(manifest, created, args.control_plane)
            kube.create(name, manifest, pulumi.ResourceOptions(parent=self, depends_on=first))
        self.register_outputs({})
