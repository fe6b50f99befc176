"""Alembic migrations of the decision log (run by `router.serving.decision_log.schema.migrate` at start)."""
