"""The clusters' control planes: etcd, kube-apiserver, kube-controller-manager and cert-manager, their PKI, CRDs and API client."""
