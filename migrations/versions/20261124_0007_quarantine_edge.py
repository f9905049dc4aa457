"""Quarantine at the exchange edge: refusals before the body is parsed, counted per source.

Bodies refused at the edge of the instance-to-instance endpoint (over the size limit, or not
the documented media type) are quarantined too. They keep only what is safe: the size, the
hash when the body was read whole (hence ``sha256`` becomes nullable), the claimed media
type and the source address (``size`` becomes a bigint: a declared length may be huge).
Repeated refusals from one source within a window are counted on one row (``repeat_count``,
``last_received_at``) so that a flood cannot grow the table without bound.

Revision ID: 0007_quarantine_edge
Revises: 0006_reporting
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007_quarantine_edge"
down_revision: str | None = "0006_reporting"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("transnational_quarantine", schema=None) as batch_op:
        batch_op.alter_column("sha256", existing_type=sa.String(length=64), nullable=True)
        # A declared Content-Length refused up front is recorded as declared.
        batch_op.alter_column(
            "size", existing_type=sa.Integer(), type_=sa.BigInteger(), existing_nullable=False
        )
        batch_op.add_column(sa.Column("content_type", sa.String(length=100), nullable=True))
        batch_op.add_column(sa.Column("source_address", sa.String(length=45), nullable=True))
        batch_op.add_column(
            sa.Column("repeat_count", sa.Integer(), server_default="1", nullable=False)
        )
        batch_op.add_column(
            sa.Column("last_received_at", sa.DateTime(timezone=True), nullable=True)
        )


def downgrade() -> None:
    with op.batch_alter_table("transnational_quarantine", schema=None) as batch_op:
        batch_op.drop_column("last_received_at")
        batch_op.drop_column("repeat_count")
        batch_op.drop_column("source_address")
        batch_op.drop_column("content_type")
    # Rows refused before their body was read have no hash: give them an explicit marker.
    op.execute(
        sa.text(
            "UPDATE transnational_quarantine SET sha256 = :zero WHERE sha256 IS NULL"
        ).bindparams(zero="0" * 64)
    )
    op.execute(
        sa.text("UPDATE transnational_quarantine SET size = :max WHERE size > :max").bindparams(
            max=2**31 - 1
        )
    )
    with op.batch_alter_table("transnational_quarantine", schema=None) as batch_op:
        batch_op.alter_column("sha256", existing_type=sa.String(length=64), nullable=False)
        batch_op.alter_column(
            "size", existing_type=sa.BigInteger(), type_=sa.Integer(), existing_nullable=False
        )
