"""Random walks over the pure case state machine, with facts and parallel tracks changing."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta
from uuid import UUID

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
)

from app.cases.workflow import (
    ACTIVE_PROCEEDINGS,
    Allowed,
    CaseFacts,
    Event,
    PermitEvent,
    PermitStatus,
    ProceedingsEvent,
    ProceedingsStatus,
    Refused,
    Role,
    Stage,
    TransitionRequest,
    assistance_allowed,
    available_events,
    decide,
    decide_permit,
    decide_proceedings,
    facts_after,
    legal_hold,
)

START = datetime(2025, 1, 6, 9, 0, tzinfo=UTC)
ACTORS = [
    UUID("00000000-0000-0000-0000-000000000001"),
    UUID("00000000-0000-0000-0000-000000000002"),
    UUID("00000000-0000-0000-0000-000000000003"),
]
SUPPORT_ROLES = {Role.ngo_caseworker, Role.social_worker}

FLAGS = [
    "referral_consent_recorded",
    "guardian_requested",
    "guardian_assigned",
    "best_interests_assessment_done",
    "actor_is_competent_authority",
    "identification_gated_by_reflection",
    "support_plan_recorded",
    "return_consent_recorded",
    "pre_return_risk_assessment_done",
    "receiving_organisation_confirmed",
    "data_transfer_consent_recorded",
    "reintegration_plan_recorded",
]


SIDE_EVENTS = {
    Event.report_lost_contact,
    Event.report_missing_child,
    Event.decline_formal_identification,
    Event.cancel_return,
    Event.close,
}


def flipped_tracks(facts: CaseFacts) -> CaseFacts:
    """The same facts with every proceedings / cooperation / permit field changed."""
    return dataclasses.replace(
        facts,
        permit_status=(
            PermitStatus.granted if facts.permit_status == PermitStatus.none else PermitStatus.none
        ),
        proceedings_status=(
            ProceedingsStatus.none
            if facts.proceedings_status in ACTIVE_PROCEEDINGS
            else ProceedingsStatus.trial
        ),
        compensation_claim_pending=not facts.compensation_claim_pending,
        cooperating_with_authorities=not facts.cooperating_with_authorities,
    )


class CaseMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.stage = Stage.detected
        self.facts = CaseFacts(now=START, age=30)
        self.version = 1
        self.allowed_count = 0
        self.closed_seen = False

    @initialize(
        age=st.sampled_from([None, 12, 16, 30, 52]),
        paperwork_done=st.booleans(),
    )
    def start(self, age: int | None, paperwork_done: bool) -> None:
        self.facts = dataclasses.replace(self.facts, age=age)
        if paperwork_done:
            self.facts = dataclasses.replace(
                self.facts,
                indicators_recorded=1,
                closure_reason="goals met",
                **dict.fromkeys(FLAGS, True),  # type: ignore[arg-type]
            )

    # -- firing events ---------------------------------------------------------------------

    def _fire(self, request: TransitionRequest) -> Allowed | Refused:
        stage, facts, version = self.stage, self.facts, self.version
        result = decide(stage, request, facts)
        # Proceedings, cooperation and permits never change the outcome.
        assert decide(stage, request, flipped_tracks(facts)) == result
        assert self.facts == facts  # decide is pure
        if isinstance(result, Allowed):
            assert stage != Stage.closed, "closed must be absorbing"
            assert isinstance(result.target, Stage)
            self.facts = facts_after(stage, request, facts, result)
            self.stage = result.target
            self.version += 1
            self.allowed_count += 1
            assert self.version == version + 1
        else:
            assert (self.stage, self.facts, self.version) == (stage, facts, version)
        if self.stage == Stage.closed:
            self.closed_seen = True
        return result

    @rule(
        event=st.sampled_from(Event),
        role=st.sampled_from(Role),
        actor=st.sampled_from(ACTORS),
        reason=st.sampled_from([None, "", "documented grounds"]),
        legal_basis=st.sampled_from([None, "", "National Act s.4"]),
    )
    def fire_anything(
        self,
        event: Event,
        role: Role,
        actor: UUID,
        reason: str | None,
        legal_basis: str | None,
    ) -> None:
        self._fire(TransitionRequest(event, actor, role, reason, legal_basis))

    def _fire_offered(self, data: st.DataObject) -> None:
        offered = [
            (role, actor, event)
            for role in Role
            for actor in ACTORS
            for event in available_events(self.stage, role, self.facts, actor_id=actor)
        ]
        if not offered:
            return
        # Mostly move along the main path; side states (which every stage offers) now and then.
        forward = [choice for choice in offered if choice[2] not in SIDE_EVENTS]
        if forward and data.draw(st.integers(0, 9)) > 0:
            offered = forward
        role, actor, event = data.draw(st.sampled_from(offered))
        result = self._fire(TransitionRequest(event, actor, role, "documented grounds"))
        assert isinstance(result, Allowed), f"offered {event} but decide said {result}"

    @rule(data=st.data())
    def fire_an_offered_event(self, data: st.DataObject) -> None:
        self._fire_offered(data)

    @rule(data=st.data())
    def fire_another_offered_event(self, data: st.DataObject) -> None:
        self._fire_offered(data)  # a second rule: walks go deeper than with one

    # -- facts change ------------------------------------------------------------------------

    @rule(
        change=st.one_of(
            st.tuples(st.just("flag"), st.sampled_from(FLAGS), st.booleans()),
            st.tuples(st.just("age"), st.none() | st.sampled_from([9, 15, 17, 18, 25, 40])),
            st.tuples(st.just("uncertain"), st.booleans()),
            st.tuples(st.just("indicators"), st.integers(0, 3)),
            st.tuples(
                st.just("closure"), st.sampled_from([None, "", "goals met", "person deceased"])
            ),
            st.tuples(st.just("days"), st.integers(0, 35)),
            st.tuples(st.just("paperwork done")),
        )
    )
    def facts_change(self, change: tuple[object, ...]) -> None:
        kind, *args = change
        f = self.facts
        if kind == "flag":
            name, value = args
            f = dataclasses.replace(f, **{str(name): value})  # type: ignore[arg-type]
        elif kind == "age":
            f = dataclasses.replace(f, age=args[0])  # type: ignore[arg-type]
        elif kind == "uncertain":
            f = dataclasses.replace(f, age_uncertain=bool(args[0]))
        elif kind == "indicators":
            f = dataclasses.replace(f, indicators_recorded=args[0])  # type: ignore[arg-type]
        elif kind == "closure":
            f = dataclasses.replace(f, closure_reason=args[0])  # type: ignore[arg-type]
        elif kind == "days":
            f = dataclasses.replace(f, now=f.now + timedelta(days=args[0]))  # type: ignore[arg-type]
        else:
            f = dataclasses.replace(f, indicators_recorded=2, **dict.fromkeys(FLAGS, True))  # type: ignore[arg-type]
        self.facts = f

    @rule(days=st.sampled_from([1, 29, 31]))
    def time_passes(self, days: int) -> None:
        self.facts = dataclasses.replace(self.facts, now=self.facts.now + timedelta(days=days))

    # -- parallel tracks change --------------------------------------------------------------

    @rule(
        change=st.one_of(
            st.tuples(
                st.just("proceedings"), st.sampled_from(ProceedingsEvent), st.sampled_from(Role)
            ),
            st.tuples(st.just("permit"), st.sampled_from(PermitEvent), st.sampled_from(Role)),
            st.tuples(st.just("cooperation"), st.booleans(), st.booleans()),
        )
    )
    def tracks_change(self, change: tuple[str, object, object]) -> None:
        kind, first, second = change
        if kind == "proceedings":
            assert isinstance(first, ProceedingsEvent) and isinstance(second, Role)
            moved = decide_proceedings(self.facts.proceedings_status, first, second)
            if not isinstance(moved, Refused):
                self.facts = dataclasses.replace(self.facts, proceedings_status=moved)
        elif kind == "permit":
            assert isinstance(first, PermitEvent) and isinstance(second, Role)
            granted = decide_permit(self.facts.permit_status, first, second)
            if not isinstance(granted, Refused):
                self.facts = dataclasses.replace(self.facts, permit_status=granted)
        else:
            self.facts = dataclasses.replace(
                self.facts,
                cooperating_with_authorities=bool(first),
                compensation_claim_pending=bool(second),
            )

    # -- invariants --------------------------------------------------------------------------

    @invariant()
    def stage_is_a_legal_stage(self) -> None:
        assert isinstance(self.stage, Stage)

    @invariant()
    def version_rises_by_one_per_allowed(self) -> None:
        assert self.version == 1 + self.allowed_count

    @invariant()
    def assistance_never_depends_on_proceedings_or_cooperation(self) -> None:
        flipped = flipped_tracks(self.facts)
        for role in Role:
            here = assistance_allowed(self.stage, role, self.facts)
            assert here == assistance_allowed(self.stage, role, flipped)
            assert here == (self.stage != Stage.closed and role in SUPPORT_ROLES)

    @invariant()
    def legal_hold_follows_proceedings(self) -> None:
        assert legal_hold(self.facts) == (
            self.facts.proceedings_status in ACTIVE_PROCEEDINGS
            or self.facts.compensation_claim_pending
        )

    @invariant()
    def closed_is_absorbing(self) -> None:
        if self.closed_seen:
            assert self.stage == Stage.closed

    @precondition(lambda self: self.stage == Stage.closed)
    @invariant()
    def closed_offers_nothing(self) -> None:
        for role in Role:
            assert available_events(Stage.closed, role, self.facts) == []


CaseMachine.TestCase.settings = settings(
    max_examples=200,
    stateful_step_count=30,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
TestCaseMachine = CaseMachine.TestCase
