"""The lab's nodes and pods: a node per cluster that runs its pods as processes of this host, their volumes, state and images."""
