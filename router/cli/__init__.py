"""The `router` command: a thin face over the library (`router = "router.cli:app"`)."""

from router.cli import datasets, evaluating, routing, training  # noqa: F401 - registers commands
from router.cli.main import app

__all__ = ["app"]
