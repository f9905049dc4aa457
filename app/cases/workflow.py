"""The case state machine: pure, typed, no database and no framework.

A service builds a :class:`CaseFacts` snapshot from the database, calls :func:`decide`, and on
:class:`Allowed` applies the result (stage, the facts listed in :func:`facts_after`), bumps the
case version and writes the audit event (actor, role, time, reason, legal basis). Nothing in
this module performs I/O except reading ``policies/transitions.toml`` once at import.

Legal anchors (domain standards, sections 3, 4, 5 and 8(a)):

* CETS 197 Art. 10(3) / Directive 2011/36/EU Art. 13(2): a person whose age is uncertain is presumed a
  child. ``CaseFacts.is_child`` is true when the age is under 18, uncertain, or not recorded.
* CETS 197 Art. 12(6) / Directive 2011/36/EU Art. 11(3): assistance is never conditional on cooperation.
  Guards are evaluated on a copy of the facts with every parallel-track field (residence permit,
  proceedings, compensation, cooperation) reset to neutral values, so no guard *can* read them.
* CETS 197 Art. 13: identification decisions wait for the minimum recovery and reflection
  period after the reasonable-grounds decision (when the country profile gates on it).
* UK NRM assurance practice: every negative decision is reviewed by a second decision-maker.

Design choices
--------------
Negative decisions are two-step. ``propose_negative_decision`` is an event whose target is
the *same* stage (reasonable_grounds_pending, identification_pending or reconsideration). It
records who proposed and in which stage (``negative_decision_proposed_by`` /
``negative_decision_proposed_in``). The confirming event (``negative_reasonable_grounds``,
``negative_identification``, ``uphold_negative``) needs a proposal made *in the current stage*
by a *different* actor. Any stage change discards a pending proposal. A second reviewer who
disagrees simply takes the positive decision instead.

Return guards sit where each fact can exist. Entering ``return_planning`` only needs the
person's informed, voluntary decision to return: the risk assessment, receiving organisation and
best-interests assessment are *produced* during planning. ``confirm_return_handover`` (the
actual transfer) needs all of them: consent still recorded, a completed pre-return risk
assessment, a confirmed receiving organisation, consent to transfer case data (invariant 5 of
8(a)), and for a child an assigned guardian, a best-interests assessment (CETS 16(7)) and the
guardian's co-signature (``cosign_return``, a same-stage event fired by the guardian).
Pending proceedings are *considered* (CETS 16(2)) by people; they never block return.

Other choices: ``uphold_negative`` keeps the original ``not_identified_at`` (the window runs
from the first negative decision). ``report_re_trafficking`` re-opens at ``detected`` as a new
episode: per-episode facts (indicators, consents, decision dates, return facts) are cleared.
``available_events`` without an ``actor_id`` cannot apply the second-reviewer rule and is
optimistic about it; :func:`decide` always knows the actor. Closing is not blocked by a legal
hold: the hold governs retention and erasure, not the case lifecycle.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from enum import Enum, StrEnum
from pathlib import Path
from types import MappingProxyType
from typing import Final
from uuid import UUID

from app.policies.transitions import DEFAULT_POLICY_PATH, load_transition_roles

# The case events and the roles live in the vocabulary (a lower layer), so the transition
# policy loader can validate names without importing this module.
from app.vocab import Event, Role

__all__ = [
    "ACTIVE_PROCEEDINGS",
    "ASSISTANCE_ROLES",
    "CASE_ACTIONS",
    "DEFAULT_POLICY_PATH",
    "PERMIT_ROLES",
    "PERMIT_TRANSITIONS",
    "PROCEEDINGS_ROLES",
    "PROCEEDINGS_TRANSITIONS",
    "RESUME_BEFORE_RETURN",
    "RESUME_PREVIOUS",
    "TRANSITIONS",
    "ActionRule",
    "Allowed",
    "CaseAction",
    "CaseFacts",
    "Effect",
    "Event",
    "Guard",
    "GuardContext",
    "PermitEvent",
    "PermitStatus",
    "ProceedingsEvent",
    "ProceedingsStatus",
    "Refused",
    "Resume",
    "Role",
    "Stage",
    "Transition",
    "TransitionRequest",
    "TransitionTable",
    "action_allowed",
    "assistance_allowed",
    "available_events",
    "build_transitions",
    "decide",
    "decide_permit",
    "decide_proceedings",
    "facts_after",
    "legal_hold",
]

# --------------------------------------------------------------------------- vocabulary


class Stage(StrEnum):
    detected = "detected"
    presumed_victim = "presumed_victim"
    referred = "referred"
    reasonable_grounds_pending = "reasonable_grounds_pending"
    recovery_reflection = "recovery_reflection"
    identification_pending = "identification_pending"
    identified = "identified"
    not_identified = "not_identified"
    reconsideration = "reconsideration"
    long_term_support = "long_term_support"
    return_planning = "return_planning"
    returned_handed_over = "returned_handed_over"
    reintegration_monitoring = "reintegration_monitoring"
    closed = "closed"
    declined_formal_identification = "declined_formal_identification"
    lost_contact = "lost_contact"
    missing_child = "missing_child"


class Resume(Enum):
    """Sentinel targets resolved from the facts at decision time."""

    PREVIOUS = "previous_stage"  # the stage before lost_contact / missing_child
    BEFORE_RETURN = "stage_before_return"  # the stage from which return planning started


RESUME_PREVIOUS: Final = Resume.PREVIOUS
RESUME_BEFORE_RETURN: Final = Resume.BEFORE_RETURN


class Effect(StrEnum):
    """What the service must persist besides the stage when a transition is Allowed.

    :func:`facts_after` is the reference implementation. In addition, every stage change
    discards a pending negative-decision proposal.
    """

    start_reflection_clock = "start_reflection_clock"  # reasonable_grounds_at := now
    record_negative_proposal = "record_negative_proposal"  # proposed_by/_in := actor, stage
    record_negative_decision = "record_negative_decision"  # not_identified_at := now
    remember_previous_stage = "remember_previous_stage"  # previous_stage := stage
    remember_stage_before_return = "remember_stage_before_return"  # stage_before_return := stage
    record_guardian_cosign = "record_guardian_cosign"  # guardian_cosigned_return := True
    escalate_missing_child = "escalate_missing_child"  # notify police and coordinator now
    start_new_episode = "start_new_episode"  # re-trafficking: clear per-episode facts


# --------------------------------------------------------------------------- parallel tracks


class PermitStatus(StrEnum):
    none = "none"
    applied = "applied"
    granted = "granted"
    refused = "refused"
    expired = "expired"


class PermitEvent(StrEnum):
    apply = "apply"
    grant = "grant"
    refuse = "refuse"
    expire = "expire"
    apply_for_renewal = "apply_for_renewal"


class ProceedingsStatus(StrEnum):
    none = "none"
    investigation = "investigation"
    prosecution = "prosecution"
    trial = "trial"
    outcome = "outcome"
    discontinued = "discontinued"


class ProceedingsEvent(StrEnum):
    open_investigation = "open_investigation"
    charge = "charge"
    start_trial = "start_trial"
    record_outcome = "record_outcome"
    discontinue = "discontinue"


# CETS 197 Art. 14: a renewable residence permit. A refused or expired permit may be applied
# for again (a new application), so neither is a dead end.
PERMIT_TRANSITIONS: Final[Mapping[tuple[PermitStatus, PermitEvent], PermitStatus]] = (
    MappingProxyType(
        {
            (PermitStatus.none, PermitEvent.apply): PermitStatus.applied,
            (PermitStatus.applied, PermitEvent.grant): PermitStatus.granted,
            (PermitStatus.applied, PermitEvent.refuse): PermitStatus.refused,
            (PermitStatus.granted, PermitEvent.expire): PermitStatus.expired,
            (PermitStatus.granted, PermitEvent.apply_for_renewal): PermitStatus.applied,
            (PermitStatus.refused, PermitEvent.apply): PermitStatus.applied,
            (PermitStatus.expired, PermitEvent.apply): PermitStatus.applied,
        }
    )
)

ACTIVE_PROCEEDINGS: Final[frozenset[ProceedingsStatus]] = frozenset(
    {ProceedingsStatus.investigation, ProceedingsStatus.prosecution, ProceedingsStatus.trial}
)

PROCEEDINGS_TRANSITIONS: Final[
    Mapping[tuple[ProceedingsStatus, ProceedingsEvent], ProceedingsStatus]
] = MappingProxyType(
    {
        (ProceedingsStatus.none, ProceedingsEvent.open_investigation): (
            ProceedingsStatus.investigation
        ),
        (ProceedingsStatus.discontinued, ProceedingsEvent.open_investigation): (
            ProceedingsStatus.investigation
        ),
        (ProceedingsStatus.investigation, ProceedingsEvent.charge): ProceedingsStatus.prosecution,
        (ProceedingsStatus.prosecution, ProceedingsEvent.start_trial): ProceedingsStatus.trial,
        (ProceedingsStatus.trial, ProceedingsEvent.record_outcome): ProceedingsStatus.outcome,
        **{
            (active, ProceedingsEvent.discontinue): ProceedingsStatus.discontinued
            for active in ACTIVE_PROCEEDINGS
        },
    }
)

PERMIT_ROLES: Final[frozenset[Role]] = frozenset({Role.social_worker, Role.ngo_caseworker})
PROCEEDINGS_ROLES: Final[frozenset[Role]] = frozenset({Role.police_officer, Role.prosecutor})


# --------------------------------------------------------------------------- facts and requests


def _require_aware(name: str, value: datetime | None) -> None:
    if value is not None and value.utcoffset() is None:
        raise ValueError(f"CaseFacts.{name} must be a timezone-aware datetime")


@dataclass(frozen=True)
class CaseFacts:
    """Everything a guard needs, as of ``now``. Defaults describe a fresh, empty case."""

    now: datetime = field(default_factory=lambda: datetime.now(UTC))
    # person
    age: int | None = None  # None: not recorded, treated as uncertain (child pathway)
    age_uncertain: bool = False
    # detection and referral
    indicators_recorded: int = 0
    referral_consent_recorded: bool = False
    guardian_requested: bool = False
    guardian_assigned: bool = False
    best_interests_assessment_done: bool = False
    # decisions
    actor_is_competent_authority: bool = False
    reasonable_grounds_at: datetime | None = None
    min_reflection_days: int = 30
    identification_gated_by_reflection: bool = True
    not_identified_at: datetime | None = None
    reconsideration_window_days: int = 30
    negative_decision_proposed_by: UUID | None = None
    negative_decision_proposed_in: Stage | None = None
    # support and return
    support_plan_recorded: bool = False
    return_consent_recorded: bool = False  # informed and voluntary
    pre_return_risk_assessment_done: bool = False
    receiving_organisation_confirmed: bool = False
    data_transfer_consent_recorded: bool = False  # names recipient, purpose, fields shared
    guardian_cosigned_return: bool = False
    reintegration_plan_recorded: bool = False
    stage_before_return: Stage | None = None
    # side states and closure
    previous_stage: Stage | None = None
    closure_reason: str | None = None
    # parallel tracks: NEVER read by a guard (decide() blinds them)
    permit_status: PermitStatus = PermitStatus.none
    proceedings_status: ProceedingsStatus = ProceedingsStatus.none
    compensation_claim_pending: bool = False
    cooperating_with_authorities: bool = False

    def __post_init__(self) -> None:
        for name in ("now", "reasonable_grounds_at", "not_identified_at"):
            _require_aware(name, getattr(self, name))
        if self.age is not None and self.age < 0:
            raise ValueError("CaseFacts.age must not be negative")
        for name in ("indicators_recorded", "min_reflection_days", "reconsideration_window_days"):
            if getattr(self, name) < 0:
                raise ValueError(f"CaseFacts.{name} must not be negative")

    @property
    def is_child(self) -> bool:
        """CETS 197 Art. 10(3): where age is uncertain the person is presumed a child."""
        return self.age_uncertain or self.age is None or self.age < 18


def _blind(facts: CaseFacts) -> CaseFacts:
    """The facts with every parallel-track / cooperation field reset: what guards may see."""
    return dataclasses.replace(
        facts,
        permit_status=PermitStatus.none,
        proceedings_status=ProceedingsStatus.none,
        compensation_claim_pending=False,
        cooperating_with_authorities=False,
    )


@dataclass(frozen=True)
class TransitionRequest:
    event: Event
    actor_id: UUID
    actor_role: Role
    reason: str | None = None
    legal_basis: str | None = None


@dataclass(frozen=True)
class GuardContext:
    """What a guard sees. ``facts`` has the parallel tracks blinded."""

    stage: Stage
    facts: CaseFacts
    actor_id: UUID | None  # None when listing events for a screen without a known actor


@dataclass(frozen=True)
class Guard:
    code: str
    message: str  # plain English naming the unmet condition
    check: Callable[[GuardContext], bool] = field(compare=False, repr=False)
    detail: Callable[[GuardContext], str] | None = field(default=None, compare=False, repr=False)

    def explain(self, ctx: GuardContext) -> str:
        return self.message if self.detail is None else f"{self.message} ({self.detail(ctx)})"


@dataclass(frozen=True)
class Transition:
    target: Stage | Resume
    guards: tuple[Guard, ...]
    roles: frozenset[Role]
    decision: bool = False  # a legal decision: needs a reason and a legal basis
    legal_basis: str = ""  # default citation, used when the request gives none
    reason_required: bool = False  # a reason is needed even though it is not a decision
    effects: frozenset[Effect] = frozenset()

    @property
    def needs_reason(self) -> bool:
        return self.decision or self.reason_required


@dataclass(frozen=True)
class Allowed:
    target: Stage
    transition: Transition
    legal_basis: str | None = None  # effective basis: the request's, else the default


@dataclass(frozen=True)
class Refused:
    code: str
    message: str


TransitionTable = Mapping[tuple[Stage, Event], Transition]


# --------------------------------------------------------------------------- guards


def _g(code: str, message: str, check: Callable[[GuardContext], bool]) -> Guard:
    return Guard(code=code, message=message, check=check)


def _reflection_elapsed(ctx: GuardContext) -> bool:
    f = ctx.facts
    if not f.identification_gated_by_reflection:
        return True
    if f.reasonable_grounds_at is None:
        return False
    return f.now >= f.reasonable_grounds_at + timedelta(days=f.min_reflection_days)


def _reflection_detail(ctx: GuardContext) -> str:
    f = ctx.facts
    if f.reasonable_grounds_at is None:
        return "no reasonable-grounds decision date is recorded"
    earliest = f.reasonable_grounds_at + timedelta(days=f.min_reflection_days)
    return f"minimum {f.min_reflection_days} days; earliest {earliest.isoformat()}"


def _within_reconsideration_window(ctx: GuardContext) -> bool:
    f = ctx.facts
    if f.not_identified_at is None:
        return False
    return f.now <= f.not_identified_at + timedelta(days=f.reconsideration_window_days)


def _window_detail(ctx: GuardContext) -> str:
    f = ctx.facts
    if f.not_identified_at is None:
        return "no negative decision date is recorded"
    last = f.not_identified_at + timedelta(days=f.reconsideration_window_days)
    return f"{f.reconsideration_window_days} days; the window closed {last.isoformat()}"


def _proposal_in_this_stage(ctx: GuardContext) -> bool:
    f = ctx.facts
    return f.negative_decision_proposed_by is not None and (
        f.negative_decision_proposed_in == ctx.stage
    )


def _second_reviewer(ctx: GuardContext) -> bool:
    # With no actor known (listing screens) this is optimistic; decide() always knows.
    return ctx.actor_id is None or ctx.actor_id != ctx.facts.negative_decision_proposed_by


_OUT_OF_CONTACT: Final = frozenset({Stage.lost_contact, Stage.missing_child})
_RESUMABLE: Final = frozenset(Stage) - {Stage.closed} - _OUT_OF_CONTACT
_RETURN_ORIGINS: Final = frozenset(
    {Stage.recovery_reflection, Stage.identified, Stage.long_term_support}
)

G_INDICATORS = _g(
    "indicators_required",
    "screening requires at least one trafficking indicator to be recorded",
    lambda c: c.facts.indicators_recorded >= 1,
)
G_ADULT_REFERRAL_CONSENT = _g(
    "referral_consent_required",
    "referring an adult requires their informed consent to referral to be recorded",
    lambda c: c.facts.is_child or c.facts.referral_consent_recorded,
)
G_CHILD_GUARDIAN_REQUESTED = _g(
    "guardian_request_required",
    "referring a child requires a guardian to have been requested or assigned",
    lambda c: (not c.facts.is_child) or c.facts.guardian_requested or c.facts.guardian_assigned,
)
G_ADULT_ONLY_DECLINE = _g(
    "child_cannot_decline",
    "a child, or a person whose age is uncertain, cannot decline formal identification "
    "and is always referred",
    lambda c: not c.facts.is_child,
)
G_CONSENT_FOR_REENTRY = _g(
    "referral_consent_required",
    "re-entering the referral pathway requires the person's referral consent to be recorded",
    # A person later found to be (or presumed) a child re-enters without consent: children
    # are always referred.
    lambda c: c.facts.is_child or c.facts.referral_consent_recorded,
)
G_COMPETENT_AUTHORITY = _g(
    "competent_authority_required",
    "this decision may only be taken by the competent authority",
    lambda c: c.facts.actor_is_competent_authority,
)
G_REFLECTION = Guard(
    code="reflection_period_running",
    message="an identification decision cannot be taken before the minimum recovery and "
    "reflection period after the reasonable-grounds decision has elapsed",
    check=_reflection_elapsed,
    detail=_reflection_detail,
)
G_POSITIVE_RG_ON_RECORD = _g(
    "reasonable_grounds_required",
    "an identification decision requires a positive reasonable-grounds decision on record",
    lambda c: c.facts.reasonable_grounds_at is not None,
)
G_NO_RG_ON_RECORD = _g(
    "not_a_reasonable_grounds_negative",
    "overturning to recovery and reflection applies only to a negative reasonable-grounds "
    "decision; a negative identification decision is overturned to identified",
    lambda c: c.facts.reasonable_grounds_at is None,
)
G_NO_PENDING_PROPOSAL = _g(
    "negative_already_proposed",
    "a negative decision has already been proposed in this stage and awaits a second reviewer",
    lambda c: not _proposal_in_this_stage(c),
)
G_PROPOSAL_EXISTS = _g(
    "negative_proposal_required",
    "a negative decision must first be proposed by one reviewer (propose_negative_decision)",
    _proposal_in_this_stage,
)
G_SECOND_REVIEWER = _g(
    "second_reviewer_required",
    "a negative decision must be confirmed by a second reviewer, not the one who proposed it",
    _second_reviewer,
)
G_RECONSIDERATION_WINDOW = Guard(
    code="reconsideration_window_closed",
    message="reconsideration may only be requested within the reconsideration window after "
    "the negative decision",
    check=_within_reconsideration_window,
    detail=_window_detail,
)
G_SUPPORT_PLAN = _g(
    "support_plan_required",
    "long-term support requires a support and safety plan to be recorded",
    lambda c: c.facts.support_plan_recorded,
)
G_RETURN_WISH = _g(
    "return_consent_required",
    "return planning requires the person's informed, voluntary decision to return",
    lambda c: c.facts.return_consent_recorded,
)
G_RETURN_CONSENT = _g(
    "return_consent_required",
    "return requires the person's informed, voluntary consent to return to be recorded",
    lambda c: c.facts.return_consent_recorded,
)
G_RISK_ASSESSMENT = _g(
    "risk_assessment_required",
    "return requires a completed pre-return risk assessment",
    lambda c: c.facts.pre_return_risk_assessment_done,
)
G_RECEIVING_ORG = _g(
    "receiving_organisation_required",
    "return requires a confirmed receiving organisation",
    lambda c: c.facts.receiving_organisation_confirmed,
)
G_DATA_TRANSFER_CONSENT = _g(
    "data_transfer_consent_required",
    "return requires consent to transfer case data naming the recipient, purpose and fields",
    lambda c: c.facts.data_transfer_consent_recorded,
)
G_CHILD_RETURN_GUARDIAN = _g(
    "guardian_required",
    "a child's return requires an assigned guardian",
    lambda c: (not c.facts.is_child) or c.facts.guardian_assigned,
)
G_CHILD_RETURN_BEST_INTERESTS = _g(
    "best_interests_assessment_required",
    "a child's return requires a best-interests assessment showing return is in the "
    "child's best interests",
    lambda c: (not c.facts.is_child) or c.facts.best_interests_assessment_done,
)
G_CHILD_RETURN_COSIGN = _g(
    "guardian_cosign_required",
    "a child's return requires the guardian's co-signature",
    lambda c: (not c.facts.is_child) or c.facts.guardian_cosigned_return,
)
G_CHILD_CASE = _g(
    "child_case_only",
    "a guardian co-signs the return of a child only",
    lambda c: c.facts.is_child,
)
G_GUARDIAN_ASSIGNED = _g(
    "guardian_required",
    "co-signing requires an assigned guardian",
    lambda c: c.facts.guardian_assigned,
)
G_STAGE_BEFORE_RETURN = _g(
    "stage_before_return_unknown",
    "the stage from which return planning started is not recorded",
    lambda c: c.facts.stage_before_return in _RETURN_ORIGINS,
)
G_REINTEGRATION_PLAN = _g(
    "reintegration_plan_required",
    "reintegration monitoring requires a reintegration plan to be recorded",
    lambda c: c.facts.reintegration_plan_recorded,
)
G_ADULT_LOST_CONTACT = _g(
    "child_must_be_reported_missing",
    "a child who loses contact must be reported as a missing child, not as lost contact",
    lambda c: not c.facts.is_child,
)
G_CHILD_MISSING = _g(
    "missing_child_is_for_children",
    "missing-child reporting applies to child cases only; report lost contact for an adult",
    lambda c: c.facts.is_child,
)
G_PREVIOUS_STAGE = _g(
    "previous_stage_unknown",
    "the stage before contact was lost is not recorded",
    lambda c: c.facts.previous_stage in _RESUMABLE,
)
G_CLOSURE_REASON = _g(
    "closure_reason_required",
    "closing a case requires a closure reason",
    lambda c: bool((c.facts.closure_reason or "").strip()),
)


# --------------------------------------------------------------------------- the graph


@dataclass(frozen=True)
class _Edge:
    target: Stage | Resume
    guards: tuple[Guard, ...] = ()
    decision: bool = False
    legal_basis: str = ""
    reason_required: bool = False
    effects: frozenset[Effect] = frozenset()


S, E = Stage, Event

_RG_BASIS = "CETS 197 Art. 10(2), Art. 13(1)"
_ID_BASIS = "CETS 197 Art. 10(1)-(2)"
_RECON_BASIS = "CETS 197 Art. 10(1)-(2); NRM reconsideration procedure"
_RETURN_BASIS = "CETS 197 Art. 16(2), 16(5), 16(7)"
_HANDOVER_GUARDS: Final = (
    G_RETURN_CONSENT,
    G_RISK_ASSESSMENT,
    G_RECEIVING_ORG,
    G_DATA_TRANSFER_CONSENT,
    G_CHILD_RETURN_GUARDIAN,
    G_CHILD_RETURN_BEST_INTERESTS,
    G_CHILD_RETURN_COSIGN,
)
# Active stages: a person can lose contact / a child can go missing from any of these.
_ACTIVE_STAGES: Final = (
    S.detected,
    S.presumed_victim,
    S.referred,
    S.reasonable_grounds_pending,
    S.recovery_reflection,
    S.identification_pending,
    S.identified,
    S.not_identified,
    S.reconsideration,
    S.long_term_support,
    S.return_planning,
    S.returned_handed_over,
    S.reintegration_monitoring,
)

_GRAPH: dict[tuple[Stage, Event], _Edge] = {
    # -- identification ----------------------------------------------------------------
    (S.detected, E.record_screening): _Edge(
        S.presumed_victim, (G_INDICATORS,), legal_basis="CETS 197 Art. 10(2)"
    ),
    (S.presumed_victim, E.refer): _Edge(
        S.referred,
        (G_ADULT_REFERRAL_CONSENT, G_CHILD_GUARDIAN_REQUESTED),
        legal_basis="CETS 197 Art. 10(2), 10(4); Directive 2011/36/EU Art. 11(2)",
    ),
    (S.presumed_victim, E.decline_formal_identification): _Edge(
        S.declined_formal_identification,
        (G_ADULT_ONLY_DECLINE,),
        legal_basis="CETS 197 Art. 12(7) (consensual, informed services)",
    ),
    (S.declined_formal_identification, E.consent_to_referral): _Edge(
        S.presumed_victim, (G_CONSENT_FOR_REENTRY,), legal_basis="CETS 197 Art. 12(7)"
    ),
    (S.referred, E.accept_referral): _Edge(
        S.reasonable_grounds_pending, legal_basis="CETS 197 Art. 10(2)"
    ),
    (S.reasonable_grounds_pending, E.positive_reasonable_grounds): _Edge(
        S.recovery_reflection,
        (G_COMPETENT_AUTHORITY,),
        decision=True,
        legal_basis=_RG_BASIS,
        effects=frozenset({Effect.start_reflection_clock}),
    ),
    (S.reasonable_grounds_pending, E.propose_negative_decision): _Edge(
        S.reasonable_grounds_pending,
        (G_COMPETENT_AUTHORITY, G_NO_PENDING_PROPOSAL),
        decision=True,
        legal_basis="CETS 197 Art. 10(2)",
        effects=frozenset({Effect.record_negative_proposal}),
    ),
    (S.reasonable_grounds_pending, E.negative_reasonable_grounds): _Edge(
        S.not_identified,
        (G_COMPETENT_AUTHORITY, G_PROPOSAL_EXISTS, G_SECOND_REVIEWER),
        decision=True,
        legal_basis="CETS 197 Art. 10(2)",
        effects=frozenset({Effect.record_negative_decision}),
    ),
    (S.recovery_reflection, E.start_identification): _Edge(
        S.identification_pending, legal_basis="CETS 197 Art. 10(1)"
    ),
    (S.identification_pending, E.positive_identification): _Edge(
        S.identified,
        (G_COMPETENT_AUTHORITY, G_POSITIVE_RG_ON_RECORD, G_REFLECTION),
        decision=True,
        legal_basis=_ID_BASIS,
    ),
    (S.identification_pending, E.propose_negative_decision): _Edge(
        S.identification_pending,
        (G_COMPETENT_AUTHORITY, G_REFLECTION, G_NO_PENDING_PROPOSAL),
        decision=True,
        legal_basis=_ID_BASIS,
        effects=frozenset({Effect.record_negative_proposal}),
    ),
    (S.identification_pending, E.negative_identification): _Edge(
        S.not_identified,
        (G_COMPETENT_AUTHORITY, G_REFLECTION, G_PROPOSAL_EXISTS, G_SECOND_REVIEWER),
        decision=True,
        legal_basis=_ID_BASIS,
        effects=frozenset({Effect.record_negative_decision}),
    ),
    # -- reconsideration ---------------------------------------------------------------
    (S.not_identified, E.request_reconsideration): _Edge(
        S.reconsideration,
        (G_RECONSIDERATION_WINDOW,),
        reason_required=True,
        legal_basis=_RECON_BASIS,
    ),
    (S.reconsideration, E.propose_negative_decision): _Edge(
        S.reconsideration,
        (G_COMPETENT_AUTHORITY, G_NO_PENDING_PROPOSAL),
        decision=True,
        legal_basis=_RECON_BASIS,
        effects=frozenset({Effect.record_negative_proposal}),
    ),
    (S.reconsideration, E.uphold_negative): _Edge(
        S.not_identified,
        (G_COMPETENT_AUTHORITY, G_PROPOSAL_EXISTS, G_SECOND_REVIEWER),
        decision=True,
        legal_basis=_RECON_BASIS,
    ),
    (S.reconsideration, E.overturn_to_recovery): _Edge(
        S.recovery_reflection,
        (G_COMPETENT_AUTHORITY, G_NO_RG_ON_RECORD),
        decision=True,
        legal_basis=_RG_BASIS,
        effects=frozenset({Effect.start_reflection_clock}),
    ),
    (S.reconsideration, E.overturn_to_identified): _Edge(
        S.identified,
        (G_COMPETENT_AUTHORITY, G_POSITIVE_RG_ON_RECORD, G_REFLECTION),
        decision=True,
        legal_basis=_ID_BASIS,
    ),
    # -- support and return ------------------------------------------------------------
    (S.identified, E.start_long_term_support): _Edge(
        S.long_term_support,
        (G_SUPPORT_PLAN,),
        legal_basis="CETS 197 Art. 12, Art. 14; Directive 2011/36/EU Art. 11",
    ),
    **{
        (origin, E.plan_return): _Edge(
            S.return_planning,
            (G_RETURN_WISH,),
            legal_basis="CETS 197 Art. 16(2) (return preferably voluntary)",
            effects=frozenset({Effect.remember_stage_before_return}),
        )
        for origin in (S.recovery_reflection, S.identified, S.long_term_support)
    },
    (S.return_planning, E.cosign_return): _Edge(
        S.return_planning,
        (G_CHILD_CASE, G_GUARDIAN_ASSIGNED),
        legal_basis="CETS 197 Art. 10(4), Art. 16(7)",
        effects=frozenset({Effect.record_guardian_cosign}),
    ),
    (S.return_planning, E.cancel_return): _Edge(
        RESUME_BEFORE_RETURN, (G_STAGE_BEFORE_RETURN,), legal_basis="CETS 197 Art. 16(2)"
    ),
    (S.return_planning, E.confirm_return_handover): _Edge(
        S.returned_handed_over, _HANDOVER_GUARDS, legal_basis=_RETURN_BASIS
    ),
    (S.returned_handed_over, E.start_reintegration_monitoring): _Edge(
        S.reintegration_monitoring, (G_REINTEGRATION_PLAN,), legal_basis="CETS 197 Art. 16(5)"
    ),
    (S.reintegration_monitoring, E.report_re_trafficking): _Edge(
        S.detected,
        reason_required=True,
        legal_basis="CETS 197 Art. 10(2), Art. 16(5)",
        effects=frozenset({Effect.start_new_episode}),
    ),
    # -- side states -------------------------------------------------------------------
    **{
        (stage, E.report_lost_contact): _Edge(
            S.lost_contact,
            (G_ADULT_LOST_CONTACT,),
            effects=frozenset({Effect.remember_previous_stage}),
        )
        for stage in _ACTIVE_STAGES
    },
    **{
        (stage, E.report_missing_child): _Edge(
            S.missing_child,
            (G_CHILD_MISSING,),
            legal_basis="CETS 197 Art. 10(4)",
            effects=frozenset({Effect.remember_previous_stage, Effect.escalate_missing_child}),
        )
        # From lost_contact too: a person whose age is re-assessed as uncertain or under 18
        # while out of contact is escalated as a missing child.
        for stage in (*_ACTIVE_STAGES, S.lost_contact)
    },
    **{
        (stage, E.contact_restored): _Edge(RESUME_PREVIOUS, (G_PREVIOUS_STAGE,))
        for stage in (S.lost_contact, S.missing_child)
    },
    # -- closure -----------------------------------------------------------------------
    **{
        (stage, E.close): _Edge(S.closed, (G_CLOSURE_REASON,))
        for stage in (
            S.detected,  # screened out: no trafficking indicators found
            S.declined_formal_identification,
            S.identified,
            S.not_identified,
            S.long_term_support,
            S.returned_handed_over,  # closed as referred abroad (HTCDS ClosedReferred)
            S.reintegration_monitoring,
            S.lost_contact,
            S.missing_child,
        )
    },
}


def build_transitions(policy_path: Path | str = DEFAULT_POLICY_PATH) -> TransitionTable:
    """The single transition table: the graph above merged with the roles from the policy file.

    Raises :class:`app.policies.transitions.TransitionPolicyError` if the file is invalid.
    """
    roles = load_transition_roles(policy_path)
    return MappingProxyType(
        {
            key: Transition(
                target=edge.target,
                guards=edge.guards,
                roles=roles[key[1]],
                decision=edge.decision,
                legal_basis=edge.legal_basis,
                reason_required=edge.reason_required,
                effects=edge.effects,
            )
            for key, edge in _GRAPH.items()
        }
    )


TRANSITIONS: Final[TransitionTable] = build_transitions()


# --------------------------------------------------------------------------- decisions


def _resolve(target: Stage | Resume, facts: CaseFacts) -> Stage | None:
    if isinstance(target, Stage):
        return target
    if target is Resume.PREVIOUS:
        return facts.previous_stage
    return facts.stage_before_return


def decide(
    stage: Stage,
    request: TransitionRequest,
    facts: CaseFacts,
    *,
    table: TransitionTable | None = None,
) -> Allowed | Refused:
    """May ``request`` move a case in ``stage`` with ``facts``? Pure; never raises on input.

    Checks, in order: the (stage, event) row exists; the role may fire the event; every guard
    passes (in table order, the first unmet one is reported); a reason is given where needed;
    a legal decision has a legal basis (the request's, else the transition's default).
    """
    rows = TRANSITIONS if table is None else table
    transition = rows.get((stage, request.event))
    if transition is None:
        return Refused(
            "not_possible_in_stage",
            f"'{request.event}' is not possible while the case is in '{stage}'",
        )
    if request.actor_role not in transition.roles:
        return Refused(
            "role_not_permitted",
            f"the role '{request.actor_role}' may not fire '{request.event}'",
        )
    ctx = GuardContext(stage=stage, facts=_blind(facts), actor_id=request.actor_id)
    for guard in transition.guards:
        if not guard.check(ctx):
            return Refused(guard.code, guard.explain(ctx))
    if transition.needs_reason and not (request.reason or "").strip():
        return Refused("reason_required", f"'{request.event}' requires a reason")
    basis = (request.legal_basis or "").strip() or transition.legal_basis or None
    if transition.decision and basis is None:
        return Refused("legal_basis_required", f"'{request.event}' requires a legal basis")
    target = _resolve(transition.target, facts)
    if target is None:  # unreachable: the sentinel rows are guarded
        return Refused("target_unknown", "the stage to return to is not recorded")
    return Allowed(target=target, transition=transition, legal_basis=basis)


def available_events(
    stage: Stage,
    role: Role,
    facts: CaseFacts,
    *,
    actor_id: UUID | None = None,
    table: TransitionTable | None = None,
) -> list[Event]:
    """Events ``role`` may fire now (row exists, role permitted, guards pass), in Event order.

    Reason and legal basis are not checked: the screen asks for them. Pass ``actor_id`` to
    hide a negative confirmation from the reviewer who proposed it.
    """
    rows = TRANSITIONS if table is None else table
    ctx = GuardContext(stage=stage, facts=_blind(facts), actor_id=actor_id)
    result: list[Event] = []
    for event in Event:
        transition = rows.get((stage, event))
        if transition is None or role not in transition.roles:
            continue
        if all(guard.check(ctx) for guard in transition.guards):
            result.append(event)
    return result


def facts_after(
    stage: Stage, request: TransitionRequest, facts: CaseFacts, allowed: Allowed
) -> CaseFacts:
    """Reference for what the service persists after ``allowed`` (besides stage and version)."""
    changes: dict[str, object] = {}
    if allowed.target != stage:
        changes["negative_decision_proposed_by"] = None
        changes["negative_decision_proposed_in"] = None
    effects = allowed.transition.effects
    if Effect.start_reflection_clock in effects:
        changes["reasonable_grounds_at"] = facts.now
    if Effect.record_negative_proposal in effects:
        changes["negative_decision_proposed_by"] = request.actor_id
        changes["negative_decision_proposed_in"] = stage
    if Effect.record_negative_decision in effects:
        changes["not_identified_at"] = facts.now
    if Effect.remember_previous_stage in effects and stage not in _OUT_OF_CONTACT:
        changes["previous_stage"] = stage  # lost_contact -> missing_child keeps the original
    if Effect.remember_stage_before_return in effects:
        changes["stage_before_return"] = stage
    if Effect.record_guardian_cosign in effects:
        changes["guardian_cosigned_return"] = True
    if Effect.start_new_episode in effects:
        changes.update(
            indicators_recorded=0,
            referral_consent_recorded=False,
            reasonable_grounds_at=None,
            not_identified_at=None,
            negative_decision_proposed_by=None,
            negative_decision_proposed_in=None,
            support_plan_recorded=False,
            return_consent_recorded=False,
            pre_return_risk_assessment_done=False,
            receiving_organisation_confirmed=False,
            data_transfer_consent_recorded=False,
            guardian_cosigned_return=False,
            reintegration_plan_recorded=False,
            stage_before_return=None,
            previous_stage=None,
            closure_reason=None,
        )
    return dataclasses.replace(facts, **changes)  # type: ignore[arg-type]


# --------------------------------------------------------------------------- parallel decisions


def decide_permit(status: PermitStatus, event: PermitEvent, role: Role) -> PermitStatus | Refused:
    """Residence-permit track (CETS 197 Art. 14). Never consulted by :func:`decide`."""
    if role not in PERMIT_ROLES:
        return Refused("role_not_permitted", f"the role '{role}' may not record '{event}'")
    target = PERMIT_TRANSITIONS.get((status, event))
    if target is None:
        return Refused("not_possible_in_status", f"'{event}' is not possible when '{status}'")
    return target


def decide_proceedings(
    status: ProceedingsStatus, event: ProceedingsEvent, role: Role
) -> ProceedingsStatus | Refused:
    """Criminal-proceedings track. Never consulted by :func:`decide`."""
    if role not in PROCEEDINGS_ROLES:
        return Refused("role_not_permitted", f"the role '{role}' may not record '{event}'")
    target = PROCEEDINGS_TRANSITIONS.get((status, event))
    if target is None:
        return Refused("not_possible_in_status", f"'{event}' is not possible when '{status}'")
    return target


def legal_hold(facts: CaseFacts) -> bool:
    """True while proceedings are active or a compensation claim is pending.

    The hold stops retention-driven erasure; it never gates assistance or the case lifecycle.
    """
    return facts.proceedings_status in ACTIVE_PROCEEDINGS or facts.compensation_claim_pending


# --------------------------------------------------------------------------- case actions


class CaseAction(StrEnum):
    """Things done *within* a stage; they never change it."""

    record_assistance = "record_assistance"
    record_contact = "record_contact"


@dataclass(frozen=True)
class ActionRule:
    roles: frozenset[Role]
    forbidden_stages: frozenset[Stage] = frozenset({Stage.closed})


ASSISTANCE_ROLES: Final[frozenset[Role]] = frozenset({Role.ngo_caseworker, Role.social_worker})

CASE_ACTIONS: Final[Mapping[CaseAction, ActionRule]] = MappingProxyType(
    {
        CaseAction.record_assistance: ActionRule(roles=ASSISTANCE_ROLES),
        CaseAction.record_contact: ActionRule(
            roles=ASSISTANCE_ROLES | {Role.guardian, Role.police_officer, Role.focal_point}
        ),
    }
)


def action_allowed(action: CaseAction, stage: Stage, role: Role, facts: CaseFacts) -> bool:
    """May ``role`` perform ``action`` in ``stage``? No cooperation or proceedings condition
    exists (CETS 197 Art. 12(6)); ``facts`` is accepted for the service's convenience and is
    deliberately not read."""
    del facts  # assistance is unconditional: nothing about the person gates it
    rule = CASE_ACTIONS[action]
    return role in rule.roles and stage not in rule.forbidden_stages


def assistance_allowed(stage: Stage, role: Role, facts: CaseFacts) -> bool:
    return action_allowed(CaseAction.record_assistance, stage, role, facts)
