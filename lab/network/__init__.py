"""The lab's network: a network per cluster, load balancers between them, pods' route to the API servers."""
