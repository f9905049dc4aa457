"""Keep the reporting store in step with the audit trail (incremental, exact, idempotent).

``refresh`` compares each case chain's head (``audit_chain_heads.seq``) with the sequence
number the store was last built from (``reporting.case_sync.seq``). Every case whose chain
grew (or is new) is rebuilt from its timeline: its episode rows and its open deadlines.
Nothing else is touched, so a dashboard request after a quiet period costs one join of two
narrow tables. The refresh runs in the caller's transaction (services never commit); on
PostgreSQL a transaction-level advisory lock serialises concurrent refreshes.

On SQLite the store is a set of TEMP tables of the connection, created and filled here on
first use (the embedded engine serves small installations; see docs/reporting.md).
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from types import SimpleNamespace
from typing import Any, cast

from sqlalchemy import Executable, delete, func, insert, select, text
from sqlalchemy.orm import Session

from app.audit.models import AuditChainHead, AuditEvent
from app.cases import transitions
from app.cases.models import Case
from app.context import AppContext
from app.db.base import utcnow
from app.reporting.bulk import insert_rows
from app.reporting.models import (
    SCHEMA,
    TABLES,
    case_sync,
    episodes,
    metadata,
    open_deadlines,
    sync_state,
)
from app.reporting.timeline import (
    RELEVANT_ACTIONS,
    CaseDimensions,
    TimelineEvent,
    derive_episodes,
)

_LOCK_KEY = 0x5041_5353_5250  # "PASSRP": one advisory lock for the reporting refresh
_BATCH = 2000
_TRANSLATE = {SCHEMA: "temp"}


@dataclass(frozen=True)
class RefreshReport:
    cases: int
    episodes: int
    seconds: float


def is_sqlite(session: Session) -> bool:
    return session.get_bind().dialect.name == "sqlite"


def execute(session: Session, statement: Executable, params: Any = None) -> Any:
    """Run a statement that touches the reporting schema on either engine."""
    options = {"schema_translate_map": _TRANSLATE} if is_sqlite(session) else {}
    return session.execute(statement, params, execution_options=options)


def ensure_tables(session: Session) -> None:
    """SQLite: create the TEMP tables of this connection once. PostgreSQL: migrations did."""
    if not is_sqlite(session):
        return
    connection = session.connection()
    exists = connection.exec_driver_sql(
        "SELECT count(*) FROM sqlite_temp_master WHERE type = 'table' AND name = 'case_sync'"
    ).scalar()
    if not exists:
        metadata.create_all(
            connection.execution_options(schema_translate_map=_TRANSLATE),
            checkfirst=False,
            tables=list(TABLES),
        )


def refresh(
    session: Session, ctx: AppContext, *, full: bool = False, now: datetime | None = None
) -> RefreshReport:
    """Rebuild the store rows of every case whose audit chain changed since the last refresh."""
    started = utcnow()
    ensure_tables(session)
    moment = now or utcnow()
    heads = select(func.count(), func.coalesce(func.sum(AuditChainHead.seq), 0)).where(
        AuditChainHead.chain_key.like("case:%")
    )
    chains, seq_total = session.execute(heads).one()
    state = execute(session, select(sync_state.c.chains, sync_state.c.seq_total)).first()
    if not full and state is not None and tuple(state) == (chains, seq_total):
        return RefreshReport(cases=0, episodes=0, seconds=(utcnow() - started).total_seconds())
    if not is_sqlite(session):
        session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _LOCK_KEY})
    if full:
        for table in (open_deadlines, episodes, case_sync):
            execute(session, delete(table))
    stale = _stale_chains(session)
    total_episodes = 0
    for start in range(0, len(stale), _BATCH):
        batch = dict(stale[start : start + _BATCH])
        total_episodes += _rebuild(session, ctx, batch, moment, fresh=full)
    execute(session, delete(sync_state))
    execute(
        session,
        insert(sync_state),
        {"id": 1, "chains": chains, "seq_total": seq_total, "refreshed_at": moment},
    )
    return RefreshReport(
        cases=len(stale),
        episodes=total_episodes,
        seconds=(utcnow() - started).total_seconds(),
    )


def _stale_chains(session: Session) -> list[tuple[uuid.UUID, int]]:
    """Case chains whose head moved since the store was built from them.

    On PostgreSQL the join hashes every chain key (~9 MB at 100,000 cases); the planner,
    expecting 1 % of the rows through the row-level-security qual, sizes the hash for a
    few hundred and spills it to disk. More memory for this one statement only.
    """
    if is_sqlite(session):
        return _stale_chains_query(session)
    previous = session.execute(text("SELECT current_setting('work_mem')")).scalar_one()
    session.execute(text("SELECT set_config('work_mem', '32MB', true)"))
    try:
        return _stale_chains_query(session)
    finally:
        session.execute(text("SELECT set_config('work_mem', :v, true)"), {"v": previous})


def _stale_chains_query(session: Session) -> list[tuple[uuid.UUID, int]]:
    stmt = (
        select(AuditChainHead.chain_key, AuditChainHead.seq)
        .outerjoin(case_sync, case_sync.c.chain_key == AuditChainHead.chain_key)
        .where(
            AuditChainHead.chain_key.like("case:%"),
            (case_sync.c.seq.is_(None)) | (case_sync.c.seq != AuditChainHead.seq),
        )
    )
    out: list[tuple[uuid.UUID, int]] = []
    for key, seq in execute(session, stmt):
        try:
            out.append((uuid.UUID(key[5:]), seq))
        except ValueError:
            continue
    return out


_CASE_COLUMNS = (
    Case.id,
    Case.reference,
    Case.country_profile,
    Case.owning_agency_id,
    Case.region,
    Case.nationality,
    Case.sex,
    Case.age_band,
    Case.exploitation_forms,
    Case.detecting_org_type,
    Case.detected_on,
    Case.stage,
    Case.created_at,
    Case.referred_at,
    Case.reasonable_grounds_at,
    Case.first_support_contact_at,
    Case.identification_decided_at,
    Case.identification_positive,
    Case.not_identified_at,
    Case.returned_at,
    Case.residence_permit_valid_until,
    Case.last_contact_at,
)


def _rebuild(
    session: Session,
    ctx: AppContext,
    heads: Mapping[uuid.UUID, int],
    now: datetime,
    *,
    fresh: bool = False,
) -> int:
    ids = list(heads)
    # Plain columns only: a reporting refresh never loads a sealed column.
    case_rows = {
        row.id: row for row in session.execute(select(*_CASE_COLUMNS).where(Case.id.in_(ids)))
    }
    events: dict[uuid.UUID, list[TimelineEvent]] = defaultdict(list)
    stmt = (
        select(
            AuditEvent.case_id,
            AuditEvent.seq,
            AuditEvent.occurred_at,
            AuditEvent.action,
            AuditEvent.actor_user_id,
            AuditEvent.entity_id,
            AuditEvent.details,
        )
        .where(AuditEvent.case_id.in_(ids), AuditEvent.action.in_(RELEVANT_ACTIONS))
        .order_by(AuditEvent.case_id, AuditEvent.seq)
    )
    for case_id, seq, occurred_at, action, actor, entity, details in session.execute(stmt):
        if case_id is None:
            continue
        events[case_id].append(
            TimelineEvent(seq, occurred_at, action, actor, entity, details or {})
        )
    episode_rows: list[dict[str, Any]] = []
    deadline_rows: list[dict[str, Any]] = []
    for case_id in ids:
        row = case_rows.get(case_id)
        if row is None or row.country_profile not in ctx.profiles:
            continue
        profile = ctx.profile(row.country_profile)
        dims = CaseDimensions(
            case_id=row.id,
            reference=row.reference,
            country_profile=row.country_profile,
            owning_agency_id=row.owning_agency_id,
            region=row.region,
            nationality=row.nationality,
            sex=row.sex,
            age_band=row.age_band,
            exploitation_forms=list(row.exploitation_forms or []),
            detecting_org_type=row.detecting_org_type,
            detected_on=row.detected_on,
            stage=row.stage,
        )
        derived = derive_episodes(dims, events.get(case_id, []), profile)
        deadlines = _open_deadlines(ctx, row)
        next_due = min((d["due_at"] for d in deadlines), default=None)
        for episode in derived:
            episode["next_due_at"] = next_due if episode["is_current"] else None
        episode_rows.extend(derived)
        deadline_rows.extend(deadlines)
    if not fresh:
        for table in (open_deadlines, episodes):
            execute(session, delete(table).where(table.c.case_id.in_(ids)))
        keys = [f"case:{case_id}" for case_id in ids]  # by primary key: no scan of the table
        execute(session, delete(case_sync).where(case_sync.c.chain_key.in_(keys)))
    options = {"schema_translate_map": _TRANSLATE} if is_sqlite(session) else None
    insert_rows(session, episodes, episode_rows, execution_options=options)
    insert_rows(session, open_deadlines, deadline_rows, execution_options=options)
    insert_rows(
        session,
        case_sync,
        [
            {"chain_key": f"case:{case_id}", "case_id": case_id, "seq": seq, "refreshed_at": now}
            for case_id, seq in heads.items()
        ],
        execution_options=options,
    )
    return len(episode_rows)


def _open_deadlines(ctx: AppContext, row: Any) -> list[dict[str, Any]]:
    """Deadlines still to be met, as the operational screens compute them.

    ``transitions.case_deadlines`` is the same function ``overdue_report`` and the case
    screens use; it is fed a transient case built from plain columns only. Periods that
    elapse by themselves (reflection minimum, move-on) are never overdue and are skipped.
    """
    case = SimpleNamespace(
        id=row.id,
        stage=row.stage,
        country_profile=row.country_profile,
        detected_on=row.detected_on,
        created_at=row.created_at,
        referred_at=row.referred_at,
        reasonable_grounds_at=row.reasonable_grounds_at,
        first_support_contact_at=row.first_support_contact_at,
        identification_decided_at=row.identification_decided_at,
        identification_positive=row.identification_positive,
        not_identified_at=row.not_identified_at,
        returned_at=row.returned_at,
        residence_permit_valid_until=row.residence_permit_valid_until,
        last_contact_at=row.last_contact_at,
    )
    out: list[dict[str, Any]] = []
    seen: set[tuple[str, int]] = set()
    for deadline in transitions.case_deadlines(ctx, cast(Case, case)):
        if deadline.met_at is not None or deadline.elapses:
            continue
        key = (str(deadline.kind), deadline.checkpoint_days or 0)
        if key in seen:
            continue
        seen.add(key)
        out.append(
            {
                "case_id": row.id,
                "owning_agency_id": row.owning_agency_id,
                "kind": key[0],
                "checkpoint": key[1],
                "due_at": deadline.due_at,
                "soon_from": deadline.due_at - timedelta(days=deadline.due_soon_days),
            }
        )
    return out
