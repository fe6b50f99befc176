"""The response cache and the privacy rule: each row says whether the cache answered and what
it saved, and which kinds of private value fired which action (never the values).

Revision ID: 0003
Revises: 0002
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

NEW_COLUMNS = [
    sa.Column("cache", sa.Text),  # "hit", "miss", "bypass"; NULL with the cache off
    sa.Column("saved_cost", sa.Float),  # USD a cache hit saved
    sa.Column("privacy", sa.Text),  # kinds detected, comma-separated
    sa.Column("privacy_action", sa.Text),  # "local", "redact" (a refused request's row has none)
]


def upgrade() -> None:
    for col in NEW_COLUMNS:
        op.add_column("decisions", col)


def downgrade() -> None:
    with op.batch_alter_table("decisions") as batch:
        for col in reversed(NEW_COLUMNS):
            batch.drop_column(col.name)
