"""Alembic environment: migrations run on the connection `decision_log.migrate` hands over."""

from alembic import context

connection = context.config.attributes["connection"]
# render_as_batch: SQLite alters tables by copying them; Alembic does that in batch mode.
context.configure(connection=connection, target_metadata=None, render_as_batch=True)
with context.begin_transaction():
    context.run_migrations()
