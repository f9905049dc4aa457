"""Row-level security context (PostgreSQL backstop behind the application's own scoping).

Each transaction states who is asking with `set_config(..., is_local => true)`, so the
context dies with the transaction (PgBouncer transaction pooling is safe). A connection
that states nothing sees no case and no victim. Privileged paths (erasure, break-glass
checks, CLI jobs) switch to the `system` scope explicitly, in code that is audited.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import text
from sqlalchemy.orm import Session

from app.auth.actor import Actor
from app.authz.policy import AccessPolicy

_SET = text(
    "SELECT set_config('passage.scope', :scope, true), "
    "set_config('passage.agency_id', :agency, true), "
    "set_config('passage.user_id', :user, true)"
)


def _is_postgres(session: Session) -> bool:
    return session.get_bind().dialect.name == "postgresql"


def set_context(session: Session, *, scope: str, agency_id: str = "", user_id: str = "") -> None:
    if _is_postgres(session):
        session.execute(_SET, {"scope": scope, "agency": agency_id, "user": user_id})


def apply_actor(session: Session, actor: Actor, policy: AccessPolicy) -> None:
    scope = policy.roles[actor.role].scope if actor.role in policy.roles else "none"
    set_context(
        session,
        scope=scope,
        agency_id=str(actor.agency_id) if actor.agency_id else "",
        user_id=str(actor.user_id) if actor.user_id else "",
    )


def apply_system(session: Session) -> None:
    set_context(session, scope="system")


@contextmanager
def system_scope(session: Session, *, restore: Actor, policy: AccessPolicy) -> Iterator[None]:
    """Temporarily see every row (e.g. to check a case exists before break-glass)."""
    apply_system(session)
    try:
        yield
    finally:
        apply_actor(session, restore, policy)


def system_session(session: Session) -> Session:
    """Mark a session (CLI jobs, demo loading, benchmarks) as system for each transaction."""
    from sqlalchemy import event

    @event.listens_for(session, "after_begin")
    def _system(sess: Session, _transaction: object, connection: object) -> None:
        if connection.dialect.name == "postgresql":  # type: ignore[attr-defined]
            connection.execute(_SET, {"scope": "system", "agency": "", "user": ""})  # type: ignore[attr-defined]

    return session
