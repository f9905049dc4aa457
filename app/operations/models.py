"""Idempotency records: one row per (user, Idempotency-Key), kept 24 hours.

Neither the request body nor the client's key is stored: both are kept only as keyed
digests (HMAC under a key derived from the session key). A replay re-renders the answer
from the created resource (`resource_id`); `response_body` is filled only for routes whose
answer holds no personal data (ids and codes).
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, ForeignKey, Index, LargeBinary, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from app.db.base import Base, IdMixin, utcnow


class IdempotencyRecord(IdMixin, Base):
    __tablename__ = "idempotency_keys"
    __table_args__ = (
        UniqueConstraint("user_id", "key_digest", name="uq_idempotency_keys_user_key"),
        Index("ix_idempotency_keys_expires_at", "expires_at"),
    )

    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    key_digest: Mapped[bytes] = mapped_column(LargeBinary(32))
    fingerprint: Mapped[bytes] = mapped_column(LargeBinary(32))
    route: Mapped[str] = mapped_column(String(200))
    # in_flight: claimed, the request runs (or its worker died: the lock or holder tells);
    # completed: written in the same transaction as the records the request created.
    state: Mapped[str] = mapped_column(String(12))
    lease_token: Mapped[str] = mapped_column(String(32))
    lease_expires_at: Mapped[datetime] = mapped_column()
    # The claiming process, `host|boot id|pid|start time`: on SQLite a claim whose process
    # no longer runs is taken over at once (PostgreSQL uses an advisory lock instead).
    holder: Mapped[str | None] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime] = mapped_column()
    response_status: Mapped[int | None] = mapped_column()
    resource_id: Mapped[uuid.UUID | None] = mapped_column()
    response_body: Mapped[dict[str, Any] | None] = mapped_column(JSON)
