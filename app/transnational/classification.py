"""Trafficking or smuggling: the case's classification and its history.

Each change is an audit event (`classification_changed`) with from, to and a reason code;
the history is read back from the case's chain. Classification never gates assistance:
the workflow's guards read a `CaseFacts` snapshot that has no classification at all, and
smuggled persons keep every service (tests prove both).
"""

from __future__ import annotations

import uuid

from sqlalchemy.orm import Session

from app.audit import service as audit
from app.auth.actor import Actor
from app.cases.service import load_case
from app.context import AppContext
from app.errors import Conflict, Forbidden
from app.transnational.schemas import ClassificationChange, ClassificationIn, ClassificationOut


def _may_classify(ctx: AppContext, actor: Actor) -> None:
    if not (
        ctx.policy.can(actor.role, "case.update") or ctx.policy.can(actor.role, "handover.manage")
    ):
        raise Forbidden("your role may not classify cases")


def history(
    session: Session, ctx: AppContext, actor: Actor, case_id: uuid.UUID
) -> ClassificationOut:
    # Scope before permission: another agency's case is a 404 for everyone.
    case = load_case(session, ctx, actor, case_id)
    if not ctx.policy.can(actor.role, "case.read"):
        raise Forbidden("your role may not read cases")
    changes = [
        ClassificationChange(
            occurred_at=e.occurred_at,
            from_=str(e.details.get("from")),
            to=str(e.details.get("to")),
            reason_code=str(e.details.get("reason_code")),
            actor_role=e.actor_role,
        )
        for e in audit.case_timeline(session, case.id)
        if e.action == "classification_changed"
    ]
    return ClassificationOut(
        case_id=case.id, classification=case.classification, version=case.version, history=changes
    )


def reclassify(
    session: Session,
    ctx: AppContext,
    actor: Actor,
    case_id: uuid.UUID,
    data: ClassificationIn,
    expected_version: int,
) -> ClassificationOut:
    # Scope before permission: another agency's case is a 404 for everyone.
    case = load_case(session, ctx, actor, case_id, lock=True)
    _may_classify(ctx, actor)
    if case.version != expected_version:
        from app.errors import StaleVersion

        raise StaleVersion(
            f"this case changed since you loaded it (version {case.version}); reload and try again"
        )
    new = str(data.classification)
    if new == case.classification:
        raise Conflict(f"the case is already classified as {new}", code="unchanged")
    old = case.classification
    case.classification = new
    case.version += 1
    audit.record(
        session,
        actor,
        "classification_changed",
        case_id=case.id,
        entity_type="case",
        entity_id=case.id,
        details={
            "from": old,
            "to": new,
            "reason_code": str(data.reason_code),
            "version": case.version,
        },
    )
    session.flush()
    return history(session, ctx, actor, case.id)
