"""Sign-in screens: login, TOTP enrolment and prompt, password change, logout, language.

Mirrors the JSON login (app/auth/api.py): one answer for unknown users and wrong passwords,
throttling per account and address, a new session at login and after the second factor.
"""

from __future__ import annotations

import pyotp
from fastapi import APIRouter, Request
from starlette.responses import RedirectResponse, Response

from app.audit import service as audit
from app.auth import service as auth
from app.auth import totp
from app.auth.api import client_address, set_session_cookie
from app.auth.dependencies import SESSION_COOKIE, CurrentActor, PendingActor
from app.auth.models import User, UserSession
from app.auth.passwords import hash_password, password_problems, verify_password
from app.context import Ctx
from app.db.base import utcnow
from app.db.session import DbSession
from app.errors import TooManyRequests
from app.web import labels
from app.web.deps import Form, require_same_origin, text
from app.web.errors import HtmlRoute, redirect
from app.web.i18n import LANG_COOKIE, LOCALES, N_
from app.web.templating import render, safe_next, translate

router = APIRouter(route_class=HtmlRoute)

THROTTLED = N_("Too many attempts. Wait a while and try again.")


def _throttled(
    request: Request, template: str, exc: TooManyRequests, **context: object
) -> Response:
    return render(
        request,
        template,
        {"error": translate(request, THROTTLED), **context},
        status_code=429,
        headers={"Retry-After": str(exc.retry_after)},
    )


@router.get("/")
def home(request: Request, actor: CurrentActor) -> Response:
    return redirect(request, labels.ROLE_HOME.get(actor.role, "/account/password"))


# -- login -----------------------------------------------------------------------------------
@router.get("/login")
def login_page(request: Request, session: DbSession, ctx: Ctx) -> Response:
    found = auth.authenticate(session, ctx, request.cookies.get(SESSION_COOKIE))
    if found is not None:
        return redirect(request, "/" if found[1].mfa_completed else "/mfa")
    return render(request, "auth/login.html", {"error": None})


@router.post("/login")
def login_submit(request: Request, form: Form, session: DbSession, ctx: Ctx) -> Response:
    require_same_origin(request, ctx)
    username = text(form, "username", limit=80)
    raw_password = form.get("password")
    password = raw_password[:256] if isinstance(raw_password, str) else ""
    errors = {}
    if not username:
        errors["username"] = translate(request, N_("Enter your user name."))
    if not password:
        errors["password"] = translate(request, N_("Enter your password."))
    values = {"username": username}
    if errors:
        return render(
            request,
            "auth/login.html",
            {"error": None, "errors": errors, "values": values},
            status_code=422,
        )
    try:
        outcome = auth.login(session, ctx, username, password, client_address(request))
    except TooManyRequests as exc:
        return _throttled(request, "auth/login.html", exc, values=values)
    if outcome.user_session is None or outcome.token is None:
        # Same answer for unknown users and wrong passwords; the throttle rows still commit.
        message = translate(request, N_("Unknown user name or wrong password."))
        return render(
            request, "auth/login.html", {"error": message, "values": values}, status_code=401
        )
    target = "/" if outcome.user_session.mfa_completed else "/mfa"
    response = RedirectResponse(target, status_code=303)
    set_session_cookie(response, ctx, outcome.token)
    return response


@router.post("/logout")
def logout(request: Request, actor: PendingActor, session: DbSession) -> Response:
    auth.logout(session, request.state.user_session, actor)
    response = RedirectResponse("/login", status_code=303)
    response.delete_cookie(SESSION_COOKIE, path="/", secure=True, httponly=True, samesite="strict")
    return response


# -- second factor -----------------------------------------------------------------------------
def _secret_groups(secret: str) -> str:
    return " ".join(secret[i : i + 4] for i in range(0, len(secret), 4))


def _enrol_page(
    request: Request, ctx: Ctx, user: User, *, error: str | None, status_code: int = 200
) -> Response:
    seed = totp.open_seed(ctx, user)
    uri = pyotp.TOTP(seed).provisioning_uri(name=user.username, issuer_name=totp.ISSUER)
    return render(
        request,
        "auth/mfa_enrol.html",
        {"secret": _secret_groups(seed), "uri": uri, "started": True, "error": error},
        status_code=status_code,
    )


@router.get("/mfa")
def mfa_page(request: Request, actor: PendingActor, ctx: Ctx) -> Response:
    user: User = request.state.user
    user_session: UserSession = request.state.user_session
    if user_session.mfa_completed:
        return redirect(request, "/")
    if user.totp_confirmed_at is None:
        if user.totp_secret_sealed is not None:
            return _enrol_page(request, ctx, user, error=None)
        return render(request, "auth/mfa_enrol.html", {"started": False, "error": None})
    return render(request, "auth/mfa_prompt.html", {"error": None})


@router.post("/mfa/enrol")
def mfa_enrol(request: Request, actor: PendingActor, session: DbSession, ctx: Ctx) -> Response:
    user: User = request.state.user
    if user.totp_confirmed_at is not None or request.state.user_session.mfa_completed:
        return redirect(request, "/mfa")
    totp.start_enrolment(ctx, user)
    audit.record(session, actor, "totp_enrolment_started")
    return _enrol_page(request, ctx, user, error=None)


@router.post("/mfa/verify")
def mfa_verify(
    request: Request, form: Form, actor: PendingActor, session: DbSession, ctx: Ctx
) -> Response:
    user: User = request.state.user
    old_session: UserSession = request.state.user_session
    if old_session.mfa_completed:
        return redirect(request, "/")
    enrolling = user.totp_confirmed_at is None
    template = "auth/mfa_enrol.html" if enrolling else "auth/mfa_prompt.html"
    try:
        auth.check_throttle(session, ctx, user.username, None)
    except TooManyRequests as exc:
        return _throttled(request, template, exc, started=False)
    code = text(form, "code", limit=12).replace(" ", "")
    if not (len(code) == 6 and code.isdigit()) or not totp.verify_code(ctx, user, code):
        auth.register_failure(session, ctx, user.username, client_address(request))
        audit.record(session, actor, "totp_failed")
        message = translate(request, N_("That code is not valid (or was already used)."))
        if enrolling and user.totp_secret_sealed is not None:
            return _enrol_page(request, ctx, user, error=message, status_code=401)
        if enrolling:
            return render(request, template, {"started": False, "error": message}, status_code=401)
        return render(request, template, {"error": message}, status_code=401)
    _, token = auth.rotate_session(session, ctx, user, old_session)
    audit.record(session, actor, "totp_verified")
    response = RedirectResponse("/", status_code=303)
    set_session_cookie(response, ctx, token)
    return response


# -- password -----------------------------------------------------------------------------------
@router.get("/account/password")
def password_page(request: Request, actor: CurrentActor) -> Response:
    changed = request.query_params.get("changed") == "1"
    notice = translate(request, N_("Your password was changed.")) if changed else None
    return render(request, "auth/password.html", {"notice": notice})


@router.post("/account/password")
def password_submit(
    request: Request, form: Form, actor: CurrentActor, session: DbSession, ctx: Ctx
) -> Response:
    user: User = request.state.user
    try:
        auth.check_throttle(session, ctx, user.username, None)
    except TooManyRequests as exc:
        return _throttled(request, "auth/password.html", exc)

    def field(name: str) -> str:
        value = form.get(name)
        return value[:300] if isinstance(value, str) else ""

    current, new, confirm = field("current_password"), field("new_password"), field("confirm")
    errors: dict[str, str] = {}
    valid, _ = verify_password(current, user.password_hash)
    if not valid:
        auth.register_failure(session, ctx, user.username, client_address(request))
        errors["current_password"] = translate(request, N_("The current password is wrong."))
    problems = password_problems(new, username=user.username)
    if problems:
        errors["new_password"] = "; ".join(
            translate(request, labels.PASSWORD_PROBLEMS.get(p, p)) for p in problems
        )
    elif valid and new == current:
        errors["new_password"] = translate(
            request, N_("Choose a password different from the current one.")
        )
    if new != confirm:
        errors["confirm"] = translate(request, N_("The two new passwords do not match."))
    if errors:
        # Passwords are never sent back into the form.
        return render(request, "auth/password.html", {"errors": errors}, status_code=422)
    user.password_hash = hash_password(new)
    # Every other session of this user ends; this browser gets a fresh one.
    auth.revoke_all_sessions(session, user, at=utcnow())
    new_session, token = auth.open_session(session, ctx, user)
    new_session.mfa_completed = True
    audit.record(session, actor, "password_changed")
    response = RedirectResponse("/account/password?changed=1", status_code=303)
    set_session_cookie(response, ctx, token)
    return response


# -- language -----------------------------------------------------------------------------------
@router.post("/lang")
def switch_language(request: Request, form: Form, ctx: Ctx) -> Response:
    require_same_origin(request, ctx)
    lang = text(form, "lang", limit=5)
    response = RedirectResponse(safe_next(text(form, "next", limit=300)), status_code=303)
    if lang in LOCALES:
        response.set_cookie(
            LANG_COOKIE,
            lang,
            max_age=365 * 24 * 3600,
            path="/",
            secure=ctx.settings.session_cookie_secure,
            httponly=True,
            samesite="lax",
        )
    return response
