"""The SDK: `Router` wires the decision (`router.core`) to the model calls (`router.serving`)."""
