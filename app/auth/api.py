"""JSON login for API clients and tests; browsers use the HTML login screen."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse
from pydantic import Field

from app.audit import service as audit
from app.auth import service as auth
from app.auth import totp
from app.auth.dependencies import SESSION_COOKIE, CurrentActor, PendingActor
from app.common.schemas import StrictInput
from app.context import AppContext, Ctx
from app.db.session import DbSession
from app.errors import Conflict

router = APIRouter(prefix="/api/v1/auth", tags=["auth"])


class LoginIn(StrictInput):
    username: str = Field(min_length=1, max_length=80)
    password: str = Field(min_length=1, max_length=256)


def set_session_cookie(response: Response, ctx: AppContext, token: str) -> None:
    response.set_cookie(
        SESSION_COOKIE,
        token,
        httponly=True,
        secure=ctx.settings.session_cookie_secure,
        samesite="strict",
        path="/",
        max_age=ctx.settings.session_absolute_hours * 3600,
    )


def client_address(request: Request) -> str | None:
    return request.client.host if request.client else None


@router.post("/login")
def login(data: LoginIn, request: Request, session: DbSession, ctx: Ctx) -> Response:
    outcome = auth.login(session, ctx, data.username, data.password, client_address(request))
    if outcome.user_session is None or outcome.token is None:
        # Same answer for unknown users and wrong passwords; the throttle rows still commit.
        return JSONResponse(
            {"error": {"code": "login_failed", "message": auth.GENERIC_LOGIN_ERROR}},
            status_code=401,
        )
    body = {
        "mfa_required": not outcome.user_session.mfa_completed,
        "csrf_token": auth.csrf_token(ctx, outcome.user_session),
    }
    response = JSONResponse(body)
    set_session_cookie(response, ctx, outcome.token)
    return response


@router.post("/logout", status_code=204)
def logout(request: Request, actor: CurrentActor, session: DbSession) -> Response:
    auth.logout(session, request.state.user_session, actor)
    response = Response(status_code=204)
    response.delete_cookie(SESSION_COOKIE, path="/", secure=True, httponly=True, samesite="strict")
    return response


class TotpIn(StrictInput):
    code: str = Field(min_length=6, max_length=6, pattern=r"^[0-9]{6}$")


@router.post("/totp/enrolment")
def totp_enrolment(
    request: Request, actor: PendingActor, session: DbSession, ctx: Ctx
) -> dict[str, str]:
    """Start TOTP enrolment (only before a factor is confirmed). Returns the otpauth URI."""
    user = request.state.user
    if user.totp_confirmed_at is not None:
        raise Conflict("a second factor is already enrolled; ask an administrator to reset it")
    uri = totp.start_enrolment(ctx, user)
    audit.record(session, actor, "totp_enrolment_started")
    return {"provisioning_uri": uri}


@router.post("/totp/verify")
def totp_verify(
    data: TotpIn, request: Request, actor: PendingActor, session: DbSession, ctx: Ctx
) -> Response:
    """Check a code; on success the session is replaced by a new one with MFA completed."""
    user = request.state.user
    old_session = request.state.user_session
    auth.check_throttle(session, ctx, user.username, None)
    if not totp.verify_code(ctx, user, data.code):
        auth.register_failure(session, ctx, user.username, client_address(request))
        audit.record(session, actor, "totp_failed")
        return JSONResponse(
            {
                "error": {
                    "code": "totp_failed",
                    "message": "That code is not valid (or was already used).",
                }
            },
            status_code=401,
        )
    new_session, token = auth.rotate_session(session, ctx, user, old_session)
    audit.record(session, actor, "totp_verified")
    response = JSONResponse(
        {"mfa_required": False, "csrf_token": auth.csrf_token(ctx, new_session)}
    )
    set_session_cookie(response, ctx, token)
    return response


@router.post("/token")
def access_token(
    request: Request, actor: CurrentActor, session: DbSession, ctx: Ctx
) -> dict[str, str | int]:
    """A 5-minute signed access token for scripts and partner systems acting as this user."""
    from app.auth.tokens import LIFETIME_SECONDS, issue

    if request.headers.get("authorization"):
        raise Conflict("get a new token with your session, not with another token")
    audit.record(
        session, actor, "access_token_issued", details={"lifetime_seconds": LIFETIME_SECONDS}
    )
    return {
        "access_token": issue(ctx, request.state.user),
        "token_type": "Bearer",
        "expires_in": LIFETIME_SECONDS,
    }
