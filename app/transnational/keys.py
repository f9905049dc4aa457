"""Keys of the exchange: this instance's signing and encryption keys, partner key pins,
and the per-exchange data keys that seal package content at rest.

Key ids are RFC 7638 JWK thumbprints (SHA-256, base64url). The same string is the
fingerprint that focal points read to each other over the telephone when pinning keys.
"""

from __future__ import annotations

import base64
import hashlib
import json
import threading
import uuid
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from app.context import AppContext
from app.crypto.envelope import FieldCipher, PlainCodec, new_data_key
from app.crypto.errors import DataKeyShreddedError
from app.crypto.keyring import (
    SIGNING_KEY,
    ensure_encryption_key,
    read_encryption_key,
    read_signing_key,
)
from app.crypto.service import Codec
from app.crypto.wrapped import PLAIN_KID
from app.errors import InvalidInput
from app.transnational.models import ExchangeKey, exchange_key_aad

_CACHE_KEY = "passage.exchange_keys"


def _b64u(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _int_bytes(value: int, length: int | None = None) -> bytes:
    size = length or max(1, (value.bit_length() + 7) // 8)
    return value.to_bytes(size, "big")


def thumbprint_of(key: ec.EllipticCurvePublicKey | rsa.RSAPublicKey) -> str:
    """RFC 7638 JWK thumbprint (SHA-256, base64url) of an EC P-256 or RSA public key."""
    if isinstance(key, ec.EllipticCurvePublicKey):
        numbers = key.public_numbers()
        jwk = {
            "crv": "P-256",
            "kty": "EC",
            "x": _b64u(_int_bytes(numbers.x, 32)),
            "y": _b64u(_int_bytes(numbers.y, 32)),
        }
    else:
        rsa_numbers = key.public_numbers()
        jwk = {
            "e": _b64u(_int_bytes(rsa_numbers.e)),
            "kty": "RSA",
            "n": _b64u(_int_bytes(rsa_numbers.n)),
        }
    canonical = json.dumps(jwk, sort_keys=True, separators=(",", ":")).encode()
    return _b64u(hashlib.sha256(canonical).digest())


@dataclass(frozen=True)
class PublicKeyInfo:
    use: str
    kid: str
    pem: str


def parse_public_key(pem: str, use: str) -> PublicKeyInfo:
    """Validate a pasted public key for its use: ES256 (P-256) to verify, RSA >= 2048 to
    encrypt. Private keys, certificates and other curves are refused."""
    if "PRIVATE KEY" in pem:
        raise InvalidInput("paste the partner's public key, never a private key")
    try:
        key = serialization.load_pem_public_key(pem.strip().encode())
    except (ValueError, TypeError) as exc:
        raise InvalidInput("not a PEM public key (-----BEGIN PUBLIC KEY-----)") from exc
    if use == "sig":
        if not isinstance(key, ec.EllipticCurvePublicKey) or key.curve.name != "secp256r1":
            raise InvalidInput("a signing key must be an EC P-256 key (ES256)")
    elif use == "enc":
        if not isinstance(key, rsa.RSAPublicKey) or key.key_size < 2048:
            raise InvalidInput("an encryption key must be an RSA key of at least 2048 bits")
    else:
        raise InvalidInput("key use must be sig or enc")
    canonical = key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    ).decode()
    return PublicKeyInfo(use=use, kid=thumbprint_of(key), pem=canonical)


def normalise_fingerprint(value: str) -> str:
    """Fingerprints are read aloud in groups: spaces and colons between groups are ignored
    (dashes and underscores belong to the base64url alphabet)."""
    return "".join(ch for ch in value.strip() if ch not in " :\t\n")


# -- this instance ---------------------------------------------------------------------------
@dataclass(frozen=True)
class InstanceKeys:
    signing_private_pem: str
    signing_public_pem: str
    signing_kid: str
    encryption_private_pem: str
    encryption_public_pem: str
    encryption_kid: str


_instance_cache: dict[Path, InstanceKeys] = {}
_instance_lock = threading.Lock()


def instance_keys(ctx: AppContext) -> InstanceKeys:
    """This instance's exchange keys (the encryption key is created on first use if absent)."""
    keys_dir = ctx.settings.keys_dir
    with _instance_lock:
        cached = _instance_cache.get(keys_dir)
        if cached is not None:
            return cached
        signing_private, signing_public = read_signing_key(keys_dir / SIGNING_KEY)
        enc_private, enc_public = read_encryption_key(ensure_encryption_key(keys_dir))
        keys = InstanceKeys(
            signing_private_pem=signing_private,
            signing_public_pem=signing_public,
            signing_kid=parse_public_key(signing_public, "sig").kid,
            encryption_private_pem=enc_private,
            encryption_public_pem=enc_public,
            encryption_kid=parse_public_key(enc_public, "enc").kid,
        )
        _instance_cache[keys_dir] = keys
        return keys


# -- per-exchange data keys ------------------------------------------------------------------
def new_exchange_key(session: Session, ctx: AppContext, exchange_id: uuid.UUID) -> Codec:
    """A fresh data key for a new exchange (add the exchange row first)."""
    row = ExchangeKey(exchange_id=exchange_id, kek_kid="", wrapped_key=b"")
    codec: Codec
    if not ctx.keys.encryption_enabled:
        row.kek_kid = PLAIN_KID
        codec = PlainCodec(row.id)
    else:
        dek = new_data_key()
        # The id recorded is the id that wrapped, from the same call (never read it before).
        row.kek_kid, row.wrapped_key = ctx.keys.wrap_pinned(
            session, dek, lambda kid: exchange_key_aad(kid, row.id, exchange_id)
        )
        codec = FieldCipher(row.id, dek)
    session.add(row)
    session.info.setdefault(_CACHE_KEY, {})[exchange_id] = codec
    return codec


def exchange_codec(session: Session, ctx: AppContext, exchange_id: uuid.UUID) -> Codec:
    cache: dict[uuid.UUID, Codec] = session.info.setdefault(_CACHE_KEY, {})
    codec = cache.get(exchange_id)
    if codec is not None:
        return codec
    row = session.scalars(
        select(ExchangeKey).where(ExchangeKey.exchange_id == exchange_id)
    ).one_or_none()
    if row is None:
        raise DataKeyShreddedError(f"exchange {exchange_id} has no data key (shredded)")
    if row.kek_kid == PLAIN_KID:
        codec = PlainCodec(row.id)
    else:
        dek = ctx.keys.keyring.unwrap(
            row.kek_kid, row.wrapped_key, exchange_key_aad(row.kek_kid, row.id, exchange_id)
        )
        codec = FieldCipher(row.id, dek)
    cache[exchange_id] = codec
    return codec


def shred_exchange_key(session: Session, exchange_id: uuid.UUID) -> None:
    session.execute(delete(ExchangeKey).where(ExchangeKey.exchange_id == exchange_id))
    session.info.get(_CACHE_KEY, {}).pop(exchange_id, None)
