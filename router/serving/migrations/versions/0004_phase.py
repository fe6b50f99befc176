"""Write-ahead rows: `phase` says whether a request's row is only started, ended or
interrupted (its process died before the answer ended).

Revision ID: 0004
Revises: 0003
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # A plain ADD COLUMN (no table copy, even on SQLite): older rows get NULL, read as ended.
    op.add_column("decisions", sa.Column("phase", sa.Text))


def downgrade() -> None:
    with op.batch_alter_table("decisions") as batch:
        batch.drop_column("phase")
