"""The Sail operator's stand-in: istiod's objects rendered from Istio's chart for each `Istio` resource."""
