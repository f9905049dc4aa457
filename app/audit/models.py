from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Index, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from app.db.base import Base, IdMixin


class AuditEvent(IdMixin, Base):
    """Append-only, hash-chained audit event. Holds field names and codes, never values.

    No foreign keys on purpose: the trail outlives erased victims and deleted sessions.
    """

    __tablename__ = "audit_events"
    __table_args__ = (
        UniqueConstraint("chain_key", "seq", name="uq_audit_events_chain_seq"),
        Index("ix_audit_events_case_time", "case_id", "occurred_at"),
        Index("ix_audit_events_action_time", "action", "occurred_at"),
    )

    chain_key: Mapped[str] = mapped_column(String(60))
    seq: Mapped[int] = mapped_column()
    occurred_at: Mapped[datetime] = mapped_column()
    action: Mapped[str] = mapped_column(String(60))
    actor_user_id: Mapped[uuid.UUID | None] = mapped_column()
    actor_role: Mapped[str | None] = mapped_column(String(40))
    actor_agency_id: Mapped[uuid.UUID | None] = mapped_column()
    case_id: Mapped[uuid.UUID | None] = mapped_column()
    victim_id: Mapped[uuid.UUID | None] = mapped_column(index=True)
    entity_type: Mapped[str | None] = mapped_column(String(40))
    entity_id: Mapped[uuid.UUID | None] = mapped_column()
    fields: Mapped[list[str]] = mapped_column(JSON, default=list)
    details: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    request_id: Mapped[str | None] = mapped_column(String(40))
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64))


class AuditChainHead(Base):
    """The tip of each chain; locked while appending so appends to one chain serialise."""

    __tablename__ = "audit_chain_heads"

    chain_key: Mapped[str] = mapped_column(String(60), primary_key=True)
    seq: Mapped[int] = mapped_column()
    hash: Mapped[str] = mapped_column(String(64))
