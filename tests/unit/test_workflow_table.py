"""The case state machine: the table, the roles, and every guard that encodes the law."""

from __future__ import annotations

import dataclasses
from collections import deque
from datetime import UTC, datetime, timedelta
from types import MappingProxyType
from uuid import UUID

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from app.cases.workflow import (
    RESUME_BEFORE_RETURN,
    RESUME_PREVIOUS,
    TRANSITIONS,
    Allowed,
    CaseAction,
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
    action_allowed,
    assistance_allowed,
    available_events,
    decide,
    decide_permit,
    decide_proceedings,
    facts_after,
    legal_hold,
)

NOW = datetime(2025, 6, 1, 12, 0, tzinfo=UTC)
ALICE = UUID("00000000-0000-0000-0000-00000000000a")
BOB = UUID("00000000-0000-0000-0000-00000000000b")

S, E, R = Stage, Event, Role


def req(
    event: Event,
    role: Role,
    actor: UUID = ALICE,
    reason: str | None = "grounds recorded in the file",
    legal_basis: str | None = None,
) -> TransitionRequest:
    return TransitionRequest(
        event=event, actor_id=actor, actor_role=role, reason=reason, legal_basis=legal_basis
    )


def adult(**changes: object) -> CaseFacts:
    return dataclasses.replace(CaseFacts(now=NOW, age=34), **changes)  # type: ignore[arg-type]


def child(**changes: object) -> CaseFacts:
    return dataclasses.replace(CaseFacts(now=NOW, age=15), **changes)  # type: ignore[arg-type]


def everything_done(base: CaseFacts) -> CaseFacts:
    """Every fact a guard could ask for is satisfied (time aside)."""
    return dataclasses.replace(
        base,
        indicators_recorded=3,
        referral_consent_recorded=True,
        guardian_requested=True,
        guardian_assigned=True,
        best_interests_assessment_done=True,
        actor_is_competent_authority=True,
        identification_gated_by_reflection=False,
        support_plan_recorded=True,
        return_consent_recorded=True,
        pre_return_risk_assessment_done=True,
        receiving_organisation_confirmed=True,
        data_transfer_consent_recorded=True,
        guardian_cosigned_return=True,
        reintegration_plan_recorded=True,
        closure_reason="support completed",
    )


def refused(result: Allowed | Refused, code: str, *words: str) -> None:
    assert isinstance(result, Refused), result
    assert result.code == code, result
    for word in words:
        assert word in result.message, result.message


def allowed(result: Allowed | Refused, target: Stage) -> Allowed:
    assert isinstance(result, Allowed), result
    assert result.target == target
    return result


# --------------------------------------------------------------------------- table shape

PROFILES = {
    "adult": everything_done(adult(previous_stage=S.identified, stage_before_return=S.identified)),
    "child": everything_done(child(previous_stage=S.identified, stage_before_return=S.identified)),
}


@pytest.mark.parametrize("profile", PROFILES)
@pytest.mark.parametrize("stage", list(Stage))
def test_every_pair_outside_the_table_is_refused_and_changes_nothing(
    stage: Stage, profile: str
) -> None:
    facts = PROFILES[profile]
    snapshot = dataclasses.asdict(facts)
    missing = [event for event in Event if (stage, event) not in TRANSITIONS]
    for event in missing:
        for role in Role:
            result = decide(stage, req(event, role), facts)
            refused(result, "not_possible_in_stage", event.value, stage.value)
    assert dataclasses.asdict(facts) == snapshot


def test_the_table_has_the_expected_size_and_no_stray_keys() -> None:
    assert isinstance(TRANSITIONS, MappingProxyType)
    assert len(TRANSITIONS) == 64
    for stage, event in TRANSITIONS:
        assert isinstance(stage, Stage)
        assert isinstance(event, Event)
    assert {event for _, event in TRANSITIONS} == set(Event)  # every event is used somewhere


def test_every_stage_is_reachable_from_detected_in_the_graph() -> None:
    seen = {S.detected}
    queue = deque([S.detected])
    while queue:
        stage = queue.popleft()
        for (source, _), transition in TRANSITIONS.items():
            target = transition.target
            if source == stage and isinstance(target, Stage) and target not in seen:
                seen.add(target)
                queue.append(target)
    assert seen == set(Stage)


def test_every_stage_is_reachable_through_decide_itself() -> None:
    """Explore with decide() and facts_after(), so guards and effects take part."""
    reached: set[Stage] = set()
    for base in (adult(), child()):
        start = dataclasses.replace(
            everything_done(base), referral_consent_recorded=True, closure_reason="done"
        )
        frontier = deque([(S.detected, start)])
        visited = {(S.detected, start)}
        while frontier:
            stage, facts = frontier.popleft()
            reached.add(stage)
            for event in Event:
                for role in Role:
                    for actor in (ALICE, BOB):
                        request = req(event, role, actor)
                        result = decide(stage, request, facts)
                        if isinstance(result, Allowed):
                            nxt = (result.target, facts_after(stage, request, facts, result))
                            if nxt not in visited:
                                visited.add(nxt)
                                frontier.append(nxt)
    assert reached == set(Stage)


def test_closed_is_terminal() -> None:
    assert not [key for key in TRANSITIONS if key[0] == S.closed]
    facts = PROFILES["adult"]
    for role in Role:
        assert available_events(S.closed, role, facts) == []
        for event in Event:
            assert isinstance(decide(S.closed, req(event, role), facts), Refused)


@pytest.mark.parametrize("stage", [s for s in Stage if s != S.closed])
def test_every_non_closed_stage_has_an_exit(stage: Stage) -> None:
    exits = [
        t.target
        for (source, _), t in TRANSITIONS.items()
        if source == stage and t.target != stage and t.roles
    ]
    assert exits, f"{stage} is a dead end"


def test_closed_is_reachable_from_every_non_closed_stage() -> None:
    """No stage traps a case forever: some path of rows leads to closed."""
    reverse: dict[Stage, set[Stage]] = {s: set() for s in Stage}
    for (source, _), t in TRANSITIONS.items():
        targets = (
            [t.target]
            if isinstance(t.target, Stage)
            else [s for s in Stage if s not in {S.closed, S.lost_contact, S.missing_child}]
        )
        for target in targets:
            reverse[target].add(source)
    seen = {S.closed}
    queue = deque([S.closed])
    while queue:
        for source in reverse[queue.popleft()] - seen:
            seen.add(source)
            queue.append(source)
    assert seen == set(Stage)


# --------------------------------------------------------------------------- roles


def test_a_role_not_listed_is_refused_even_when_every_guard_passes() -> None:
    facts = PROFILES["adult"]
    result = decide(
        S.reasonable_grounds_pending, req(E.positive_reasonable_grounds, R.ngo_caseworker), facts
    )
    refused(result, "role_not_permitted", "ngo_caseworker", "positive_reasonable_grounds")
    allowed(
        decide(
            S.reasonable_grounds_pending,
            req(E.positive_reasonable_grounds, R.police_officer),
            facts,
        ),
        S.recovery_reflection,
    )


def test_admin_can_fire_no_event_anywhere() -> None:
    for (stage, event), transition in TRANSITIONS.items():
        assert R.admin not in transition.roles
        for facts in PROFILES.values():
            refused(decide(stage, req(event, R.admin), facts), "role_not_permitted")


def test_handover_is_for_the_focal_point_and_closure_for_case_owners_and_the_coordinator() -> None:
    facts = PROFILES["adult"]
    for role in Role:
        handover = decide(S.return_planning, req(E.confirm_return_handover, role), facts)
        assert isinstance(handover, Allowed) == (role == R.focal_point)
        closing = decide(S.long_term_support, req(E.close, role), facts)
        closers = {R.ngo_caseworker, R.social_worker, R.focal_point, R.coordinator}
        assert isinstance(closing, Allowed) == (role in closers)


# --------------------------------------------------------------------------- identification


def test_screening_needs_an_indicator() -> None:
    request = req(E.record_screening, R.ngo_caseworker)
    refused(decide(S.detected, request, adult()), "indicators_required", "indicator")
    allowed(decide(S.detected, request, adult(indicators_recorded=1)), S.presumed_victim)


def test_adult_referral_needs_consent() -> None:
    request = req(E.refer, R.social_worker)
    refused(decide(S.presumed_victim, request, adult()), "referral_consent_required", "consent")
    allowed(decide(S.presumed_victim, request, adult(referral_consent_recorded=True)), S.referred)


def test_child_is_referred_without_consent_but_needs_a_guardian_requested() -> None:
    request = req(E.refer, R.police_officer)
    refused(decide(S.presumed_victim, request, child()), "guardian_request_required", "guardian")
    allowed(decide(S.presumed_victim, request, child(guardian_requested=True)), S.referred)
    allowed(decide(S.presumed_victim, request, child(guardian_assigned=True)), S.referred)


def test_adult_may_decline_and_re_enter_on_consent() -> None:
    decline = req(E.decline_formal_identification, R.ngo_caseworker)
    allowed(decide(S.presumed_victim, decline, adult()), S.declined_formal_identification)
    back = req(E.consent_to_referral, R.ngo_caseworker)
    refused(decide(S.declined_formal_identification, back, adult()), "referral_consent_required")
    allowed(
        decide(S.declined_formal_identification, back, adult(referral_consent_recorded=True)),
        S.presumed_victim,
    )


@pytest.mark.parametrize(
    "facts",
    [
        child(),
        adult(age=17),
        adult(age_uncertain=True),  # CETS 10(3): presumed a child
        adult(age=None),  # age not recorded: treated as uncertain
    ],
    ids=["child", "seventeen", "age-uncertain", "age-unknown"],
)
def test_children_and_age_uncertain_persons_cannot_decline(facts: CaseFacts) -> None:
    assert facts.is_child
    result = decide(
        S.presumed_victim, req(E.decline_formal_identification, R.ngo_caseworker), facts
    )
    refused(result, "child_cannot_decline", "cannot decline")


def test_eighteen_is_an_adult() -> None:
    assert not adult(age=18).is_child
    assert adult(age=18, age_uncertain=True).is_child


def test_positive_reasonable_grounds_only_by_the_competent_authority() -> None:
    request = req(E.positive_reasonable_grounds, R.police_officer)
    refused(
        decide(S.reasonable_grounds_pending, request, adult()),
        "competent_authority_required",
        "competent authority",
    )
    result = allowed(
        decide(S.reasonable_grounds_pending, request, adult(actor_is_competent_authority=True)),
        S.recovery_reflection,
    )
    assert Effect.start_reflection_clock in result.transition.effects
    assert result.transition.decision
    after = facts_after(S.reasonable_grounds_pending, request, adult(), result)
    assert after.reasonable_grounds_at == NOW


# --------------------------------------------------------------------------- reflection period


def pending_identification(days_since_rg: float, **changes: object) -> CaseFacts:
    return adult(
        actor_is_competent_authority=True,
        reasonable_grounds_at=NOW - timedelta(days=days_since_rg),
        **changes,
    )


def test_positive_identification_waits_for_the_minimum_reflection_period() -> None:
    request = req(E.positive_identification, R.police_officer)
    day_29 = decide(S.identification_pending, request, pending_identification(29))
    refused(day_29, "reflection_period_running", "reflection", "minimum 30 days")
    one_second_short = pending_identification(30 - 1 / 86400)
    refused(
        decide(S.identification_pending, request, one_second_short), "reflection_period_running"
    )
    allowed(decide(S.identification_pending, request, pending_identification(30)), S.identified)


def test_negative_identification_also_waits_for_the_reflection_period() -> None:
    propose = req(E.propose_negative_decision, R.police_officer, ALICE)
    refused(
        decide(S.identification_pending, propose, pending_identification(29)),
        "reflection_period_running",
    )
    confirm = req(E.negative_identification, R.police_officer, BOB)
    proposed_early = pending_identification(
        29,
        negative_decision_proposed_by=ALICE,
        negative_decision_proposed_in=S.identification_pending,
    )
    refused(decide(S.identification_pending, confirm, proposed_early), "reflection_period_running")
    on_day_30 = dataclasses.replace(proposed_early, reasonable_grounds_at=NOW - timedelta(days=30))
    allowed(decide(S.identification_pending, confirm, on_day_30), S.not_identified)


def test_the_country_profile_sets_the_minimum_and_may_ungate() -> None:
    request = req(E.positive_identification, R.police_officer)
    longer = pending_identification(44, min_reflection_days=45)
    refused(decide(S.identification_pending, request, longer), "reflection_period_running", "45")
    ungated = pending_identification(0, identification_gated_by_reflection=False)
    allowed(decide(S.identification_pending, request, ungated), S.identified)


def test_identification_needs_a_positive_reasonable_grounds_decision_on_record() -> None:
    request = req(E.positive_identification, R.police_officer)
    facts = adult(actor_is_competent_authority=True, identification_gated_by_reflection=False)
    refused(decide(S.identification_pending, request, facts), "reasonable_grounds_required")
    gated = adult(actor_is_competent_authority=True)
    refused(
        decide(
            S.identification_pending, request, dataclasses.replace(gated, reasonable_grounds_at=NOW)
        ),
        "reflection_period_running",
    )


# --------------------------------------------------------------------------- second reviewer


@pytest.mark.parametrize(
    ("stage", "confirm", "target", "base"),
    [
        (
            S.reasonable_grounds_pending,
            E.negative_reasonable_grounds,
            S.not_identified,
            adult(actor_is_competent_authority=True),
        ),
        (
            S.identification_pending,
            E.negative_identification,
            S.not_identified,
            pending_identification(31),
        ),
        (
            S.reconsideration,
            E.uphold_negative,
            S.not_identified,
            adult(actor_is_competent_authority=True),
        ),
    ],
)
def test_a_negative_decision_needs_a_second_distinct_reviewer(
    stage: Stage, confirm: Event, target: Stage, base: CaseFacts
) -> None:
    # No proposal yet: even a single confirmation is refused.
    refused(
        decide(stage, req(confirm, R.police_officer, BOB), base),
        "negative_proposal_required",
        "proposed",
    )
    # Alice proposes: an Allowed that keeps the stage and records her as proposer.
    propose = req(E.propose_negative_decision, R.police_officer, ALICE)
    proposal = allowed(decide(stage, propose, base), stage)
    facts = facts_after(stage, propose, base, proposal)
    assert facts.negative_decision_proposed_by == ALICE
    assert facts.negative_decision_proposed_in == stage
    # A second proposal while one is pending is refused.
    refused(
        decide(stage, req(E.propose_negative_decision, R.police_officer, BOB), facts),
        "negative_already_proposed",
    )
    # Alice cannot confirm her own proposal.
    refused(
        decide(stage, req(confirm, R.police_officer, ALICE), facts),
        "second_reviewer_required",
        "second reviewer",
    )
    assert confirm not in available_events(stage, R.police_officer, facts, actor_id=ALICE)
    assert confirm in available_events(stage, R.police_officer, facts, actor_id=BOB)
    # Bob can; the stage change discards the proposal.
    request = req(confirm, R.police_officer, BOB)
    result = allowed(decide(stage, request, facts), target)
    after = facts_after(stage, request, facts, result)
    assert after.negative_decision_proposed_by is None
    assert after.negative_decision_proposed_in is None


def test_a_proposal_made_in_another_stage_does_not_count() -> None:
    stale = pending_identification(
        31,
        negative_decision_proposed_by=ALICE,
        negative_decision_proposed_in=S.reasonable_grounds_pending,
    )
    refused(
        decide(
            S.identification_pending, req(E.negative_identification, R.police_officer, BOB), stale
        ),
        "negative_proposal_required",
    )


def test_a_positive_decision_by_the_second_reviewer_overrides_a_proposal() -> None:
    facts = adult(
        actor_is_competent_authority=True,
        negative_decision_proposed_by=ALICE,
        negative_decision_proposed_in=S.reasonable_grounds_pending,
    )
    request = req(E.positive_reasonable_grounds, R.police_officer, BOB)
    result = allowed(decide(S.reasonable_grounds_pending, request, facts), S.recovery_reflection)
    assert (
        facts_after(
            S.reasonable_grounds_pending, request, facts, result
        ).negative_decision_proposed_by
        is None
    )


def test_negative_decisions_record_the_date_that_opens_the_reconsideration_window() -> None:
    facts = adult(
        actor_is_competent_authority=True,
        negative_decision_proposed_by=ALICE,
        negative_decision_proposed_in=S.reasonable_grounds_pending,
    )
    request = req(E.negative_reasonable_grounds, R.police_officer, BOB)
    result = allowed(decide(S.reasonable_grounds_pending, request, facts), S.not_identified)
    assert (
        facts_after(S.reasonable_grounds_pending, request, facts, result).not_identified_at == NOW
    )


# --------------------------------------------------------------------------- reconsideration


def test_reconsideration_only_inside_the_window() -> None:
    request = req(E.request_reconsideration, R.ngo_caseworker)
    inside = adult(not_identified_at=NOW - timedelta(days=30))
    allowed(decide(S.not_identified, request, inside), S.reconsideration)
    outside = adult(not_identified_at=NOW - timedelta(days=30, seconds=1))
    refused(decide(S.not_identified, request, outside), "reconsideration_window_closed", "window")
    no_date = adult()
    refused(
        decide(S.not_identified, request, no_date), "reconsideration_window_closed", "no negative"
    )
    wider = adult(not_identified_at=NOW - timedelta(days=40), reconsideration_window_days=60)
    allowed(decide(S.not_identified, request, wider), S.reconsideration)


def test_reconsideration_request_needs_a_reason() -> None:
    facts = adult(not_identified_at=NOW)
    for reason in (None, "", "   "):
        refused(
            decide(
                S.not_identified, req(E.request_reconsideration, R.guardian, reason=reason), facts
            ),
            "reason_required",
        )


def test_overturning_a_negative_reasonable_grounds_decision_restarts_reflection() -> None:
    request = req(E.overturn_to_recovery, R.police_officer)
    facts = adult(actor_is_competent_authority=True)
    result = allowed(decide(S.reconsideration, request, facts), S.recovery_reflection)
    assert facts_after(S.reconsideration, request, facts, result).reasonable_grounds_at == NOW
    refused(
        decide(S.reconsideration, req(E.overturn_to_identified, R.police_officer), facts),
        "reasonable_grounds_required",
    )


def test_overturning_a_negative_identification_decision_identifies() -> None:
    facts = pending_identification(60)
    allowed(
        decide(S.reconsideration, req(E.overturn_to_identified, R.police_officer), facts),
        S.identified,
    )
    refused(
        decide(S.reconsideration, req(E.overturn_to_recovery, R.police_officer), facts),
        "not_a_reasonable_grounds_negative",
    )


# --------------------------------------------------------------------------- support and return


def test_long_term_support_needs_a_support_and_safety_plan() -> None:
    request = req(E.start_long_term_support, R.social_worker)
    refused(
        decide(S.identified, request, adult()), "support_plan_required", "support and safety plan"
    )
    allowed(decide(S.identified, request, adult(support_plan_recorded=True)), S.long_term_support)


@pytest.mark.parametrize("origin", [S.recovery_reflection, S.identified, S.long_term_support])
def test_return_planning_needs_a_voluntary_decision_and_cancel_returns_to_origin(
    origin: Stage,
) -> None:
    plan = req(E.plan_return, R.ngo_caseworker)
    refused(decide(origin, plan, adult()), "return_consent_required", "voluntary")
    facts = adult(return_consent_recorded=True)
    result = allowed(decide(origin, plan, facts), S.return_planning)
    planning = facts_after(origin, plan, facts, result)
    assert planning.stage_before_return == origin
    cancel = req(E.cancel_return, R.guardian)
    allowed(decide(S.return_planning, cancel, planning), origin)
    refused(decide(S.return_planning, cancel, adult()), "stage_before_return_unknown")


ADULT_READY = adult(
    return_consent_recorded=True,
    pre_return_risk_assessment_done=True,
    receiving_organisation_confirmed=True,
    data_transfer_consent_recorded=True,
)

HANDOVER_GUARDS = [
    ("return_consent_recorded", "return_consent_required", "voluntary consent"),
    ("pre_return_risk_assessment_done", "risk_assessment_required", "pre-return risk assessment"),
    (
        "receiving_organisation_confirmed",
        "receiving_organisation_required",
        "receiving organisation",
    ),
    ("data_transfer_consent_recorded", "data_transfer_consent_required", "transfer case data"),
]


@pytest.mark.parametrize(("fact", "code", "words"), HANDOVER_GUARDS)
def test_adult_handover_refused_for_each_missing_condition(
    fact: str, code: str, words: str
) -> None:
    request = req(E.confirm_return_handover, R.focal_point)
    missing = dataclasses.replace(ADULT_READY, **{fact: False})  # type: ignore[arg-type]
    refused(decide(S.return_planning, request, missing), code, words)
    allowed(decide(S.return_planning, request, ADULT_READY), S.returned_handed_over)


CHILD_READY = dataclasses.replace(
    ADULT_READY,
    age=16,
    guardian_assigned=True,
    best_interests_assessment_done=True,
    guardian_cosigned_return=True,
)


@pytest.mark.parametrize(
    ("fact", "code", "words"),
    [
        *HANDOVER_GUARDS,
        ("guardian_assigned", "guardian_required", "guardian"),
        ("best_interests_assessment_done", "best_interests_assessment_required", "best-interests"),
        ("guardian_cosigned_return", "guardian_cosign_required", "co-signature"),
    ],
)
@pytest.mark.parametrize("person", ["child", "age-uncertain"])
def test_child_handover_refused_for_each_missing_condition(
    fact: str, code: str, words: str, person: str
) -> None:
    ready = (
        CHILD_READY
        if person == "child"
        else dataclasses.replace(CHILD_READY, age=25, age_uncertain=True)
    )
    request = req(E.confirm_return_handover, R.focal_point)
    missing = dataclasses.replace(ready, **{fact: False})  # type: ignore[arg-type]
    refused(decide(S.return_planning, request, missing), code, words)
    allowed(decide(S.return_planning, request, ready), S.returned_handed_over)


def test_an_adult_return_needs_no_best_interests_assessment_or_guardian() -> None:
    request = req(E.confirm_return_handover, R.focal_point)
    assert not ADULT_READY.guardian_assigned and not ADULT_READY.best_interests_assessment_done
    allowed(decide(S.return_planning, request, ADULT_READY), S.returned_handed_over)


def test_the_guardian_cosigns_a_child_return_without_changing_stage() -> None:
    request = req(E.cosign_return, R.guardian)
    facts = child(guardian_assigned=True)
    result = allowed(decide(S.return_planning, request, facts), S.return_planning)
    assert facts_after(S.return_planning, request, facts, result).guardian_cosigned_return
    refused(decide(S.return_planning, request, child()), "guardian_required")
    refused(decide(S.return_planning, request, adult(guardian_assigned=True)), "child_case_only")


def test_reintegration_monitoring_needs_a_plan_and_re_trafficking_reopens_at_detected() -> None:
    start = req(E.start_reintegration_monitoring, R.focal_point)
    refused(decide(S.returned_handed_over, start, adult()), "reintegration_plan_required")
    allowed(
        decide(S.returned_handed_over, start, adult(reintegration_plan_recorded=True)),
        S.reintegration_monitoring,
    )
    again = req(E.report_re_trafficking, R.ngo_caseworker)
    facts = everything_done(adult(reasonable_grounds_at=NOW - timedelta(days=400)))
    result = allowed(decide(S.reintegration_monitoring, again, facts), S.detected)
    fresh = facts_after(S.reintegration_monitoring, again, facts, result)
    assert fresh.reasonable_grounds_at is None
    assert fresh.indicators_recorded == 0
    assert not fresh.referral_consent_recorded
    assert not fresh.return_consent_recorded
    # The new episode starts over: screening needs indicators again.
    refused(
        decide(S.detected, req(E.record_screening, R.police_officer), fresh), "indicators_required"
    )


# --------------------------------------------------------------------------- side states


@pytest.mark.parametrize("stage", [S.referred, S.recovery_reflection, S.reintegration_monitoring])
def test_an_adult_loses_contact_and_resumes_where_they_were(stage: Stage) -> None:
    report = req(E.report_lost_contact, R.ngo_caseworker)
    facts = adult()
    result = allowed(decide(stage, report, facts), S.lost_contact)
    lost = facts_after(stage, report, facts, result)
    assert lost.previous_stage == stage
    refused(
        decide(stage, req(E.report_missing_child, R.ngo_caseworker), facts),
        "missing_child_is_for_children",
    )
    allowed(decide(S.lost_contact, req(E.contact_restored, R.ngo_caseworker), lost), stage)


@pytest.mark.parametrize(
    "facts", [child(), adult(age_uncertain=True)], ids=["child", "age-uncertain"]
)
def test_a_child_who_goes_missing_is_a_missing_child_never_lost_contact(facts: CaseFacts) -> None:
    stage = S.recovery_reflection
    refused(
        decide(stage, req(E.report_lost_contact, R.guardian), facts),
        "child_must_be_reported_missing",
        "missing child",
    )
    report = req(E.report_missing_child, R.guardian)
    result = allowed(decide(stage, report, facts), S.missing_child)
    assert Effect.escalate_missing_child in result.transition.effects
    missing = facts_after(stage, report, facts, result)
    allowed(decide(S.missing_child, req(E.contact_restored, R.guardian), missing), stage)


def test_a_person_out_of_contact_found_to_be_a_child_is_escalated_and_still_resumes() -> None:
    lost = adult(previous_stage=S.identification_pending)
    presumed_child = dataclasses.replace(lost, age_uncertain=True)
    report = req(E.report_missing_child, R.police_officer)
    refused(decide(S.lost_contact, report, lost), "missing_child_is_for_children")
    result = allowed(decide(S.lost_contact, report, presumed_child), S.missing_child)
    missing = facts_after(S.lost_contact, report, presumed_child, result)
    assert missing.previous_stage == S.identification_pending
    allowed(
        decide(S.missing_child, req(E.contact_restored, R.police_officer), missing),
        S.identification_pending,
    )


def test_a_person_who_declined_and_is_found_to_be_a_child_re_enters_without_consent() -> None:
    back = req(E.consent_to_referral, R.social_worker)
    allowed(decide(S.declined_formal_identification, back, child()), S.presumed_victim)


def test_contact_restored_needs_the_previous_stage() -> None:
    request = req(E.contact_restored, R.social_worker)
    refused(decide(S.lost_contact, request, adult()), "previous_stage_unknown")
    refused(
        decide(S.lost_contact, request, adult(previous_stage=S.closed)), "previous_stage_unknown"
    )
    assert TRANSITIONS[(S.lost_contact, E.contact_restored)].target is RESUME_PREVIOUS
    assert TRANSITIONS[(S.return_planning, E.cancel_return)].target is RESUME_BEFORE_RETURN


# --------------------------------------------------------------------------- reasons and bases


def test_closing_requires_a_closure_reason() -> None:
    request = req(E.close, R.coordinator)
    for reason in (None, "", "  "):
        refused(
            decide(S.long_term_support, request, adult(closure_reason=reason)),
            "closure_reason_required",
            "closure reason",
        )
    allowed(decide(S.long_term_support, request, adult(closure_reason="goals met")), S.closed)


DECISIONS = [key for key, t in TRANSITIONS.items() if t.decision]


def test_the_decisions_are_the_legal_ones() -> None:
    assert {event for _, event in DECISIONS} == {
        E.positive_reasonable_grounds,
        E.propose_negative_decision,
        E.negative_reasonable_grounds,
        E.positive_identification,
        E.negative_identification,
        E.uphold_negative,
        E.overturn_to_recovery,
        E.overturn_to_identified,
    }
    for key in DECISIONS:
        assert TRANSITIONS[key].legal_basis.strip(), key


@pytest.mark.parametrize("reason", [None, "", " \n"])
def test_every_decision_requires_a_reason(reason: str | None) -> None:
    facts = pending_identification(
        31, negative_decision_proposed_by=ALICE, negative_decision_proposed_in=None
    )
    for stage, event in DECISIONS:
        in_stage = dataclasses.replace(facts, negative_decision_proposed_in=stage)
        if event == E.overturn_to_recovery:
            in_stage = dataclasses.replace(in_stage, reasonable_grounds_at=None)
        if event == E.propose_negative_decision:
            in_stage = dataclasses.replace(in_stage, negative_decision_proposed_by=None)
        with_reason = decide(stage, req(event, R.police_officer, BOB), in_stage)
        assert isinstance(with_reason, Allowed), (stage, event, with_reason)
        without = decide(stage, req(event, R.police_officer, BOB, reason=reason), in_stage)
        refused(without, "reason_required", event.value)


def test_legal_basis_is_the_request_s_or_the_default_and_required_for_decisions() -> None:
    facts = adult(actor_is_competent_authority=True)
    key = (S.reasonable_grounds_pending, E.positive_reasonable_grounds)
    default = decide(*key[:1], req(key[1], R.police_officer), facts)
    assert isinstance(default, Allowed)
    assert default.legal_basis == TRANSITIONS[key].legal_basis
    assert "CETS 197" in (default.legal_basis or "")
    own = decide(
        key[0], req(key[1], R.police_officer, legal_basis="Anti-Trafficking Act s.12"), facts
    )
    assert isinstance(own, Allowed)
    assert own.legal_basis == "Anti-Trafficking Act s.12"
    # A table whose decision has no default basis: the request must supply one.
    bare = dict(TRANSITIONS)
    bare[key] = dataclasses.replace(TRANSITIONS[key], legal_basis="")
    refused(
        decide(key[0], req(key[1], R.police_officer), facts, table=bare), "legal_basis_required"
    )
    allowed(
        decide(key[0], req(key[1], R.police_officer, legal_basis="Act s.3"), facts, table=bare),
        S.recovery_reflection,
    )


def test_facts_reject_naive_datetimes_and_negative_counts() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        CaseFacts(now=datetime(2025, 1, 1))
    with pytest.raises(ValueError, match="timezone-aware"):
        CaseFacts(now=NOW, reasonable_grounds_at=datetime(2025, 1, 1))
    with pytest.raises(ValueError, match="min_reflection_days"):
        CaseFacts(now=NOW, min_reflection_days=-1)


# --------------------------------------------------------------------------- screens


@pytest.mark.parametrize("profile", ["adult", "child", "bare-adult", "bare-child", "proposed"])
def test_available_events_agree_with_decide(profile: str) -> None:
    facts = {
        "adult": PROFILES["adult"],
        "child": PROFILES["child"],
        "bare-adult": adult(),
        "bare-child": child(),
        "proposed": pending_identification(
            31,
            negative_decision_proposed_by=ALICE,
            negative_decision_proposed_in=S.identification_pending,
        ),
    }[profile]
    for stage in Stage:
        for role in Role:
            for actor in (ALICE, BOB):
                expected = [
                    event
                    for event in Event
                    if isinstance(decide(stage, req(event, role, actor), facts), Allowed)
                ]
                assert available_events(stage, role, facts, actor_id=actor) == expected


# --------------------------------------------------------------------------- parallel tracks


def test_residence_permit_track() -> None:
    steps = [
        (PermitEvent.apply, PermitStatus.applied),
        (PermitEvent.grant, PermitStatus.granted),
        (PermitEvent.apply_for_renewal, PermitStatus.applied),
        (PermitEvent.grant, PermitStatus.granted),
        (PermitEvent.expire, PermitStatus.expired),
        (PermitEvent.apply, PermitStatus.applied),
        (PermitEvent.refuse, PermitStatus.refused),
    ]
    status = PermitStatus.none
    for event, expected in steps:
        result = decide_permit(status, event, R.social_worker)
        assert result == expected
        status = expected
    refused_result = decide_permit(PermitStatus.none, PermitEvent.grant, R.social_worker)
    assert isinstance(refused_result, Refused)
    assert isinstance(decide_permit(PermitStatus.none, PermitEvent.apply, R.admin), Refused)


def test_proceedings_track_and_legal_hold() -> None:
    status = ProceedingsStatus.none
    assert not legal_hold(adult())
    for event, expected in [
        (ProceedingsEvent.open_investigation, ProceedingsStatus.investigation),
        (ProceedingsEvent.charge, ProceedingsStatus.prosecution),
        (ProceedingsEvent.start_trial, ProceedingsStatus.trial),
        (ProceedingsEvent.record_outcome, ProceedingsStatus.outcome),
    ]:
        result = decide_proceedings(status, event, R.prosecutor)
        assert result == expected
        status = expected
        assert legal_hold(adult(proceedings_status=status)) == (status != ProceedingsStatus.outcome)
    assert legal_hold(
        adult(proceedings_status=ProceedingsStatus.outcome, compensation_claim_pending=True)
    )
    for active in (
        ProceedingsStatus.investigation,
        ProceedingsStatus.prosecution,
        ProceedingsStatus.trial,
    ):
        assert decide_proceedings(active, ProceedingsEvent.discontinue, R.police_officer) == (
            ProceedingsStatus.discontinued
        )
    for inactive in (
        ProceedingsStatus.none,
        ProceedingsStatus.outcome,
        ProceedingsStatus.discontinued,
    ):
        assert isinstance(
            decide_proceedings(inactive, ProceedingsEvent.discontinue, R.police_officer), Refused
        )
    assert not legal_hold(adult(proceedings_status=ProceedingsStatus.discontinued))
    assert isinstance(
        decide_proceedings(
            ProceedingsStatus.none, ProceedingsEvent.open_investigation, R.ngo_caseworker
        ),
        Refused,
    )


track_states = st.fixed_dictionaries(
    {
        "permit_status": st.sampled_from(PermitStatus),
        "proceedings_status": st.sampled_from(ProceedingsStatus),
        "compensation_claim_pending": st.booleans(),
        "cooperating_with_authorities": st.booleans(),
    }
)

facts_strategy = st.builds(
    CaseFacts,
    now=st.just(NOW),
    age=st.none() | st.integers(0, 90),
    age_uncertain=st.booleans(),
    indicators_recorded=st.integers(0, 3),
    referral_consent_recorded=st.booleans(),
    guardian_requested=st.booleans(),
    guardian_assigned=st.booleans(),
    best_interests_assessment_done=st.booleans(),
    actor_is_competent_authority=st.booleans(),
    reasonable_grounds_at=st.none() | st.integers(0, 60).map(lambda d: NOW - timedelta(days=d)),
    identification_gated_by_reflection=st.booleans(),
    not_identified_at=st.none() | st.integers(0, 60).map(lambda d: NOW - timedelta(days=d)),
    negative_decision_proposed_by=st.none() | st.sampled_from([ALICE, BOB]),
    negative_decision_proposed_in=st.none() | st.sampled_from(Stage),
    support_plan_recorded=st.booleans(),
    return_consent_recorded=st.booleans(),
    pre_return_risk_assessment_done=st.booleans(),
    receiving_organisation_confirmed=st.booleans(),
    data_transfer_consent_recorded=st.booleans(),
    guardian_cosigned_return=st.booleans(),
    reintegration_plan_recorded=st.booleans(),
    stage_before_return=st.none() | st.sampled_from(Stage),
    previous_stage=st.none() | st.sampled_from(Stage),
    closure_reason=st.sampled_from([None, "", "goals met"]),
)


@settings(max_examples=300, deadline=None)
@given(
    facts=facts_strategy,
    tracks_a=track_states,
    tracks_b=track_states,
    stage=st.sampled_from(Stage),
    event=st.sampled_from(Event),
    role=st.sampled_from(Role),
    actor=st.sampled_from([ALICE, BOB]),
)
def test_no_decision_depends_on_proceedings_or_cooperation(
    facts: CaseFacts,
    tracks_a: dict[str, object],
    tracks_b: dict[str, object],
    stage: Stage,
    event: Event,
    role: Role,
    actor: UUID,
) -> None:
    a = dataclasses.replace(facts, **tracks_a)  # type: ignore[arg-type]
    b = dataclasses.replace(facts, **tracks_b)  # type: ignore[arg-type]
    assert decide(stage, req(event, role, actor), a) == decide(stage, req(event, role, actor), b)
    assert available_events(stage, role, a, actor_id=actor) == available_events(
        stage, role, b, actor_id=actor
    )
    assert assistance_allowed(stage, role, a) == assistance_allowed(stage, role, b)


@pytest.mark.parametrize("stage", list(Stage))
def test_assistance_in_every_stage_but_closed_for_support_roles_only(stage: Stage) -> None:
    cooperating = adult(
        cooperating_with_authorities=True, proceedings_status=ProceedingsStatus.trial
    )
    refusing = adult(cooperating_with_authorities=False)
    for facts in (cooperating, refusing, child()):
        for role in Role:
            expected = stage != S.closed and role in {R.ngo_caseworker, R.social_worker}
            assert assistance_allowed(stage, role, facts) is expected
    assert action_allowed(CaseAction.record_contact, stage, R.guardian, refusing) is (
        stage != S.closed
    )


def test_roles_match_the_shared_vocabulary_and_interoperate() -> None:
    vocab = pytest.importorskip("app.vocab")
    assert {role.value for role in vocab.Role} == {role.value for role in Role}
    # A service passing app.vocab.Role values gets the same answers as with workflow.Role.
    facts = adult(actor_is_competent_authority=True)
    request = req(E.positive_reasonable_grounds, vocab.Role.police_officer)
    allowed(decide(S.reasonable_grounds_pending, request, facts), S.recovery_reflection)
