"""The OpenAI-compatible HTTP proxy: a thin adapter over `router.Router`."""

from .app import create_app

__all__ = ["create_app"]
