"""Field envelopes: AES-256-GCM under a per-victim data key (DEK).

Envelope layout (format version 1):
    version (1 byte) | data-key id (16 bytes, UUID) | nonce (12 bytes) | ciphertext + tag
Associated data binds the ciphertext to its place:
    "passage:field" | version | data-key id | table | column | row id
so a sealed value copied to another row or column, or re-labelled with another key id,
fails to open. The key-encryption key id lives on the wrapped data key, not in each field:
rotating KEKs re-wraps DEKs and never touches field ciphertexts.
"""

from __future__ import annotations

import json
import secrets
import uuid
from dataclasses import dataclass
from datetime import date
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from app.crypto.errors import CryptoError, SealedValueIntegrityError

FORMAT_VERSION = 1
NONCE_BYTES = 12
_HEADER = 1 + 16 + NONCE_BYTES
_PLAIN_MARKER = 0x00  # only written when encryption is disabled (benchmark baseline)


def new_data_key() -> bytes:
    return AESGCM.generate_key(bit_length=256)


def data_key_aad(kek_kid: str, data_key_id: uuid.UUID, victim_id: uuid.UUID) -> bytes:
    return b"|".join(
        [
            b"passage:dek",
            str(FORMAT_VERSION).encode(),
            kek_kid.encode(),
            data_key_id.bytes,
            victim_id.bytes,
        ]
    )


def field_aad(data_key_id: uuid.UUID, table: str, column: str, row_id: uuid.UUID) -> bytes:
    return b"|".join(
        [
            b"passage:field",
            str(FORMAT_VERSION).encode(),
            data_key_id.bytes,
            table.encode(),
            column.encode(),
            row_id.bytes,
        ]
    )


def _encode(value: Any) -> bytes:
    def default(obj: object) -> str:
        if isinstance(obj, date):
            return obj.isoformat()
        raise TypeError(f"cannot seal values of type {type(obj).__name__}")

    return json.dumps(value, default=default, separators=(",", ":"), ensure_ascii=False).encode()


@dataclass(frozen=True)
class EnvelopeHeader:
    version: int
    data_key_id: uuid.UUID
    nonce: bytes


def parse_header(blob: bytes) -> EnvelopeHeader:
    if len(blob) < _HEADER + 16 or blob[0] != FORMAT_VERSION:
        raise SealedValueIntegrityError("not a sealed value of a known format version")
    return EnvelopeHeader(blob[0], uuid.UUID(bytes=blob[1:17]), blob[17:_HEADER])


class FieldCipher:
    """Seals and opens the fields of one victim's records under its data key."""

    def __init__(self, data_key_id: uuid.UUID, data_key: bytes) -> None:
        self.data_key_id = data_key_id
        self._aead = AESGCM(data_key)

    def seal(self, table: str, column: str, row_id: uuid.UUID, value: Any) -> bytes | None:
        if value is None:
            return None
        nonce = secrets.token_bytes(NONCE_BYTES)
        aad = field_aad(self.data_key_id, table, column, row_id)
        header = bytes([FORMAT_VERSION]) + self.data_key_id.bytes + nonce
        return header + self._aead.encrypt(nonce, _encode(value), aad)

    def open(self, table: str, column: str, row_id: uuid.UUID, blob: bytes | None) -> Any:
        if blob is None:
            return None
        header = parse_header(blob)
        where = f"{table}.{column} of row {row_id}"
        if header.data_key_id != self.data_key_id:
            raise SealedValueIntegrityError(f"sealed value in {where} names another data key")
        aad = field_aad(header.data_key_id, table, column, row_id)
        try:
            plain = self._aead.decrypt(header.nonce, blob[_HEADER:], aad)
        except InvalidTag as exc:
            raise SealedValueIntegrityError(
                f"sealed value in {where} failed its integrity check (tampered or moved)"
            ) from exc
        return json.loads(plain)


class PlainCodec:
    """No-encryption stand-in used only by the benchmark baseline (refused outside tests)."""

    def __init__(self, data_key_id: uuid.UUID) -> None:
        self.data_key_id = data_key_id

    def seal(self, table: str, column: str, row_id: uuid.UUID, value: Any) -> bytes | None:
        return None if value is None else bytes([_PLAIN_MARKER]) + _encode(value)

    def open(self, table: str, column: str, row_id: uuid.UUID, blob: bytes | None) -> Any:
        if blob is None:
            return None
        if blob[0] != _PLAIN_MARKER:
            raise CryptoError("sealed value found while encryption is disabled")
        return json.loads(blob[1:])
