"""The decision log of the first version: one `decisions` row per request.

A SQLite file written by that version already has this table; `migrate` stamps it as 0001.

Revision ID: 0001
Revises:
"""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "decisions",
        sa.Column("request_id", sa.Text, primary_key=True),
        sa.Column("ts", sa.Float, nullable=False),
        sa.Column("key_name", sa.Text),
        sa.Column("requested_model", sa.Text),
        sa.Column("policy", sa.Text),
        sa.Column("model", sa.Text),
        sa.Column("tier", sa.Text),
        sa.Column("domain", sa.Text),
        sa.Column("domain_confidence", sa.Float),
        sa.Column("difficulty", sa.Float),
        sa.Column("reason", sa.Text),
        sa.Column("escalated", sa.Integer),
        sa.Column("fell_back", sa.Integer),
        sa.Column("attempts", sa.Text),
        sa.Column("stream", sa.Integer),
        sa.Column("status", sa.Integer),
        sa.Column("error", sa.Text),
        sa.Column("routing_ms", sa.Float),
        sa.Column("upstream_ms", sa.Float),
        sa.Column("latency_ms", sa.Float),
        sa.Column("prompt_tokens", sa.Integer),
        sa.Column("completion_tokens", sa.Integer),
        sa.Column("cost_estimate", sa.Float),
        sa.Column("large_cost_estimate", sa.Float),
        sa.Column("decision", sa.Text),
        sa.Column("prompt", sa.Text),
    )


def downgrade() -> None:
    op.drop_table("decisions")
