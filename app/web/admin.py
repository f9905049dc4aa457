"""Administration screens: agencies and user accounts. No case content is ever shown here.

The functions at the top are the use cases (they never commit; the request does), the
routes below them are thin. Every change is audited on the administrator's chain.
"""

from __future__ import annotations

import re
import uuid
from typing import Any

from fastapi import APIRouter, Request
from sqlalchemy import select
from sqlalchemy.orm import Session
from starlette.responses import Response

from app.agencies.models import Agency
from app.audit import service as audit
from app.auth import service as auth
from app.auth.actor import Actor
from app.auth.dependencies import CurrentActor
from app.auth.models import User
from app.auth.passwords import hash_password, password_problems
from app.cases.service import require
from app.context import AppContext, Ctx
from app.db.session import DbSession
from app.errors import Conflict, InvalidInput, NotFound
from app.vocab import AgencyType, validate_country_code
from app.web import labels
from app.web.deps import Form, attempt, require_role, text
from app.web.errors import HtmlRoute, domain_message, redirect
from app.web.i18n import N_
from app.web.templating import render, translate

router = APIRouter(route_class=HtmlRoute)

USERNAME_RE = re.compile(r"^[a-z0-9._\-]{3,80}$")
SAVED = {
    "user_created": N_("The account was created. Give the user their initial password in person."),
    "user_deactivated": N_("The account was deactivated and its sessions ended."),
    "totp_reset": N_("The second factor was reset. The user enrols again at next sign-in."),
    "agency_created": N_("The agency was created."),
    "agency_deactivated": N_("The agency was deactivated and its users' sessions ended."),
}


# -- use cases ------------------------------------------------------------------------------------
def list_users(session: Session, ctx: AppContext, actor: Actor) -> list[tuple[User, Agency]]:
    require(ctx, actor, "users.manage")
    stmt = select(User, Agency).join(Agency, Agency.id == User.agency_id).order_by(User.username)
    return [(user, agency) for user, agency in session.execute(stmt)]


def list_agencies(session: Session, ctx: AppContext, actor: Actor) -> list[Agency]:
    require(ctx, actor, "agencies.manage")
    return list(session.scalars(select(Agency).order_by(Agency.name)))


def create_user(
    session: Session,
    ctx: AppContext,
    actor: Actor,
    *,
    username: str,
    display_name: str,
    role: str,
    agency_id: uuid.UUID,
    password: str,
) -> User:
    require(ctx, actor, "users.manage")
    name = username.strip().casefold()
    if not USERNAME_RE.match(name):
        raise InvalidInput("invalid user name", code="invalid_username")
    if session.scalars(select(User.id).where(User.username == name)).first() is not None:
        raise Conflict("this user name is taken", code="username_taken")
    if role not in ctx.policy.roles:
        raise InvalidInput("unknown role", code="invalid_role")
    agency = session.get(Agency, agency_id)
    if agency is None or not agency.is_active:
        raise InvalidInput("the agency does not exist or is inactive", code="invalid_agency")
    if agency.type not in ctx.policy.role(role).agency_types:
        raise InvalidInput("this role cannot belong to this type of agency", code="role_agency")
    if password_problems(password, username=name):
        raise InvalidInput("the password does not meet the policy", code="weak_password")
    user = User(
        username=name,
        display_name=display_name.strip() or name,
        agency_id=agency.id,
        role=role,
        password_hash=hash_password(password),
    )
    session.add(user)
    session.flush()
    audit.record(
        session,
        actor,
        "user_created",
        entity_type="user",
        entity_id=user.id,
        details={"role": role, "agency_id": str(agency.id)},
    )
    return user


def _user(session: Session, user_id: uuid.UUID) -> User:
    user = session.get(User, user_id)
    if user is None:
        raise NotFound()
    return user


def deactivate_user(session: Session, ctx: AppContext, actor: Actor, user_id: uuid.UUID) -> None:
    require(ctx, actor, "users.manage")
    user = _user(session, user_id)
    if user.id == actor.user_id:
        raise Conflict("you cannot deactivate your own account", code="self_deactivation")
    user.is_active = False
    auth.revoke_all_sessions(session, user)
    audit.record(session, actor, "user_deactivated", entity_type="user", entity_id=user.id)


def reset_totp(session: Session, ctx: AppContext, actor: Actor, user_id: uuid.UUID) -> None:
    require(ctx, actor, "users.manage")
    user = _user(session, user_id)
    user.totp_secret_sealed = None
    user.totp_confirmed_at = None
    user.totp_last_timecode = None
    auth.revoke_all_sessions(session, user)
    audit.record(session, actor, "totp_reset", entity_type="user", entity_id=user.id)


def create_agency(
    session: Session,
    ctx: AppContext,
    actor: Actor,
    *,
    name: str,
    type_: str,
    country: str,
    region: str | None,
) -> Agency:
    require(ctx, actor, "agencies.manage")
    if type_ not in {t.value for t in AgencyType}:
        raise InvalidInput("unknown agency type", code="invalid_agency_type")
    if session.scalars(select(Agency.id).where(Agency.name == name)).first() is not None:
        raise Conflict("an agency with this name exists", code="agency_taken")
    agency = Agency(name=name, type=type_, country=validate_country_code(country), region=region)
    session.add(agency)
    session.flush()
    audit.record(
        session,
        actor,
        "agency_created",
        entity_type="agency",
        entity_id=agency.id,
        details={"type": type_, "country": agency.country},
    )
    return agency


def deactivate_agency(
    session: Session, ctx: AppContext, actor: Actor, agency_id: uuid.UUID
) -> None:
    require(ctx, actor, "agencies.manage")
    agency = session.get(Agency, agency_id)
    if agency is None:
        raise NotFound()
    if agency.id == actor.agency_id:
        raise Conflict("you cannot deactivate your own agency", code="self_deactivation")
    agency.is_active = False
    for user in session.scalars(select(User).where(User.agency_id == agency.id)):
        auth.revoke_all_sessions(session, user)
    audit.record(session, actor, "agency_deactivated", entity_type="agency", entity_id=agency.id)


# -- screens --------------------------------------------------------------------------------------
ADMIN_ERRORS = {
    "invalid_username": (
        "username",
        N_("Use 3 to 80 letters, digits, dots, dashes or underscores."),
    ),
    "username_taken": ("username", N_("This user name is taken.")),
    "invalid_role": ("role", N_("Choose one of the options.")),
    "invalid_agency": ("agency_id", N_("Choose an active agency.")),
    "role_agency": ("agency_id", N_("This role cannot belong to this type of agency.")),
    "weak_password": ("password", N_("This password does not meet the policy.")),
    "invalid_agency_type": ("type", N_("Choose one of the options.")),
    "agency_taken": ("name", N_("An agency with this name already exists.")),
}


def _saved(request: Request) -> str | None:
    key = request.query_params.get("saved", "")
    return translate(request, SAVED[key]) if key in SAVED else None


def _users_page(
    request: Request,
    session: Session,
    ctx: AppContext,
    actor: Actor,
    *,
    values: dict[str, Any] | None = None,
    errors: dict[str, str] | None = None,
    error: str | None = None,
    status_code: int = 200,
) -> Response:
    roles = [r for r in ctx.policy.roles]
    return render(
        request,
        "admin/users.html",
        {
            "users": list_users(session, ctx, actor),
            "agencies": [a for a in list_agencies(session, ctx, actor) if a.is_active],
            "roles": roles,
            "values": values or {},
            "errors": errors or {},
            "error": error,
            "notice": _saved(request),
        },
        status_code=status_code,
    )


def _agencies_page(
    request: Request,
    session: Session,
    ctx: AppContext,
    actor: Actor,
    *,
    values: dict[str, Any] | None = None,
    errors: dict[str, str] | None = None,
    error: str | None = None,
    status_code: int = 200,
) -> Response:
    return render(
        request,
        "admin/agencies.html",
        {
            "agencies": list_agencies(session, ctx, actor),
            "values": values or {},
            "errors": errors or {},
            "error": error,
            "notice": _saved(request),
        },
        status_code=status_code,
    )


@router.get("/admin")
def admin_home(request: Request, actor: CurrentActor) -> Response:
    require_role(actor, "admin")
    return redirect(request, "/admin/users")


@router.get("/admin/users")
def users(request: Request, actor: CurrentActor, session: DbSession, ctx: Ctx) -> Response:
    require_role(actor, "admin")
    return _users_page(request, session, ctx, actor)


@router.post("/admin/users")
def users_create(
    request: Request, form: Form, actor: CurrentActor, session: DbSession, ctx: Ctx
) -> Response:
    require_role(actor, "admin")
    values = {
        "username": text(form, "username", limit=80),
        "display_name": text(form, "display_name", limit=120),
        "role": text(form, "role", limit=40),
        "agency_id": text(form, "agency_id", limit=40),
    }
    raw_password = form.get("password")
    password = raw_password[:256] if isinstance(raw_password, str) else ""
    errors: dict[str, str] = {}
    if not values["display_name"]:
        errors["display_name"] = translate(request, N_("This field is required."))
    problems = password_problems(password, username=values["username"] or None)
    if problems:
        errors["password"] = "; ".join(
            translate(request, labels.PASSWORD_PROBLEMS.get(p, p)) for p in problems
        )
    agency_id: uuid.UUID | None = None
    try:
        agency_id = uuid.UUID(values["agency_id"])
    except ValueError:
        errors["agency_id"] = translate(request, N_("Choose an active agency."))
    if errors:
        return _users_page(
            request, session, ctx, actor, values=values, errors=errors, status_code=422
        )
    assert agency_id is not None
    _, failure = attempt(
        session,
        lambda: create_user(
            session,
            ctx,
            actor,
            username=values["username"],
            display_name=values["display_name"],
            role=values["role"],
            agency_id=agency_id,
            password=password,
        ),
    )
    if failure is not None:
        field, message = ADMIN_ERRORS.get(failure.code, ("", ""))
        if field:
            errors = {field: translate(request, message)}
        return _users_page(
            request,
            session,
            ctx,
            actor,
            values=values,
            errors=errors,
            error=None if field else domain_message(request, failure),
            status_code=failure.status_code,
        )
    return redirect(request, "/admin/users?saved=user_created")


@router.post("/admin/users/{user_id}/deactivate")
def users_deactivate(
    user_id: uuid.UUID, request: Request, actor: CurrentActor, session: DbSession, ctx: Ctx
) -> Response:
    require_role(actor, "admin")
    deactivate_user(session, ctx, actor, user_id)
    return redirect(request, "/admin/users?saved=user_deactivated")


@router.post("/admin/users/{user_id}/reset-totp")
def users_reset_totp(
    user_id: uuid.UUID, request: Request, actor: CurrentActor, session: DbSession, ctx: Ctx
) -> Response:
    require_role(actor, "admin")
    reset_totp(session, ctx, actor, user_id)
    return redirect(request, "/admin/users?saved=totp_reset")


@router.get("/admin/agencies")
def agencies(request: Request, actor: CurrentActor, session: DbSession, ctx: Ctx) -> Response:
    require_role(actor, "admin")
    return _agencies_page(request, session, ctx, actor)


@router.post("/admin/agencies")
def agencies_create(
    request: Request, form: Form, actor: CurrentActor, session: DbSession, ctx: Ctx
) -> Response:
    require_role(actor, "admin")
    values = {
        "name": text(form, "name", limit=200),
        "type": text(form, "type", limit=40),
        "country": text(form, "country", limit=2).upper(),
        "region": text(form, "region", limit=100),
    }
    errors: dict[str, str] = {}
    if len(values["name"]) < 2:
        errors["name"] = translate(request, N_("This field is required."))
    try:
        validate_country_code(values["country"])
    except ValueError:
        errors["country"] = translate(request, N_("Choose a valid country."))
    if errors:
        return _agencies_page(
            request, session, ctx, actor, values=values, errors=errors, status_code=422
        )
    _, failure = attempt(
        session,
        lambda: create_agency(
            session,
            ctx,
            actor,
            name=values["name"],
            type_=values["type"],
            country=values["country"],
            region=values["region"] or None,
        ),
    )
    if failure is not None:
        field, message = ADMIN_ERRORS.get(failure.code, ("", ""))
        return _agencies_page(
            request,
            session,
            ctx,
            actor,
            values=values,
            errors={field: translate(request, message)} if field else {},
            error=None if field else domain_message(request, failure),
            status_code=failure.status_code,
        )
    return redirect(request, "/admin/agencies?saved=agency_created")


@router.post("/admin/agencies/{agency_id}/deactivate")
def agencies_deactivate(
    agency_id: uuid.UUID, request: Request, actor: CurrentActor, session: DbSession, ctx: Ctx
) -> Response:
    require_role(actor, "admin")
    deactivate_agency(session, ctx, actor, agency_id)
    return redirect(request, "/admin/agencies?saved=agency_deactivated")
