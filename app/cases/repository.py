"""The only module that queries cases and victims. Every read goes through the actor's scope."""

from __future__ import annotations

import uuid
from collections.abc import Sequence

from sqlalchemy import Select, and_, func, select
from sqlalchemy.orm import Session

from app.agencies.models import Agency
from app.auth.actor import Actor
from app.authz.policy import AccessPolicy
from app.authz.scoping import readable_cases_condition
from app.cases.models import Case, CaseNote, CaseParticipant, Consent
from app.crypto.models import BlindIndexEntry
from app.db.base import utcnow
from app.victims.models import Victim


def readable_cases(actor: Actor, policy: AccessPolicy) -> Select[Case]:
    return select(Case).where(readable_cases_condition(actor, policy, utcnow()))


def get_readable_case(
    session: Session, actor: Actor, policy: AccessPolicy, case_id: uuid.UUID, *, lock: bool = False
) -> Case | None:
    stmt = readable_cases(actor, policy).where(Case.id == case_id)
    if lock:
        stmt = stmt.with_for_update()
    return session.scalars(stmt).one_or_none()


def case_exists(session: Session, case_id: uuid.UUID) -> bool:
    return session.scalar(select(func.count()).select_from(Case).where(Case.id == case_id)) == 1


def list_readable_cases(
    session: Session,
    actor: Actor,
    policy: AccessPolicy,
    *,
    stage: str | None,
    reference: str | None,
    limit: int,
    offset: int,
) -> tuple[list[Case], int]:
    stmt = readable_cases(actor, policy)
    if stage:
        stmt = stmt.where(Case.stage == stage)
    if reference:
        stmt = stmt.where(Case.reference == reference.strip().upper())
    total = session.scalar(select(func.count()).select_from(stmt.subquery())) or 0
    # Overdue and soon-due work first, then the most recently changed.
    ordered = stmt.order_by(
        Case.next_due_at.is_(None), Case.next_due_at, Case.stage_entered_at.desc()
    )
    return list(session.scalars(ordered.limit(limit).offset(offset))), total


def get_victim(session: Session, victim_id: uuid.UUID) -> Victim | None:
    return session.get(Victim, victim_id)


def cases_of_victim(session: Session, victim_id: uuid.UUID) -> list[Case]:
    return list(session.scalars(select(Case).where(Case.victim_id == victim_id)))


def agency(session: Session, agency_id: uuid.UUID) -> Agency | None:
    return session.get(Agency, agency_id)


def blind_index_entries(session: Session, victim_id: uuid.UUID) -> list[BlindIndexEntry]:
    return list(
        session.scalars(select(BlindIndexEntry).where(BlindIndexEntry.victim_id == victim_id))
    )


def replace_blind_index(
    session: Session, entries: Sequence[BlindIndexEntry], victim_id: uuid.UUID
) -> None:
    for old in blind_index_entries(session, victim_id):
        session.delete(old)
    session.flush()
    session.add_all(entries)


def matching_agencies(
    session: Session, victim_id: uuid.UUID, pairs: Sequence[tuple[str, bytes]]
) -> list[tuple[uuid.UUID, str, str]]:
    """(agency id, agency name, index name) for other victims sharing a digest."""
    if not pairs:
        return []
    conditions = [
        and_(BlindIndexEntry.index_name == n, BlindIndexEntry.digest == d) for n, d in pairs
    ]
    from sqlalchemy import or_

    stmt = (
        select(BlindIndexEntry.agency_id, Agency.name, BlindIndexEntry.index_name)
        .join(Agency, Agency.id == BlindIndexEntry.agency_id)
        .where(or_(*conditions), BlindIndexEntry.victim_id != victim_id)
        .distinct()
    )
    return [(a, n, i) for a, n, i in session.execute(stmt)]


def active_participants(session: Session, case_id: uuid.UUID) -> list[CaseParticipant]:
    now = utcnow()
    stmt = select(CaseParticipant).where(
        CaseParticipant.case_id == case_id,
        CaseParticipant.revoked_at.is_(None),
    )
    return [p for p in session.scalars(stmt) if p.expires_at is None or p.expires_at > now]


def participant(
    session: Session, case_id: uuid.UUID, participant_id: uuid.UUID
) -> CaseParticipant | None:
    stmt = select(CaseParticipant).where(
        CaseParticipant.id == participant_id, CaseParticipant.case_id == case_id
    )
    return session.scalars(stmt).one_or_none()


def consents(session: Session, case_id: uuid.UUID) -> list[Consent]:
    return list(
        session.scalars(
            select(Consent).where(Consent.case_id == case_id).order_by(Consent.created_at)
        )
    )


def consent(session: Session, case_id: uuid.UUID, consent_id: uuid.UUID) -> Consent | None:
    stmt = select(Consent).where(Consent.id == consent_id, Consent.case_id == case_id)
    return session.scalars(stmt).one_or_none()


def notes(session: Session, case_id: uuid.UUID, limit: int = 100) -> list[CaseNote]:
    stmt = (
        select(CaseNote)
        .where(CaseNote.case_id == case_id)
        .order_by(CaseNote.created_at.desc())
        .limit(limit)
    )
    return list(session.scalars(stmt))
