"""The `router` command: a thin face over the library (`router = "router.cli:app"`)."""

from router.cli import (  # noqa: F401 - registers commands
    datasets,
    demo,
    evaluating,
    routing,
    training,
)
from router.cli.main import app

__all__ = ["app"]
