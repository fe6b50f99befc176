"""Alembic migrations of the decision log (run by `router.decision_log.migrate` at start)."""
