"""`python -m router.cli`: the `router` command."""

from router.cli import app

app()
