"""TOTP second factor (pyotp): seeds sealed at rest, each code usable once.

The last accepted time step is stored; a code whose step is not newer is refused, so a code
seen over a shoulder or replayed from a log cannot be used again (ASVS 6.5.1).
"""

from __future__ import annotations

import secrets
import uuid

import pyotp
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from pyotp.exceptions import OTPVerificationError

from app.auth.models import User
from app.context import AppContext
from app.crypto.errors import SealedValueIntegrityError
from app.db.base import utcnow

ISSUER = "Passage"
VALID_WINDOW = 1  # one 30-second step either side, for clock drift


def _aead(ctx: AppContext) -> AESGCM:
    key = HKDF(
        algorithm=hashes.SHA256(), length=32, salt=None, info=b"passage:totp-seed:v1"
    ).derive(ctx.keys.session_key)
    return AESGCM(key)


def _aad(user_id: uuid.UUID) -> bytes:
    return b"passage:totp|" + user_id.bytes


def seal_seed(ctx: AppContext, user_id: uuid.UUID, seed: str) -> bytes:
    nonce = secrets.token_bytes(12)
    return nonce + _aead(ctx).encrypt(nonce, seed.encode(), _aad(user_id))


def open_seed(ctx: AppContext, user: User) -> str:
    blob = user.totp_secret_sealed or b""
    try:
        return _aead(ctx).decrypt(blob[:12], blob[12:], _aad(user.id)).decode()
    except InvalidTag as exc:
        raise SealedValueIntegrityError("TOTP seed failed its integrity check") from exc


def start_enrolment(ctx: AppContext, user: User) -> str:
    """A fresh seed for a user who has not confirmed one yet; returns the provisioning URI."""
    if user.totp_confirmed_at is not None:
        raise ValueError("a second factor is already enrolled")
    seed = pyotp.random_base32()
    user.totp_secret_sealed = seal_seed(ctx, user.id, seed)
    user.totp_last_timecode = None
    return pyotp.TOTP(seed).provisioning_uri(name=user.username, issuer_name=ISSUER)


def verify_code(ctx: AppContext, user: User, code: str) -> bool:
    """True once per valid code; a replayed or older code is refused."""
    if user.totp_secret_sealed is None or not code.isdigit() or len(code) != 6:
        return False
    totp = pyotp.TOTP(open_seed(ctx, user))
    try:
        timecode = totp.verify_and_get_timecode(code, valid_window=VALID_WINDOW)
    except OTPVerificationError:
        return False
    if user.totp_last_timecode is not None and timecode <= user.totp_last_timecode:
        return False
    user.totp_last_timecode = timecode
    if user.totp_confirmed_at is None:
        user.totp_confirmed_at = utcnow()
    return True
