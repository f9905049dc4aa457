"""Row scoping in one place: which cases an actor may see at all.

Everything outside the scope answers 404, identical to a missing id.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ColumnElement, and_, exists, false, or_, select, true

from app.auth.actor import Actor
from app.authz.policy import AccessPolicy
from app.cases.models import Case, CaseParticipant


def active_share_condition(actor: Actor, now: datetime) -> ColumnElement[bool]:
    return exists(
        select(CaseParticipant.id).where(
            CaseParticipant.case_id == Case.id,
            CaseParticipant.agency_id == actor.agency_id,
            CaseParticipant.revoked_at.is_(None),
            or_(CaseParticipant.expires_at.is_(None), CaseParticipant.expires_at > now),
        )
    )


def readable_cases_condition(
    actor: Actor, policy: AccessPolicy, now: datetime
) -> ColumnElement[bool]:
    if (
        actor.user_id is None
        or actor.role not in policy.roles
        or not policy.can(actor.role, "case.read")
    ):
        return false()
    scope = policy.role(actor.role).scope
    if scope == "national":
        return true()
    if scope == "none":
        return false()
    glass = Case.id.in_(actor.break_glass_case_ids) if actor.break_glass_case_ids else false()
    if scope == "assigned":
        return or_(Case.guardian_user_id == actor.user_id, glass)
    return or_(
        and_(Case.owning_agency_id == actor.agency_id),
        active_share_condition(actor, now),
        glass,
    )
