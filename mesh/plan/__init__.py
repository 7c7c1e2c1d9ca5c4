"""Pure planning: what the mesh is made of, decided from the checked config (and, for roots
and renewal, the stack's last outputs and the time), with no Pulumi and no resource code.

Every module here returns data (manifests as dicts, states, lists) and is tested without
Pulumi; the component resources in `mesh/*.py` turn that data into resources.
"""
