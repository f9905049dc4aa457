"""Key service: data keys per victim, KEK rotation, blind indexes and crypto-shredding."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any, Protocol

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from app.crypto.blind_index import BlindIndexer
from app.crypto.envelope import FieldCipher, PlainCodec, data_key_aad, new_data_key
from app.crypto.errors import DataKeyShreddedError
from app.crypto.keyring import (
    BLIND_INDEX_KEY,
    SESSION_KEY,
    SIGNING_KEY,
    FileKeyRing,
    read_secret_file,
    read_signing_key,
)
from app.crypto.models import BlindIndexEntry, DataKey
from app.db.base import new_id, utcnow

_CACHE = "passage.data_keys"


class Codec(Protocol):
    data_key_id: uuid.UUID

    def seal(self, table: str, column: str, row_id: uuid.UUID, value: Any) -> bytes | None: ...

    def open(self, table: str, column: str, row_id: uuid.UUID, blob: bytes | None) -> Any: ...


@dataclass(frozen=True)
class RewrapReport:
    active_kid: str
    rewrapped: int
    remaining_on_old_keys: int


class KeyService:
    def __init__(self, keyring: FileKeyRing, *, encryption_enabled: bool = True) -> None:
        self.keyring = keyring
        self.encryption_enabled = encryption_enabled
        self.indexer = BlindIndexer(read_secret_file(keyring.keys_dir / BLIND_INDEX_KEY))
        self.session_key = read_secret_file(keyring.keys_dir / SESSION_KEY)
        self.signing_private_pem, self.signing_public_pem = read_signing_key(
            keyring.keys_dir / SIGNING_KEY
        )

    # -- data keys ---------------------------------------------------------------------------
    def new_data_key(self, session: Session, victim_id: uuid.UUID) -> tuple[Codec, DataKey]:
        """A fresh data key for a victim about to be inserted: add the row after the victim."""
        key_id = new_id()
        if not self.encryption_enabled:
            row = DataKey(id=key_id, victim_id=victim_id, kek_kid="plain", wrapped_key=b"")
            codec: Codec = PlainCodec(key_id)
        else:
            dek = new_data_key()
            kid = self.keyring.active_kid
            _, wrapped = self.keyring.wrap(dek, data_key_aad(kid, key_id, victim_id))
            row = DataKey(id=key_id, victim_id=victim_id, kek_kid=kid, wrapped_key=wrapped)
            codec = FieldCipher(key_id, dek)
        session.info.setdefault(_CACHE, {})[victim_id] = codec
        return codec, row

    def codec_for(self, session: Session, victim_id: uuid.UUID) -> Codec:
        cache: dict[uuid.UUID, Codec] = session.info.setdefault(_CACHE, {})
        codec = cache.get(victim_id)
        if codec is not None:
            return codec
        row = session.scalars(select(DataKey).where(DataKey.victim_id == victim_id)).one_or_none()
        if row is None:
            raise DataKeyShreddedError(f"victim {victim_id} has no data key (erased)")
        if row.kek_kid == "plain":
            codec = PlainCodec(row.id)
        else:
            dek = self.keyring.unwrap(
                row.kek_kid, row.wrapped_key, data_key_aad(row.kek_kid, row.id, victim_id)
            )
            codec = FieldCipher(row.id, dek)
        cache[victim_id] = codec
        return codec

    # -- rotation ----------------------------------------------------------------------------
    def rewrap(self, session: Session, *, batch_size: int = 500) -> int:
        """Re-wrap up to batch_size data keys still wrapped by an old KEK. Fields untouched."""
        active = self.keyring.active_kid
        rows = session.scalars(
            select(DataKey)
            .where(DataKey.kek_kid != active, DataKey.kek_kid != "plain")
            .limit(batch_size)
            .with_for_update(skip_locked=True)
        ).all()
        for row in rows:
            dek = self.keyring.unwrap(
                row.kek_kid, row.wrapped_key, data_key_aad(row.kek_kid, row.id, row.victim_id)
            )
            _, row.wrapped_key = self.keyring.wrap(dek, data_key_aad(active, row.id, row.victim_id))
            row.kek_kid = active
            row.rewrapped_at = utcnow()
        session.flush()
        return len(rows)

    def keys_in_use(self, session: Session) -> dict[str, int]:
        stmt = select(DataKey.kek_kid, func.count()).group_by(DataKey.kek_kid)
        return {kid: count for kid, count in session.execute(stmt)}

    # -- erasure -----------------------------------------------------------------------------
    def shred(self, session: Session, victim_id: uuid.UUID) -> None:
        """Crypto-shred: destroy the data key and the blind-index rows derived from the person."""
        session.execute(delete(BlindIndexEntry).where(BlindIndexEntry.victim_id == victim_id))
        session.execute(delete(DataKey).where(DataKey.victim_id == victim_id))
        session.info.get(_CACHE, {}).pop(victim_id, None)
