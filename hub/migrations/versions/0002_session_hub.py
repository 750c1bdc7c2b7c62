"""Record which hub process holds each open session.

Several hubs may share one PostgreSQL database; a hub that restarts after a
crash must close only the sessions it held, not those of the others.

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-04
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("session_records") as batch:
        batch.add_column(sa.Column("hub", sa.String(128), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("session_records") as batch:
        batch.drop_column("hub")
