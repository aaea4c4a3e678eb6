"""The Registry tab: the model registry's tree, manifests, and its transfers."""
