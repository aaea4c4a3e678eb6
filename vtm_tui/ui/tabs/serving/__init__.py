"""The Serving tab: model servers, and predictions through them or the registry."""
