"""Key service: data keys per victim, KEK rotation, blind indexes and crypto-shredding."""

from __future__ import annotations

import functools
import hashlib
import uuid
from dataclasses import dataclass, field
from typing import Any, Protocol

from sqlalchemy import delete, func, select, text
from sqlalchemy.orm import Session

from app.crypto.blind_index import BlindIndexer
from app.crypto.envelope import FieldCipher, PlainCodec, data_key_aad, new_data_key
from app.crypto.errors import DataKeyShreddedError, SealedValueIntegrityError, UnknownKeyError
from app.crypto.keyring import (
    BLIND_INDEX_KEY,
    SESSION_KEY,
    SIGNING_KEY,
    AadFor,
    FileKeyRing,
    read_secret_file,
    read_signing_key,
)
from app.crypto.models import BlindIndexEntry, DataKey
from app.crypto.wrapped import PLAIN_KID, WrappedKeyKind, kinds
from app.db.base import new_id, utcnow
from app.errors import ServiceUnavailable

_CACHE = "passage.data_keys"


class Codec(Protocol):
    data_key_id: uuid.UUID

    def seal(self, table: str, column: str, row_id: uuid.UUID, value: Any) -> bytes | None: ...

    def open(self, table: str, column: str, row_id: uuid.UUID, blob: bytes | None) -> Any: ...


@dataclass
class RewrapReport:
    """What one pass of re-wrapping did, per kind of wrapped key."""

    active_kid: str
    rewrapped: dict[str, int] = field(default_factory=dict)
    #: Keys labelled with the wrong KEK id (see FileKeyRing.unwrap_finding_key), now fixed.
    relabelled: dict[str, int] = field(default_factory=dict)
    #: Keys that no usable KEK opens: left as they are, counted, and retirement is refused.
    unreadable: dict[str, int] = field(default_factory=dict)

    @property
    def total(self) -> int:
        return sum(self.rewrapped.values())


def hold_kek(session: Session, kid: str, *, exclusive: bool = False) -> None:
    """Hold a KEK for the rest of the transaction (PostgreSQL advisory lock; a no-op on
    SQLite, whose writers are serialised by BEGIN IMMEDIATE). Writers hold it shared;
    retirement holds it exclusively, so it waits for every writer that used the KEK."""
    if session.get_bind().dialect.name != "postgresql":
        return
    function = "pg_advisory_xact_lock" if exclusive else "pg_advisory_xact_lock_shared"
    session.execute(text(f"SELECT {function}(:key)"), {"key": _kek_lock_key(kid)})


def _kek_lock_key(kid: str) -> int:
    digest = hashlib.sha256(b"passage:kek:" + kid.encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


def _aad_of(kind: WrappedKeyKind, row: Any, kek_kid: str) -> bytes:
    return kind.aad(kek_kid, row)


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
            row = DataKey(id=key_id, victim_id=victim_id, kek_kid=PLAIN_KID, wrapped_key=b"")
            codec: Codec = PlainCodec(key_id)
        else:
            dek = new_data_key()
            kid, wrapped = self.wrap_pinned(
                session, dek, lambda kid: data_key_aad(kid, key_id, victim_id)
            )
            row = DataKey(id=key_id, victim_id=victim_id, kek_kid=kid, wrapped_key=wrapped)
            codec = FieldCipher(key_id, dek)
        session.info.setdefault(_CACHE, {})[victim_id] = codec
        return codec, row

    def wrap_pinned(self, session: Session, dek: bytes, aad_for: AadFor) -> tuple[str, bytes]:
        """Wrap under the active KEK and hold that KEK until this transaction ends.

        `passage keys retire` first marks a KEK as being retired, then waits for every
        transaction holding it (PostgreSQL: a shared advisory lock per KEK; SQLite
        serialises writers anyway), re-wraps what they committed, and only then destroys
        it. A KEK already being retired is never used: a process whose ring is stale (a
        reload that failed) wraps again after reloading, or answers 503.
        """
        for _attempt in range(3):
            kid, wrapped = self.keyring.wrap(dek, aad_for)
            hold_kek(session, kid)
            if not self.keyring.winding_down(kid):
                return kid, wrapped
            self.keyring.reload_if_changed()
        raise ServiceUnavailable(
            "Nothing was saved: this server's key ring is out of date. Try again in a minute; "
            "if it persists, tell the administrator.",
            retry_after=30,
        )

    def codec_for(self, session: Session, victim_id: uuid.UUID) -> Codec:
        cache: dict[uuid.UUID, Codec] = session.info.setdefault(_CACHE, {})
        codec = cache.get(victim_id)
        if codec is not None:
            return codec
        row = session.scalars(select(DataKey).where(DataKey.victim_id == victim_id)).one_or_none()
        if row is None:
            raise DataKeyShreddedError(f"victim {victim_id} has no data key (erased)")
        if row.kek_kid == PLAIN_KID:
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
        """Re-wrap up to batch_size keys of every kind still under an old KEK; how many.

        Field ciphertexts are untouched. Keys that no KEK opens are skipped (see
        `rewrap_batch`); loop until this returns 0.
        """
        return self.rewrap_batch(session, batch_size=batch_size).total

    def rewrap_batch(
        self,
        session: Session,
        *,
        batch_size: int = 500,
        only_kid: str | None = None,
        skip: set[uuid.UUID] | None = None,
    ) -> RewrapReport:
        """One batch per kind: keys wrapped by a KEK other than the active one (or by
        `only_kid`), re-wrapped under the active KEK. Rows in `skip` (found unreadable by an
        earlier batch) are not tried again; unreadable rows found now are added to it."""
        report = RewrapReport(active_kid=self.keyring.active_kid)
        skip = skip if skip is not None else set()
        for kind in kinds():
            self._rewrap_kind(session, kind, batch_size, only_kid, skip, report)
        session.flush()
        return report

    def _rewrap_kind(
        self,
        session: Session,
        kind: WrappedKeyKind,
        batch_size: int,
        only_kid: str | None,
        skip: set[uuid.UUID],
        report: RewrapReport,
    ) -> None:
        model = kind.model
        stmt = select(model).where(model.kek_kid != PLAIN_KID)
        if only_kid is not None:
            stmt = stmt.where(model.kek_kid == only_kid)
        else:
            stmt = stmt.where(model.kek_kid != self.keyring.active_kid)
        if skip:
            stmt = stmt.where(model.id.not_in(skip))
        rows = session.scalars(stmt.limit(batch_size).with_for_update(skip_locked=True)).all()
        for row in rows:
            try:
                found, dek = self.keyring.unwrap_finding_key(
                    row.kek_kid, row.wrapped_key, kind.aad(row.kek_kid, row)
                )
            except (SealedValueIntegrityError, UnknownKeyError):
                skip.add(row.id)
                report.unreadable[kind.name] = report.unreadable.get(kind.name, 0) + 1
                continue
            if found != row.kek_kid:
                report.relabelled[kind.name] = report.relabelled.get(kind.name, 0) + 1
            # The id recorded is the id that wrapped, from the same call.
            row.kek_kid, row.wrapped_key = self.wrap_pinned(
                session, dek, functools.partial(_aad_of, kind, row)
            )
            row.rewrapped_at = utcnow()
            report.rewrapped[kind.name] = report.rewrapped.get(kind.name, 0) + 1

    def keys_in_use(self, session: Session) -> dict[str, int]:
        """How many wrapped keys of every kind each KEK id wraps."""
        totals: dict[str, int] = {}
        for counts in self.keys_in_use_by_kind(session).values():
            for kid, count in counts.items():
                totals[kid] = totals.get(kid, 0) + count
        return totals

    def keys_in_use_by_kind(self, session: Session) -> dict[str, dict[str, int]]:
        result: dict[str, dict[str, int]] = {}
        for kind in kinds():
            stmt = select(kind.model.kek_kid, func.count()).group_by(kind.model.kek_kid)
            result[kind.name] = {kid: count for kid, count in session.execute(stmt)}
        return result

    # -- erasure -----------------------------------------------------------------------------
    def shred(self, session: Session, victim_id: uuid.UUID) -> None:
        """Crypto-shred: destroy the data key and the blind-index rows derived from the person."""
        session.execute(delete(BlindIndexEntry).where(BlindIndexEntry.victim_id == victim_id))
        session.execute(delete(DataKey).where(DataKey.victim_id == victim_id))
        session.info.get(_CACHE, {}).pop(victim_id, None)
