"""The OpenAI-compatible HTTP proxy: a thin adapter over `router.Router`."""

from router.server.app import create_app

__all__ = ["create_app"]
