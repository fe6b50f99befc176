"""What retraining needs: scores, the int8 routing embedding, opt-in routing text; outcomes.

Revision ID: 0002
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

NEW_COLUMNS = [
    sa.Column("kind", sa.Text),
    sa.Column("gain", sa.Float),
    sa.Column("success", sa.Text),
    sa.Column("embedding", sa.LargeBinary),
    sa.Column("embedding_scale", sa.Float),
    sa.Column("encoder", sa.Text),
    sa.Column("routing_text", sa.Text),
]


def upgrade() -> None:
    # Plain ADD COLUMNs (no table copy, even on SQLite): old rows get NULLs.
    for col in NEW_COLUMNS:
        op.add_column("decisions", col)
    op.create_index("ix_decisions_ts", "decisions", ["ts"])
    op.create_table(
        "outcomes",
        sa.Column("request_id", sa.Text, nullable=False),
        sa.Column("source", sa.Text, nullable=False),
        sa.Column("model", sa.Text, nullable=False, server_default=""),
        sa.Column("score", sa.Float, nullable=False),
        sa.Column("detail", sa.Text),
        sa.Column("ts", sa.Float, nullable=False),
        sa.Column("updated_ts", sa.Float, nullable=False),
        sa.Column("revision", sa.Integer, nullable=False, server_default="1"),
        sa.PrimaryKeyConstraint("request_id", "source", "model", name="pk_outcomes"),
    )


def downgrade() -> None:
    op.drop_table("outcomes")
    op.drop_index("ix_decisions_ts", "decisions")
    with op.batch_alter_table("decisions") as batch:
        for col in reversed(NEW_COLUMNS):
            batch.drop_column(col.name)
