"""The lab's network: a network namespace per cluster, the load balancers between them, and pods' route to the API servers."""
