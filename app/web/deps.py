"""Shared pieces of the screens: form data, role gates, attempts inside a savepoint."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, TypeVar

from fastapi import Depends, Request
from sqlalchemy.orm import Session
from starlette.datastructures import FormData

from app.auth.actor import Actor
from app.auth.dependencies import same_origin
from app.context import AppContext
from app.errors import DomainError, Forbidden, NotFound

T = TypeVar("T")


async def form_data(request: Request) -> FormData:
    """The submitted form (already parsed by the CSRF check when there was one)."""
    return await request.form()


Form = Annotated[FormData, Depends(form_data)]


def text(form: FormData, name: str, *, limit: int = 5000) -> str:
    value = form.get(name)
    return value.strip()[:limit] if isinstance(value, str) else ""


def texts(form: FormData, name: str, *, limit: int = 300) -> list[str]:
    return [v.strip()[:limit] for v in form.getlist(name) if isinstance(v, str) and v.strip()]


def checked(form: FormData, name: str) -> bool:
    return form.get(name) in ("on", "true", "1", "yes")


def version_of(form: FormData) -> int:
    raw = text(form, "version", limit=12)
    return int(raw) if raw.isdigit() else -1


def require_role(actor: Actor, *roles: str) -> None:
    """Screens of other roles do not exist for this actor: 404, like a missing page."""
    if actor.role not in roles:
        raise NotFound()


def require_permission(ctx: AppContext, actor: Actor, permission: str) -> None:
    if not ctx.policy.can(actor.role, permission):
        raise NotFound()


def require_same_origin(request: Request, ctx: AppContext) -> None:
    """For forms posted before there is a session (login, language): same-origin only."""
    if not same_origin(request, ctx):
        raise Forbidden(
            "This request could not be verified. Reload the page and try again.",
            code="csrf_failed",
        )


def attempt(session: Session, action: Callable[[], T]) -> tuple[T | None, DomainError | None]:
    """Run a service call inside a savepoint; on a domain error undo it and return the error.

    The screen can then show the form again with what the user typed. A refused decision
    keeps its audit event (like the request's unit of work does for `keep_audit` errors).
    """
    savepoint = session.begin_nested()
    try:
        result = action()
    except DomainError as exc:
        if exc.keep_audit:
            savepoint.commit()
        else:
            savepoint.rollback()
        return None, exc
    savepoint.commit()
    return result, None
