"""Sealed drafts of the multi-step registration form.

What the user typed in earlier steps travels with the form as one opaque hidden field:
AES-256-GCM under a key derived from the session key ring, bound to the browser session
(a draft from another session, or altered, does not open) and to a 12-hour lifetime. The
server stores nothing, so there is never an unsealed draft at rest.
"""

from __future__ import annotations

import base64
import json
import secrets
import time
import zlib
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from app.auth.models import UserSession
from app.context import AppContext

LIFETIME_SECONDS = 12 * 3600
Draft = dict[str, str | list[str]]


class DraftError(Exception):
    """The draft could not be opened (another session, altered, or too old)."""


def _aead(ctx: AppContext) -> AESGCM:
    key = HKDF(
        algorithm=hashes.SHA256(), length=32, salt=None, info=b"passage:web-draft:v1"
    ).derive(ctx.keys.session_key)
    return AESGCM(key)


def _aad(user_session: UserSession) -> bytes:
    return b"passage:draft|" + user_session.user_id.bytes + user_session.id.bytes


def seal(ctx: AppContext, user_session: UserSession, draft: Draft) -> str:
    payload = json.dumps({"t": int(time.time()), "d": draft}, separators=(",", ":"))
    nonce = secrets.token_bytes(12)
    sealed = _aead(ctx).encrypt(nonce, zlib.compress(payload.encode()), _aad(user_session))
    return base64.urlsafe_b64encode(nonce + sealed).decode()


def open_draft(ctx: AppContext, user_session: UserSession, token: str) -> Draft:
    if not token:
        return {}
    try:
        blob = base64.urlsafe_b64decode(token.encode())
        plain = _aead(ctx).decrypt(blob[:12], blob[12:], _aad(user_session))
        data: Any = json.loads(zlib.decompress(plain))
    except (ValueError, InvalidTag, zlib.error) as exc:
        raise DraftError("the draft could not be opened") from exc
    if not isinstance(data, dict) or time.time() - int(data.get("t", 0)) > LIFETIME_SECONDS:
        raise DraftError("the draft is too old")
    values = data.get("d")
    if not isinstance(values, dict):
        raise DraftError("the draft is malformed")
    out: Draft = {}
    for key, value in values.items():
        if isinstance(value, str):
            out[str(key)] = value
        elif isinstance(value, list):
            out[str(key)] = [str(v) for v in value]
    return out
