"""The Pulumi program: read the stack's config, build the mesh, export its outputs.

`__main__.py` runs it under `pulumi up`; the lab and the integration tests run the same
function as an Automation API inline program.
"""

import pulumi

from . import config
from .mesh import Mesh


def main() -> None:
    mesh = Mesh("mesh", config.load())
    for key, value in mesh.outputs().items():
        pulumi.export(key, value)
