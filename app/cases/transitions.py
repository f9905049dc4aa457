"""Apply workflow transitions to stored cases: lock, check version, guard, persist, audit.

The pure machine (workflow.py) decides; this module turns database facts into a CaseFacts
snapshot, and persists the outcome with its audit event in the caller's transaction.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.audit import service as audit
from app.auth.actor import Actor
from app.auth.models import User
from app.cases import repository as repo
from app.cases.deadlines import Deadline, Milestones, compute_deadlines
from app.cases.models import Case, CaseNote, Consent, OutboxMessage
from app.cases.service import check_version, load_case, require
from app.cases.workflow import (
    TRANSITIONS,
    Allowed,
    CaseFacts,
    Effect,
    Event,
    PermitEvent,
    PermitStatus,
    ProceedingsEvent,
    ProceedingsStatus,
    Refused,
    Role,
    Stage,
    TransitionRequest,
    decide,
    decide_permit,
    decide_proceedings,
    facts_after,
)
from app.context import AppContext
from app.db.base import utcnow
from app.errors import GuardRefused, InvalidInput
from app.policies.countries import CountryProfile

_REASONABLE_GROUNDS_EVENTS = frozenset(
    {Event.positive_reasonable_grounds, Event.negative_reasonable_grounds}
)
_IDENTIFICATION_EVENTS = frozenset(
    {
        Event.positive_identification,
        Event.negative_identification,
        Event.uphold_negative,
        Event.overturn_to_recovery,
        Event.overturn_to_identified,
    }
)


class TransitionRefused(GuardRefused):
    """A refused transition is a decision too: its audit event is kept."""

    keep_audit = True


# -- facts -------------------------------------------------------------------------------------
def _active_consent_purposes(session: Session, case: Case, today: date) -> set[str]:
    """Purposes with a consent given in this episode, not withdrawn and not expired."""
    stmt = select(Consent.purpose, Consent.expires_on).where(
        Consent.case_id == case.id,
        Consent.withdrawn_at.is_(None),
        Consent.created_at >= case.episode_started_at,
    )
    return {
        purpose for purpose, expires in session.execute(stmt) if expires is None or expires >= today
    }


def competent_for(
    profile: CountryProfile, agency_type: str | None, stage: Stage, event: Event
) -> bool:
    """Whether the actor's agency decides this question under the country profile."""
    if agency_type is None:
        return False
    if event in _REASONABLE_GROUNDS_EVENTS or (
        event == Event.propose_negative_decision and stage == Stage.reasonable_grounds_pending
    ):
        return profile.may_decide_reasonable_grounds(agency_type)
    return profile.may_decide_identification(agency_type)


def case_facts(
    session: Session,
    ctx: AppContext,
    case: Case,
    *,
    actor: Actor,
    event: Event | None,
    now: datetime,
    closure_reason: str | None = None,
) -> CaseFacts:
    profile = ctx.profile(case.country_profile)
    consents = _active_consent_purposes(session, case, now.date())
    # The age band already applies CETS 10(3): uncertain or unknown age means child.
    age = 18 if case.age_band == "adult" else None
    stage = Stage(case.stage)
    return CaseFacts(
        now=now,
        age=age,
        age_uncertain=case.age_band != "adult",
        indicators_recorded=case.indicator_count,
        referral_consent_recorded="referral" in consents,
        guardian_requested=case.guardian_requested_at is not None,
        guardian_assigned=case.guardian_user_id is not None,
        best_interests_assessment_done=case.best_interests_assessed_at is not None,
        actor_is_competent_authority=event is not None
        and competent_for(profile, actor.agency_type, stage, event),
        reasonable_grounds_at=case.reasonable_grounds_at,
        min_reflection_days=profile.min_reflection_days,
        identification_gated_by_reflection=profile.identification_gated_by_reflection,
        not_identified_at=case.not_identified_at,
        reconsideration_window_days=profile.reconsideration_window_days,
        negative_decision_proposed_by=case.negative_decision_proposed_by,
        negative_decision_proposed_in=Stage(case.negative_decision_proposed_in)
        if case.negative_decision_proposed_in
        else None,
        support_plan_recorded=case.support_plan_at is not None,
        return_consent_recorded="return_preparation" in consents,
        pre_return_risk_assessment_done=case.pre_return_risk_assessed_at is not None,
        receiving_organisation_confirmed=case.receiving_organisation_confirmed_at is not None,
        data_transfer_consent_recorded="data_sharing_transnational" in consents,
        guardian_cosigned_return=case.guardian_cosigned_at is not None,
        reintegration_plan_recorded=case.reintegration_plan_at is not None,
        stage_before_return=Stage(case.stage_before_return) if case.stage_before_return else None,
        previous_stage=Stage(case.previous_stage) if case.previous_stage else None,
        closure_reason=closure_reason,
        permit_status=PermitStatus(case.residence_permit_status),
        proceedings_status=ProceedingsStatus(case.proceedings_status),
        compensation_claim_pending=case.compensation_claimed,
    )


# -- deadlines ---------------------------------------------------------------------------------
def milestones(case: Case) -> Milestones:
    return Milestones(
        detected_at=datetime.combine(
            case.detected_on, datetime.min.time(), tzinfo=case.created_at.tzinfo
        ),
        referred_at=case.referred_at,
        reasonable_grounds_at=case.reasonable_grounds_at,
        first_support_contact_at=case.first_support_contact_at,
        identification_decided_at=case.identification_decided_at,
        identification_positive=case.identification_positive,
        not_identified_at=case.not_identified_at,
        returned_at=case.returned_at,
        residence_permit_expires_on=case.residence_permit_valid_until,
        last_contact_at=case.last_contact_at,
    )


def case_deadlines(ctx: AppContext, case: Case) -> list[Deadline]:
    if case.stage == Stage.closed:
        return []
    return compute_deadlines(ctx.profile(case.country_profile), milestones(case))


def refresh_next_due(ctx: AppContext, case: Case, now: datetime) -> None:
    pending = [
        d.due_at
        for d in case_deadlines(ctx, case)
        if d.status(now) in ("pending", "due_soon", "overdue")
    ]
    case.next_due_at = min(pending) if pending else None


# -- transitions -------------------------------------------------------------------------------
@dataclass(frozen=True)
class TransitionInput:
    event: Event
    reason: str | None = None
    legal_basis: str | None = None
    closure_reason: str | None = None


def _milestones_after(case: Case, old: Stage, new: Stage, event: Event, now: datetime) -> None:
    if new == Stage.referred and case.referred_at is None:
        case.referred_at = now
    if event in (Event.positive_identification, Event.overturn_to_identified):
        case.identification_decided_at, case.identification_positive = now, True
    if event in (Event.negative_identification, Event.uphold_negative) or (
        event == Event.negative_reasonable_grounds
    ):
        case.identification_decided_at, case.identification_positive = now, False
    if new == Stage.returned_handed_over:
        case.returned_at = now
    if new == Stage.closed:
        case.closed_at = now
    if old in (Stage.lost_contact, Stage.missing_child) and new not in (
        Stage.lost_contact,
        Stage.missing_child,
    ):
        case.last_contact_at = now


def _persist(
    case: Case, before: CaseFacts, after: CaseFacts, allowed: Allowed, now: datetime
) -> None:
    case.reasonable_grounds_at = after.reasonable_grounds_at
    case.not_identified_at = after.not_identified_at
    case.negative_decision_proposed_by = after.negative_decision_proposed_by
    case.negative_decision_proposed_in = (
        str(after.negative_decision_proposed_in) if after.negative_decision_proposed_in else None
    )
    case.stage_before_return = str(after.stage_before_return) if after.stage_before_return else None
    case.previous_stage = str(after.previous_stage) if after.previous_stage else None
    if after.guardian_cosigned_return and not before.guardian_cosigned_return:
        case.guardian_cosigned_at = now
    if Effect.start_new_episode in allowed.transition.effects:
        case.episode_started_at = now
        case.indicator_count = 0
        for column in (
            "support_plan_at",
            "pre_return_risk_assessed_at",
            "receiving_organisation_confirmed_at",
            "reintegration_plan_at",
            "guardian_cosigned_at",
            "referred_at",
            "first_support_contact_at",
            "identification_decided_at",
            "identification_positive",
            "returned_at",
        ):
            setattr(case, column, None)
        case.detected_on = now.date()


def transition(
    session: Session,
    ctx: AppContext,
    actor: Actor,
    case_id: uuid.UUID,
    data: TransitionInput,
    expected_version: int,
    *,
    now: datetime | None = None,
) -> Case:
    """Fire one workflow event on a case, or refuse it naming the unmet guard."""
    moment = now or utcnow()
    case = load_case(session, ctx, actor, case_id, lock=True)
    require(ctx, actor, "case.transition")
    check_version(case, expected_version)
    if actor.user_id is None or actor.role not in Role.__members__:
        raise InvalidInput("only people can fire workflow events")
    old = Stage(case.stage)
    facts = case_facts(
        session,
        ctx,
        case,
        actor=actor,
        event=data.event,
        now=moment,
        closure_reason=data.closure_reason,
    )
    request = TransitionRequest(
        event=data.event,
        actor_id=actor.user_id,
        actor_role=Role(actor.role),
        reason=data.reason,
        legal_basis=data.legal_basis,
    )
    outcome = decide(old, request, facts)
    if isinstance(outcome, Refused):
        audit.record(
            session,
            actor,
            "transition_refused",
            case_id=case.id,
            details={"event": str(data.event), "stage": str(old), "guard": outcome.code},
            occurred_at=moment,
        )
        raise TransitionRefused(outcome.message, code=outcome.code)

    after = facts_after(old, request, facts, outcome)
    new = outcome.target
    _persist(case, facts, after, outcome, moment)
    _milestones_after(case, old, new, data.event, moment)
    if new != old:
        case.stage = str(new)
        case.stage_entered_at = moment
    if new == Stage.closed:
        case.closure_reason = data.closure_reason
    case.version += 1

    reason_note_id = None
    if data.reason:
        # The reason is free text and may name people: it is sealed, the audit points to it.
        codec = ctx.keys.codec_for(session, case.victim_id)
        note = CaseNote(
            case_id=case.id, author_id=actor.user_id, kind="decision_reason", created_at=moment
        )
        note.body = codec.seal("case_notes", "body", note.id, data.reason)
        session.add(note)
        reason_note_id = str(note.id)
    if Effect.escalate_missing_child in outcome.transition.effects:
        session.add(
            OutboxMessage(
                topic="alert.missing_child",
                payload={
                    "case_id": str(case.id),
                    "reference": case.reference,
                    "agency_id": str(case.owning_agency_id),
                },
                created_at=moment,
            )
        )
    refresh_next_due(ctx, case, moment)
    audit.record(
        session,
        actor,
        "transition",
        case_id=case.id,
        entity_type="case",
        entity_id=case.id,
        details={
            "event": str(data.event),
            "from": str(old),
            "to": str(new),
            "version": case.version,
            "decision": outcome.transition.decision,
            "legal_basis": (outcome.legal_basis or "")[:200],
            "reason_note_id": reason_note_id,
            "closure_reason": data.closure_reason,
            "agency_type": actor.agency_type,
        },
        occurred_at=moment,
    )
    session.flush()
    return case


def events_for(session: Session, ctx: AppContext, actor: Actor, case: Case) -> list[Event]:
    """Events this actor may fire now (role allowed, guards passing), for screens and the API.

    Facts are built per event: who is competent depends on the question being decided.
    Placeholders stand in for the reason, legal basis and closure reason the form will ask for.
    """
    if (
        not ctx.policy.can(actor.role, "case.transition")
        or actor.role not in Role.__members__
        or actor.user_id is None
    ):
        return []
    now = utcnow()
    stage = Stage(case.stage)
    role = Role(actor.role)
    out = []
    for (source, event), rule in TRANSITIONS.items():
        if source != stage or role not in rule.roles:
            continue
        facts = case_facts(
            session, ctx, case, actor=actor, event=event, now=now, closure_reason="other"
        )
        request = TransitionRequest(
            event, actor.user_id, role, reason="reason", legal_basis="basis"
        )
        if isinstance(decide(stage, request, facts), Allowed):
            out.append(event)
    return out


# -- facts recorded outside the main path ------------------------------------------------------
ASSESSMENTS = {
    # kind: (case column, permission, allowed roles)
    "guardian_request": ("guardian_requested_at", "case.update", None),
    "best_interests": ("best_interests_assessed_at", "best_interests.record", None),
    "support_plan": ("support_plan_at", "case.update", None),
    "pre_return_risk": ("pre_return_risk_assessed_at", "case.transition", None),
    "receiving_organisation": ("receiving_organisation_confirmed_at", "case.transition", None),
    "reintegration_plan": ("reintegration_plan_at", "case.transition", None),
}


def record_assessment(
    session: Session,
    ctx: AppContext,
    actor: Actor,
    case_id: uuid.UUID,
    kind: str,
    body: str,
    expected_version: int,
) -> Case:
    """Record an assessment or plan: sealed text plus the timestamp the guards read."""
    if kind not in ASSESSMENTS:
        raise InvalidInput(f"unknown assessment kind {kind!r}")
    column, permission, _ = ASSESSMENTS[kind]
    # Scope before permission: another agency's case is a 404 for everyone.
    case = load_case(session, ctx, actor, case_id, lock=True)
    require(ctx, actor, permission)
    check_version(case, expected_version)
    now = utcnow()
    codec = ctx.keys.codec_for(session, case.victim_id)
    note = CaseNote(case_id=case.id, author_id=actor.user_id, kind=kind, created_at=now)
    note.body = codec.seal("case_notes", "body", note.id, body)
    session.add(note)
    setattr(case, column, now)
    case.version += 1
    audit.record(
        session,
        actor,
        "assessment_recorded",
        case_id=case.id,
        entity_type="case_note",
        entity_id=note.id,
        fields=["body"],
        details={"kind": kind, "version": case.version},
    )
    return case


def assign_guardian(
    session: Session,
    ctx: AppContext,
    actor: Actor,
    case_id: uuid.UUID,
    guardian_id: uuid.UUID,
    expected_version: int,
) -> Case:
    # Scope before permission: another agency's case is a 404 for everyone.
    case = load_case(session, ctx, actor, case_id, lock=True)
    require(ctx, actor, "case.update")
    check_version(case, expected_version)
    guardian = session.get(User, guardian_id)
    if guardian is None or guardian.role != "guardian" or not guardian.is_active:
        raise InvalidInput("the guardian must be an active user with the guardian role")
    now = utcnow()
    case.guardian_user_id = guardian.id
    case.guardian_assigned_at = now
    case.guardian_requested_at = case.guardian_requested_at or now
    case.version += 1
    audit.record(
        session,
        actor,
        "guardian_assigned",
        case_id=case.id,
        entity_type="user",
        entity_id=guardian.id,
        details={"version": case.version},
    )
    return case


def track_event(
    session: Session,
    ctx: AppContext,
    actor: Actor,
    case_id: uuid.UUID,
    *,
    track: str,
    event: str,
    expected_version: int,
    valid_from: date | None = None,
    valid_until: date | None = None,
) -> Case:
    """Residence permit or criminal proceedings: parallel tracks that never gate assistance."""
    permission = "residence.manage" if track == "residence_permit" else "proceedings.manage"
    # Scope before permission: another agency's case is a 404 for everyone.
    case = load_case(session, ctx, actor, case_id, lock=True)
    require(ctx, actor, permission)
    check_version(case, expected_version)
    role = Role(actor.role)
    known = (
        {e.value for e in PermitEvent}
        if track == "residence_permit"
        else {e.value for e in ProceedingsEvent} | {"claim_compensation"}
    )
    if event not in known:
        raise InvalidInput(
            f"unknown {track.replace('_', ' ')} event; expected one of {', '.join(sorted(known))}"
        )
    if track == "residence_permit":
        outcome_p = decide_permit(
            PermitStatus(case.residence_permit_status), PermitEvent(event), role
        )
        if isinstance(outcome_p, Refused):
            raise TransitionRefused(outcome_p.message, code=outcome_p.code)
        if outcome_p == PermitStatus.granted:
            if valid_from is None or valid_until is None or valid_until <= valid_from:
                raise InvalidInput("a granted permit needs valid_from and a later valid_until")
            minimum = ctx.profile(case.country_profile).residence_permit_min_validity_days
            if (valid_until - valid_from).days < minimum:
                raise InvalidInput(
                    f"the permit must be valid for at least {minimum} days under this country profile"
                )
            case.residence_permit_valid_from, case.residence_permit_valid_until = (
                valid_from,
                valid_until,
            )
        old, case.residence_permit_status = case.residence_permit_status, str(outcome_p)
    elif track == "proceedings":
        if event == "claim_compensation":
            old = case.proceedings_status
            case.compensation_claimed = True
        else:
            outcome_c = decide_proceedings(
                ProceedingsStatus(case.proceedings_status), ProceedingsEvent(event), role
            )
            if isinstance(outcome_c, Refused):
                raise TransitionRefused(outcome_c.message, code=outcome_c.code)
            old, case.proceedings_status = case.proceedings_status, str(outcome_c)
    else:
        raise InvalidInput("track must be residence_permit or proceedings")
    case.version += 1
    refresh_next_due(ctx, case, utcnow())
    audit.record(
        session,
        actor,
        f"{track}_event",
        case_id=case.id,
        details={"event": event, "from": old, "version": case.version},
    )
    return case


def overdue_report(
    session: Session,
    ctx: AppContext,
    now: datetime,
    *,
    agency_ids: Sequence[uuid.UUID] | None = None,
) -> list[tuple[Case, Deadline, str]]:
    """Open cases with overdue or soon-due deadlines, most urgent first."""
    stmt = select(Case).where(Case.stage != Stage.closed)
    if agency_ids is not None:
        stmt = stmt.where(Case.owning_agency_id.in_(agency_ids))
    rows: list[tuple[Case, Deadline, str]] = []
    for case in session.scalars(stmt):
        for deadline in case_deadlines(ctx, case):
            status = deadline.status(now)
            if status in ("overdue", "due_soon"):
                rows.append((case, deadline, status))
    rows.sort(key=lambda r: (r[2] != "overdue", r[1].due_at))
    return rows


__all__ = ["TransitionInput", "case_deadlines", "events_for", "repo", "transition"]
