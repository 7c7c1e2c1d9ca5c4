"""A multi-primary, multi-network Istio mesh (Sail operator) across Kubernetes clusters, as code."""
