"""Short-lived machine API tokens (ES256 JWT through the strict jose wrapper).

Five minutes at most, bound to the issuing instance (iss) and its API (aud), typed
`at+jwt`. Revocation is by the user's `sessions_valid_after`: disabling an account or
"log out everywhere" kills its tokens at the next request.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from app.auth.models import User
from app.context import AppContext
from app.crypto.jose_strict import TokenError, sign, verify

TOKEN_TYPE = "at+jwt"  # noqa: S105 (a JWT type, not a secret)
LIFETIME_SECONDS = 300


def _issuer(ctx: AppContext) -> str:
    return ctx.settings.base_url.rstrip("/")


def _audience(ctx: AppContext) -> str:
    return _issuer(ctx) + "/api"


def issue(ctx: AppContext, user: User) -> str:
    return sign(
        {"iss": _issuer(ctx), "aud": _audience(ctx), "sub": str(user.id), "role": user.role},
        ctx.keys.signing_private_pem,
        kid="instance",
        typ=TOKEN_TYPE,
        lifetime_seconds=LIFETIME_SECONDS,
    )


def subject(ctx: AppContext, token: str) -> tuple[uuid.UUID, datetime]:
    """The user id and issue time of a valid token, or TokenError."""
    claims = verify(
        token,
        ctx.keys.signing_public_pem,
        audience=_audience(ctx),
        issuer=_issuer(ctx),
        typ=TOKEN_TYPE,
        max_lifetime_seconds=LIFETIME_SECONDS,
    )
    try:
        return uuid.UUID(str(claims.get("sub"))), datetime.fromtimestamp(claims["iat"], UTC)
    except ValueError as exc:
        raise TokenError("bad subject") from exc
