"""Idempotency keys: the process holding an in-flight claim.

``holder`` (``host|boot id|pid|start time``) lets a duplicate request on the embedded SQLite
engine take over, at once, a claim whose process no longer runs, instead of waiting for the
lease to lapse. PostgreSQL uses a transaction-level advisory lock instead and only fills the
column for diagnosis. Older rows have none: their lease still decides.

Revision ID: 0008_idempotency_holder
Revises: 0007_quarantine_edge
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008_idempotency_holder"
down_revision: str | None = "0007_quarantine_edge"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("idempotency_keys", schema=None) as batch_op:
        batch_op.add_column(sa.Column("holder", sa.String(length=200), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("idempotency_keys", schema=None) as batch_op:
        batch_op.drop_column("holder")
