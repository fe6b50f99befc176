"""The decision: configuration, request facts, the encoder, the scorer and the policy.

Pure and local: nothing here calls a model, opens a socket or knows about HTTP. Every layer
above may import from here; this layer imports from none of them.
"""
