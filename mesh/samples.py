"""The article's sample apps on one cluster as resources; planned in `mesh/plan/samples.py`."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional, Sequence

import pulumi

from . import kube


@dataclass(frozen=True)
class SampleAppsArgs:
    manifests: Sequence[dict[str, Any]]
    """The `sample` namespace first, then the apps (`sample_manifests`)."""
    after: Sequence[pulumi.Resource]
    """The control plane: injection must be in place before the pods."""


class SampleApps(pulumi.ComponentResource):
    """The samples on one cluster, after its control plane so that injection works."""

    def __init__(self, name: str, args: SampleAppsArgs, opts: Optional[pulumi.ResourceOptions] = None):
        super().__init__("istio-mesh:mesh:SampleApps", name, None, opts)
        namespace, *apps = args.manifests
        created = kube.create(name, namespace, pulumi.ResourceOptions(parent=self, depends_on=list(args.after)))
        child = pulumi.ResourceOptions(parent=self, depends_on=[created])
        for manifest in apps:
            kube.create(name, manifest, child)
        self.register_outputs({})
