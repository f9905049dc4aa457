"""The authenticated actor of a request, with CSRF enforcement on unsafe methods.

CSRF needs both a same-origin signal (Origin or Sec-Fetch-Site) and the session-bound token
(X-CSRF-Token header set by the htmx listener, or the csrf_token form field).
"""

from __future__ import annotations

from typing import Annotated
from urllib.parse import urlsplit

from fastapi import Depends, Request
from starlette.concurrency import run_in_threadpool

from app.agencies.models import Agency
from app.audit import service as audit
from app.auth import service as auth
from app.auth.actor import Actor
from app.context import AppContext, Ctx
from app.db import rls
from app.db.session import DbSession
from app.errors import Forbidden, Unauthenticated

SESSION_COOKIE = "__Host-passage"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
CSRF_HEADER = "x-csrf-token"
CSRF_FIELD = "csrf_token"


def _origin_of(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}".lower()


def same_origin(request: Request, ctx: AppContext) -> bool:
    fetch_site = request.headers.get("sec-fetch-site")
    if fetch_site is not None and fetch_site not in ("same-origin", "none"):
        return False
    origin = request.headers.get("origin")
    if origin is None or origin == "null":
        # Browsers send Origin on every unsafe request, but "null" after some redirects and
        # privacy settings; then only Sec-Fetch-Site (not settable by scripts) can vouch.
        return fetch_site == "same-origin"
    allowed = {_origin_of(ctx.settings.base_url), _origin_of(str(request.base_url))}
    return origin.lower() in allowed


async def _form_token(request: Request) -> str | None:
    if request.method in SAFE_METHODS or CSRF_HEADER in request.headers:
        return None
    content_type = request.headers.get("content-type", "")
    if content_type.startswith(("application/x-www-form-urlencoded", "multipart/form-data")):
        form = await request.form()
        value = form.get(CSRF_FIELD)
        return value if isinstance(value, str) else None
    return None


def _resolve_bearer(request: Request, session: DbSession, ctx: AppContext, token: str) -> Actor:
    """Machine clients: a short-lived signed token, no cookie, so no CSRF exposure."""
    from app.auth.break_glass import active_grants
    from app.auth.models import User
    from app.auth.tokens import subject
    from app.crypto.jose_strict import TokenError

    try:
        user_id, issued_at = subject(ctx, token)
    except TokenError as exc:
        raise Unauthenticated("The access token was refused.", code="invalid_token") from exc
    user = session.get(User, user_id)
    if (
        user is None
        or not user.is_active
        or issued_at < user.sessions_valid_after.replace(microsecond=0)
    ):
        raise Unauthenticated("The access token was refused.", code="invalid_token")
    agency = session.get(Agency, user.agency_id)
    actor = auth.actor_for(user, agency, None, active_grants(session, user.id))
    rls.apply_actor(session, actor, ctx.policy)
    request.state.user, request.state.actor = user, actor
    return actor


def _resolve(
    request: Request,
    session: DbSession,
    ctx: AppContext,
    form_token: str | None,
    *,
    allow_mfa_pending: bool,
) -> Actor:
    authorization = request.headers.get("authorization", "")
    if authorization.lower().startswith("bearer ") and not allow_mfa_pending:
        return _resolve_bearer(request, session, ctx, authorization[7:].strip())
    result = auth.authenticate(session, ctx, request.cookies.get(SESSION_COOKIE))
    if result is None:
        raise Unauthenticated("Please sign in.")
    user, user_session = result
    if not user_session.mfa_completed and not allow_mfa_pending:
        raise Unauthenticated("Second factor required.", code="mfa_required")
    agency = session.get(Agency, user.agency_id)
    from app.auth.break_glass import active_grants  # late import: break-glass builds on cases

    actor = auth.actor_for(user, agency, user_session, active_grants(session, user.id))
    rls.apply_actor(session, actor, ctx.policy)
    if request.method not in SAFE_METHODS:
        token = request.headers.get(CSRF_HEADER) or form_token
        if not same_origin(request, ctx) or not auth.csrf_matches(ctx, user_session, token):
            audit.record(session, actor, "csrf_rejected", details={"path_kind": request.method})
            raise Forbidden(
                "This request could not be verified. Reload the page and try again.",
                code="csrf_failed",
            )
    request.state.user_session = user_session
    request.state.user = user
    request.state.actor = actor
    return actor


async def current_actor(request: Request, session: DbSession, ctx: Ctx) -> Actor:
    form_token = await _form_token(request)
    return await run_in_threadpool(
        _resolve, request, session, ctx, form_token, allow_mfa_pending=False
    )


async def current_actor_mfa_pending(request: Request, session: DbSession, ctx: Ctx) -> Actor:
    form_token = await _form_token(request)
    return await run_in_threadpool(
        _resolve, request, session, ctx, form_token, allow_mfa_pending=True
    )


CurrentActor = Annotated[Actor, Depends(current_actor)]
PendingActor = Annotated[Actor, Depends(current_actor_mfa_pending)]
