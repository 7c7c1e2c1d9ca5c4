"""The clusters' control planes: etcd, API server, controller manager, cert-manager; their PKI, CRDs."""
