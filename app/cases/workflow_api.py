"""JSON API for the workflow: transitions, available events, timeline, deadlines, tracks."""

from __future__ import annotations

import uuid
from datetime import date, datetime
from typing import Any, Literal

from fastapi import APIRouter
from pydantic import BaseModel, Field

from app.audit.service import case_timeline
from app.auth.dependencies import CurrentActor
from app.cases import transitions
from app.cases.api import IfMatch, expected_version
from app.cases.service import load_case, require
from app.cases.workflow import Event
from app.common.schemas import LongText, Name, ShortText, StrictInput
from app.context import Ctx
from app.db.base import utcnow
from app.db.session import DbSession
from app.vocab import ClosureReason

router = APIRouter(prefix="/api/v1/cases/{case_id}", tags=["workflow"])


class TransitionIn(StrictInput):
    event: Event
    reason: LongText | None = Field(default=None, description="Why; sealed, never in the audit log")
    legal_basis: ShortText | None = Field(
        default=None, description="Citation, e.g. 'CETS 197 Art. 13'"
    )
    closure_reason: ClosureReason | None = None


class CaseState(BaseModel):
    id: uuid.UUID
    reference: str
    stage: str
    version: int
    next_due_at: datetime | None
    available_events: list[str]


class TimelineEntry(BaseModel):
    seq: int
    occurred_at: datetime
    action: str
    actor_role: str | None
    actor_agency_id: uuid.UUID | None
    fields: list[str]
    details: dict[str, Any]
    hash: str


class DeadlineOut(BaseModel):
    kind: str
    due_at: datetime
    status: str
    met_at: datetime | None
    met_late: bool
    basis: str


class AssessmentIn(StrictInput):
    kind: Literal[
        "guardian_request",
        "best_interests",
        "support_plan",
        "pre_return_risk",
        "receiving_organisation",
        "reintegration_plan",
    ]
    body: LongText


class GuardianIn(StrictInput):
    guardian_user_id: uuid.UUID


class TrackIn(StrictInput):
    event: Name = Field(pattern=r"^[a-z_]+$")
    valid_from: date | None = None
    valid_until: date | None = None


def _state(session: DbSession, ctx: Ctx, actor: CurrentActor, case_id: uuid.UUID) -> CaseState:
    case = load_case(session, ctx, actor, case_id)
    return CaseState(
        id=case.id,
        reference=case.reference,
        stage=case.stage,
        version=case.version,
        next_due_at=case.next_due_at,
        available_events=[str(e) for e in transitions.events_for(session, ctx, actor, case)],
    )


@router.get("/transitions", response_model=CaseState)
def get_state(case_id: uuid.UUID, actor: CurrentActor, session: DbSession, ctx: Ctx) -> CaseState:
    return _state(session, ctx, actor, case_id)  # scoped load: roles without case.read see nothing


@router.post("/transitions", response_model=CaseState)
def post_transition(
    case_id: uuid.UUID,
    data: TransitionIn,
    actor: CurrentActor,
    session: DbSession,
    ctx: Ctx,
    if_match: IfMatch = None,
) -> CaseState:
    transitions.transition(
        session,
        ctx,
        actor,
        case_id,
        transitions.TransitionInput(
            event=data.event,
            reason=data.reason,
            legal_basis=data.legal_basis,
            closure_reason=str(data.closure_reason) if data.closure_reason else None,
        ),
        expected_version(if_match),
    )
    return _state(session, ctx, actor, case_id)


@router.get("/timeline", response_model=list[TimelineEntry])
def get_timeline(
    case_id: uuid.UUID, actor: CurrentActor, session: DbSession, ctx: Ctx
) -> list[TimelineEntry]:
    # Scope before permission: another agency's case is a 404 for everyone.
    case = load_case(session, ctx, actor, case_id)
    require(ctx, actor, "case.read")
    return [
        TimelineEntry.model_validate(e, from_attributes=True)
        for e in case_timeline(session, case.id)
    ]


@router.get("/deadlines", response_model=list[DeadlineOut])
def get_deadlines(
    case_id: uuid.UUID, actor: CurrentActor, session: DbSession, ctx: Ctx
) -> list[DeadlineOut]:
    # Scope before permission: another agency's case is a 404 for everyone.
    case = load_case(session, ctx, actor, case_id)
    require(ctx, actor, "case.read")
    now = utcnow()
    return [
        DeadlineOut(
            kind=str(d.kind),
            due_at=d.due_at,
            status=d.status(now),
            met_at=d.met_at,
            met_late=d.met_late,
            basis=d.basis,
        )
        for d in transitions.case_deadlines(ctx, case)
    ]


@router.post("/assessments", response_model=CaseState)
def post_assessment(
    case_id: uuid.UUID,
    data: AssessmentIn,
    actor: CurrentActor,
    session: DbSession,
    ctx: Ctx,
    if_match: IfMatch = None,
) -> CaseState:
    transitions.record_assessment(
        session, ctx, actor, case_id, data.kind, data.body, expected_version(if_match)
    )
    return _state(session, ctx, actor, case_id)


@router.post("/guardian", response_model=CaseState)
def post_guardian(
    case_id: uuid.UUID,
    data: GuardianIn,
    actor: CurrentActor,
    session: DbSession,
    ctx: Ctx,
    if_match: IfMatch = None,
) -> CaseState:
    transitions.assign_guardian(
        session, ctx, actor, case_id, data.guardian_user_id, expected_version(if_match)
    )
    return _state(session, ctx, actor, case_id)


@router.post("/tracks/{track}", response_model=CaseState)
def post_track(
    case_id: uuid.UUID,
    track: Literal["residence_permit", "proceedings"],
    data: TrackIn,
    actor: CurrentActor,
    session: DbSession,
    ctx: Ctx,
    if_match: IfMatch = None,
) -> CaseState:
    transitions.track_event(
        session,
        ctx,
        actor,
        case_id,
        track=track,
        event=data.event,
        expected_version=expected_version(if_match),
        valid_from=data.valid_from,
        valid_until=data.valid_until,
    )
    return _state(session, ctx, actor, case_id)
