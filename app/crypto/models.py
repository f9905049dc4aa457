from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import ForeignKey, Index, LargeBinary, String
from sqlalchemy.orm import Mapped, mapped_column

from app.crypto.envelope import data_key_aad
from app.crypto.wrapped import WrappedKeyKind, register
from app.db.base import Base, IdMixin, utcnow


class DataKey(IdMixin, Base):
    """A victim's data key, wrapped by a key-encryption key. Deleting it crypto-shreds."""

    __tablename__ = "data_keys"

    victim_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("victims.id"), unique=True)
    kek_kid: Mapped[str] = mapped_column(String(40), index=True)
    wrapped_key: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    rewrapped_at: Mapped[datetime | None] = mapped_column()


class BlindIndexEntry(IdMixin, Base):
    """A truncated keyed digest of a normalised compound value, for duplicate detection."""

    __tablename__ = "blind_index_entries"
    __table_args__ = (Index("ix_blind_index_lookup", "index_name", "digest"),)

    victim_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("victims.id"), index=True)
    agency_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("agencies.id"))
    index_name: Mapped[str] = mapped_column(String(40))
    digest: Mapped[bytes] = mapped_column(LargeBinary(32))


def _data_key_aad(kek_kid: str, row: DataKey) -> bytes:
    return data_key_aad(kek_kid, row.id, row.victim_id)


DATA_KEYS = register(WrappedKeyKind("victim_data_keys", DataKey, _data_key_aad))
