"""Shared helpers for the backup, retention and erasure-journal tests (real database, real keys)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Engine, MetaData, create_engine, func, select
from sqlalchemy.pool import NullPool

from app.auth.actor import Actor
from app.cases import service
from app.cases.schemas import RegistrationIn
from app.operations.erasure_journal import enqueue_erasure
from tests.builders import registration
from tests.conftest import Live


@dataclass(frozen=True)
class Registered:
    case_id: uuid.UUID
    victim_id: uuid.UUID
    family_name: str


def caseworker(live: Live) -> Actor:
    user, agency = live.user("ngo_caseworker", "ngo")
    return Actor(user_id=user.id, role=user.role, agency_id=agency.id, agency_type=agency.type)


def administrator(live: Live) -> Actor:
    user, agency = live.user("admin", "coordinator_office")
    return Actor(user_id=user.id, role=user.role, agency_id=agency.id, agency_type=agency.type)


def register(live: Live, actor: Actor, family_name: str, **victim: Any) -> Registered:
    """Register through the real service (sealed fields, blind indexes, audit), committed."""
    data = RegistrationIn.model_validate(registration(family_name=family_name, **victim))
    with live.session() as session, session.begin():
        case = service.register(session, live.ctx, actor, data)
        return Registered(case.id, case.victim_id, family_name)


def erase(live: Live, admin: Actor, victim_id: uuid.UUID, reason: str = "subject_request") -> None:
    """Erase through the real path, plus the journal hook requested for erase_victim."""
    with live.session() as session, session.begin():
        service.erase_victim(
            session, live.ctx, admin, victim_id, legal_basis="GDPR Art. 17", reason_code=reason
        )
        enqueue_erasure(session, victim_id, reason_code=reason)


def owner_engine(url: str) -> Engine:
    connect_args = {} if url.startswith("sqlite") else {"prepare_threshold": None}
    return create_engine(url, poolclass=NullPool, connect_args=connect_args)


def row_counts(url: str) -> dict[str, int]:
    """Rows per table, read independently of the code under test (reflected metadata)."""
    engine = owner_engine(url)
    try:
        metadata = MetaData()
        metadata.reflect(engine)
        with engine.connect() as conn, conn.begin():
            if conn.dialect.name == "postgresql":
                from sqlalchemy import text

                conn.execute(text("SELECT set_config('passage.scope', 'system', true)"))
            return {
                name: int(conn.scalar(select(func.count()).select_from(table)) or 0)
                for name, table in metadata.tables.items()
            }
    finally:
        engine.dispose()
