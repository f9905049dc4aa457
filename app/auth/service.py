"""Login, server-side sessions, throttling and CSRF tokens.

The cookie carries a random 256-bit token; only HMAC(session key, token) is stored, so a
database leak yields no usable session. Sessions expire after 15 idle minutes and 12 hours
in all, rotate at login and die at logout or when the account is disabled.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from app.agencies.models import Agency
from app.audit import service as audit
from app.auth.actor import Actor
from app.auth.models import LoginThrottle, User, UserSession
from app.auth.passwords import verify_password
from app.context import AppContext
from app.db.base import utcnow
from app.errors import TooManyRequests

MAX_ATTEMPTS_PER_MINUTE = 6
LOCK_MINUTES = 30
GENERIC_LOGIN_ERROR = "Unknown user name or wrong password."


def _hmac(key: bytes, *parts: bytes) -> bytes:
    return hmac.new(key, b"\x1f".join(parts), hashlib.sha256).digest()


def token_digest(ctx: AppContext, token: str) -> bytes:
    return _hmac(ctx.keys.session_key, b"session", token.encode())


def csrf_token(ctx: AppContext, user_session: UserSession) -> str:
    """Session-bound synchronizer token: derived, never stored, dies with the session."""
    return _hmac(ctx.keys.session_key, b"csrf", user_session.id.bytes).hex()


def csrf_matches(ctx: AppContext, user_session: UserSession, candidate: str | None) -> bool:
    return candidate is not None and hmac.compare_digest(csrf_token(ctx, user_session), candidate)


# -- throttling ------------------------------------------------------------------------------
def _throttle_keys(ctx: AppContext, username: str, address: str | None) -> list[str]:
    keys = ["acct:" + _hmac(ctx.keys.session_key, b"acct", username.casefold().encode()).hex()[:40]]
    if address:
        keys.append("addr:" + _hmac(ctx.keys.session_key, b"addr", address.encode()).hex()[:40])
    return keys


def check_throttle(session: Session, ctx: AppContext, username: str, address: str | None) -> None:
    now = utcnow()
    for key in _throttle_keys(ctx, username, address):
        row = session.get(LoginThrottle, key)
        if row is not None and row.locked_until is not None and row.locked_until > now:
            wait = int((row.locked_until - now).total_seconds()) + 1
            raise TooManyRequests("Too many login attempts. Try again later.", retry_after=wait)


def register_failure(session: Session, ctx: AppContext, username: str, address: str | None) -> None:
    now = utcnow()
    for key in _throttle_keys(ctx, username, address):
        row = session.get(LoginThrottle, key)
        if row is None:
            row = LoginThrottle(key=key, window_started_at=now, attempts=0)
            session.add(row)
        if now - row.window_started_at > timedelta(minutes=1):
            row.window_started_at, row.attempts = now, 0
        row.attempts += 1
        if row.attempts >= MAX_ATTEMPTS_PER_MINUTE:
            row.locked_until = now + timedelta(minutes=LOCK_MINUTES)
    session.flush()


def _clear_account_throttle(session: Session, ctx: AppContext, username: str) -> None:
    row = session.get(LoginThrottle, _throttle_keys(ctx, username, None)[0])
    if row is not None:
        session.delete(row)


# -- login and sessions ------------------------------------------------------------------------
@dataclass(frozen=True)
class LoginOutcome:
    user: User | None
    user_session: UserSession | None
    token: str | None


def login(
    session: Session, ctx: AppContext, username: str, password: str, address: str | None
) -> LoginOutcome:
    """Check the password; on success open a new session (the old cookie is never reused)."""
    check_throttle(session, ctx, username, address)
    user = session.scalars(
        select(User).where(User.username == username.strip().casefold())
    ).one_or_none()
    valid, new_hash = verify_password(password, user.password_hash if user else None)
    agency = session.get(Agency, user.agency_id) if user else None
    if user is None or not valid or not user.is_active or agency is None or not agency.is_active:
        register_failure(session, ctx, username, address)
        audit.record(
            session,
            Actor.system("login"),
            "login_failed",
            chain_key="auth",
            details={"known_user": False},
        )
        return LoginOutcome(None, None, None)
    if new_hash is not None:
        user.password_hash = new_hash
    _clear_account_throttle(session, ctx, username)
    user_session, token = open_session(session, ctx, user)
    audit.record(
        session,
        actor_for(user, agency, user_session),
        "login",
        details={"mfa_pending": not user_session.mfa_completed},
    )
    return LoginOutcome(user, user_session, token)


def open_session(session: Session, ctx: AppContext, user: User) -> tuple[UserSession, str]:
    token = secrets.token_urlsafe(32)
    now = utcnow()
    needs_mfa = ctx.policy.role(user.role).mfa_required or user.totp_secret_sealed is not None
    user_session = UserSession(
        user_id=user.id,
        token_hmac=token_digest(ctx, token),
        created_at=now,
        last_seen_at=now,
        absolute_expiry=now + timedelta(hours=ctx.settings.session_absolute_hours),
        mfa_completed=not needs_mfa,
        reauthenticated_at=now,
    )
    session.add(user_session)
    session.flush()
    return user_session, token


def rotate_session(
    session: Session, ctx: AppContext, user: User, old: UserSession
) -> tuple[UserSession, str]:
    """New token after a privilege change (MFA passed); the old one stops working at once."""
    old.revoked_at = utcnow()
    new_session, token = open_session(session, ctx, user)
    new_session.mfa_completed = True
    return new_session, token


def authenticate(
    session: Session, ctx: AppContext, token: str | None
) -> tuple[User, UserSession] | None:
    if not token or len(token) > 100:
        return None
    user_session = session.scalars(
        select(UserSession).where(UserSession.token_hmac == token_digest(ctx, token))
    ).one_or_none()
    if user_session is None or user_session.revoked_at is not None:
        return None
    now = utcnow()
    idle_limit = timedelta(minutes=ctx.settings.session_idle_minutes)
    if now >= user_session.absolute_expiry or now - user_session.last_seen_at > idle_limit:
        user_session.revoked_at = now
        return None
    user = session.get(User, user_session.user_id)
    if user is None or not user.is_active or user_session.created_at < user.sessions_valid_after:
        return None
    # Touch at most once a minute: fewer writes, same idle semantics to the minute.
    if now - user_session.last_seen_at > timedelta(seconds=60):
        user_session.last_seen_at = now
    return user, user_session


def logout(session: Session, user_session: UserSession, actor: Actor) -> None:
    user_session.revoked_at = utcnow()
    audit.record(session, actor, "logout")


def revoke_all_sessions(session: Session, user: User, at: datetime | None = None) -> None:
    moment = at or utcnow()
    user.sessions_valid_after = moment
    session.execute(
        update(UserSession)
        .where(UserSession.user_id == user.id, UserSession.revoked_at.is_(None))
        .values(revoked_at=moment)
    )


def actor_for(
    user: User,
    agency: Agency | None,
    user_session: UserSession | None = None,
    break_glass: frozenset[uuid.UUID] = frozenset(),
) -> Actor:
    return Actor(
        user_id=user.id,
        role=user.role,
        agency_id=user.agency_id,
        agency_type=agency.type if agency else None,
        country=agency.country if agency else None,
        session_id=user_session.id if user_session else None,
        username=user.username,
        break_glass_case_ids=break_glass,
    )
