"""Entry point of `pulumi up`: read the stack's config, build the mesh, export its outputs."""

import pulumi

from mesh import config
from mesh.mesh import Mesh

mesh = Mesh("mesh", config.load())
for key, value in mesh.outputs().items():
    pulumi.export(key, value)
