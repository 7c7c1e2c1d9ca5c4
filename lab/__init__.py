"""Local Kubernetes control planes for integration tests of the mesh program.

Each cluster is a real etcd + kube-apiserver + kube-controller-manager on
127.0.0.1, each with a node that runs its pods as processes in network namespaces of
the lab's own (lab/nodes/node.py, lab/network/namespaces.py), with the Sail and Istio CRDs
installed, and (unless turned off) cert-manager's real controller with its CRDs; as an option, one
Vault stand-in for the whole lab (`Lab(vault=True)`, lab/vault/server.py).
See `python -m lab --help` and `lab.Lab`.
"""

from .lab import Cluster, Lab, default_dir

__all__ = ["Cluster", "Lab", "default_dir"]
