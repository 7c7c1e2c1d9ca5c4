"""The clusters' nodes and pods: each node runs its pods as processes of this host (volumes, images, state)."""
