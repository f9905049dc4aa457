"""The workflow on stored cases: guards from the law, versions, audit, deadlines."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest
from sqlalchemy import select

from app.audit.models import AuditEvent
from app.audit.service import case_timeline, verify_chains
from app.auth.service import actor_for
from app.cases import service as cases
from app.cases import transitions as tx
from app.cases.models import Case, CaseNote
from app.cases.schemas import RegistrationIn
from app.cases.workflow import Event
from app.db.base import utcnow
from app.errors import GuardRefused, StaleVersion
from tests.builders import registration


class Team:
    def __init__(self, world, session, ctx) -> None:
        self.session, self.ctx = session, ctx
        self.ngo = world.agency("ngo")
        self.police = world.agency("police")
        self.worker = actor_for(world.user("ngo_caseworker", self.ngo), self.ngo)
        self.officer = actor_for(world.user("police_officer", self.police), self.police)
        self.second_officer = actor_for(world.user("police_officer", self.police), self.police)
        self.social = actor_for(world.user("social_worker", self.ngo), self.ngo)
        # The UK Single Competent Authority: the identification function in a coordination office.
        self.sca_agency = world.agency("coordinator_office")
        self.sca = actor_for(world.user("police_officer", self.sca_agency), self.sca_agency)

    def register(self, *, profile: str = "coe_default", consent: bool = True, **victim) -> Case:
        payload = registration(**victim)
        payload["detection"]["country_profile"] = profile
        if consent:
            payload["consents"] = [
                {
                    "purpose": "referral",
                    "scope": ["identity", "exploitation"],
                    "given_on": "2026-10-01",
                }
            ]
        case = cases.register(
            self.session, self.ctx, self.worker, RegistrationIn.model_validate(payload)
        )
        for agency in (self.police, self.sca_agency):
            cases.refer(
                self.session,
                self.ctx,
                self.worker,
                case.id,
                cases.ReferralIn(
                    agency_id=agency.id, access_role="identification_authority", purpose="decision"
                ),
            )
        return case

    def decider(self, case: Case):
        return self.sca if case.country_profile == "uk" else self.officer

    def fire(
        self,
        actor,
        case: Case,
        event: Event,
        *,
        now=None,
        reason: str | None = None,
        legal_basis=None,
        closure=None,
    ) -> Case:
        return tx.transition(
            self.session,
            self.ctx,
            actor,
            case.id,
            tx.TransitionInput(
                event=event, reason=reason, legal_basis=legal_basis, closure_reason=closure
            ),
            case.version,
            now=now,
        )

    def to_recovery(self, case: Case, at) -> Case:
        self.fire(self.worker, case, Event.record_screening, now=at)
        self.fire(self.worker, case, Event.refer, now=at)
        self.fire(self.officer, case, Event.accept_referral, now=at)
        return self.fire(
            self.decider(case),
            case,
            Event.positive_reasonable_grounds,
            now=at,
            reason="credible account",
            legal_basis="MSA 2015 s.49",
        )


@pytest.fixture
def team(world, session, ctx) -> Team:
    return Team(world, session, ctx)


def test_main_path_moves_stage_bumps_version_and_audits_each_step(team, session) -> None:
    start = utcnow() - timedelta(days=40)
    case = team.register()
    version = case.version
    team.to_recovery(case, start)
    assert case.stage == "recovery_reflection"
    assert case.version == version + 4
    assert case.reasonable_grounds_at == start
    transitions = [e for e in case_timeline(session, case.id) if e.action == "transition"]
    assert [(e.details["from"], e.details["to"]) for e in transitions] == [
        ("detected", "presumed_victim"),
        ("presumed_victim", "referred"),
        ("referred", "reasonable_grounds_pending"),
        ("reasonable_grounds_pending", "recovery_reflection"),
    ]
    decision = transitions[-1]
    assert (
        decision.actor_role == "police_officer"
        and decision.details["legal_basis"] == "MSA 2015 s.49"
    )
    assert decision.details["decision"] is True
    # The reason is sealed in a note; the audit event only points at it.
    note = session.get(CaseNote, uuid.UUID(decision.details["reason_note_id"]))
    assert note is not None and b"credible" not in note.body
    assert "credible" not in str(decision.details)
    assert verify_chains(session, [f"case:{case.id}"]).ok


def test_identification_waits_for_the_reflection_minimum(team) -> None:
    rg_at = utcnow() - timedelta(days=31)
    case = team.register(profile="uk")  # the UK gates conclusive decisions by the 30 days
    team.to_recovery(case, rg_at)
    team.fire(team.sca, case, Event.start_identification, now=rg_at + timedelta(days=1))
    with pytest.raises(GuardRefused, match="reflection"):
        team.fire(
            team.sca,
            case,
            Event.positive_identification,
            now=rg_at + timedelta(days=29),
            reason="r",
            legal_basis="b",
        )
    assert case.stage == "identification_pending"
    team.fire(
        team.sca,
        case,
        Event.positive_identification,
        now=rg_at + timedelta(days=30),
        reason="conclusive",
        legal_basis="MSA s.49",
    )
    assert case.stage == "identified" and case.identification_positive is True


def test_negative_decision_needs_a_distinct_second_reviewer(team) -> None:
    at = utcnow() - timedelta(days=60)
    case = team.register()
    team.to_recovery(case, at)
    team.fire(team.officer, case, Event.start_identification, now=at)
    later = at + timedelta(days=35)
    team.fire(
        team.officer,
        case,
        Event.propose_negative_decision,
        now=later,
        reason="no indicators",
        legal_basis="b",
    )
    with pytest.raises(GuardRefused, match="second"):
        team.fire(
            team.officer,
            case,
            Event.negative_identification,
            now=later,
            reason="no indicators",
            legal_basis="b",
        )
    team.fire(
        team.second_officer,
        case,
        Event.negative_identification,
        now=later,
        reason="agree",
        legal_basis="b",
    )
    assert case.stage == "not_identified" and case.identification_positive is False


def test_adult_referral_needs_consent_and_refusal_is_audited_without_change(team, session) -> None:
    case = team.register(consent=False)
    team.fire(team.worker, case, Event.record_screening)
    version = case.version
    with pytest.raises(GuardRefused, match="consent"):
        team.fire(team.worker, case, Event.refer)
    assert (case.stage, case.version) == ("presumed_victim", version)
    refused = [e for e in case_timeline(session, case.id) if e.action == "transition_refused"]
    assert refused and refused[-1].details["event"] == "refer"


def test_child_case_is_referred_without_consent_once_a_guardian_is_requested(team) -> None:
    case = team.register(consent=False, date_of_birth="2011-03-03")
    assert case.age_band == "child"
    team.fire(team.worker, case, Event.record_screening)
    with pytest.raises(GuardRefused, match="guardian"):
        team.fire(team.worker, case, Event.refer)
    tx.record_assessment(
        team.session,
        team.ctx,
        team.worker,
        case.id,
        "guardian_request",
        "requested from the county",
        case.version,
    )
    team.fire(team.worker, case, Event.refer)
    assert case.stage == "referred"


def test_age_uncertain_adult_looking_person_follows_the_child_pathway(team) -> None:
    case = team.register(age_uncertain=True)
    assert case.age_band == "child"
    team.fire(team.worker, case, Event.record_screening)
    with pytest.raises(GuardRefused):
        team.fire(team.worker, case, Event.decline_formal_identification)


def test_competent_authority_comes_from_the_country_profile(team, world) -> None:
    at = utcnow() - timedelta(days=2)
    case = team.register(profile="uk")
    team.fire(team.worker, case, Event.record_screening, now=at)
    team.fire(team.worker, case, Event.refer, now=at)
    team.fire(team.officer, case, Event.accept_referral, now=at)
    # Under the UK profile the police refer, but only the Single Competent Authority decides.
    with pytest.raises(GuardRefused, match="competent"):
        team.fire(
            team.officer,
            case,
            Event.positive_reasonable_grounds,
            now=at,
            reason="r",
            legal_basis="b",
        )
    team.fire(
        team.sca,
        case,
        Event.positive_reasonable_grounds,
        now=at,
        reason="r",
        legal_basis="MSA 2015 s.49",
    )
    assert case.stage == "recovery_reflection"


def test_stale_version_is_refused(team) -> None:
    case = team.register()
    with pytest.raises(StaleVersion):
        tx.transition(
            team.session,
            team.ctx,
            team.worker,
            case.id,
            tx.TransitionInput(Event.record_screening),
            case.version - 1,
        )


def test_proceedings_never_gate_assistance_or_the_main_path(team) -> None:
    at = utcnow() - timedelta(days=3)
    case = team.register()
    team.to_recovery(case, at)
    tx.track_event(
        team.session,
        team.ctx,
        team.officer,
        case.id,
        track="proceedings",
        event="open_investigation",
        expected_version=case.version,
    )
    assert case.proceedings_status == "investigation"
    note = cases.add_note(
        team.session,
        team.ctx,
        team.worker,
        case.id,
        cases.NoteIn(kind="assistance", body="food vouchers"),
    )
    assert note.kind == "assistance"
    assert case.first_support_contact_at is not None
    tx.track_event(
        team.session,
        team.ctx,
        team.officer,
        case.id,
        track="proceedings",
        event="discontinue",
        expected_version=case.version,
    )
    team.fire(team.officer, case, Event.start_identification)
    assert case.stage == "identification_pending"


def test_same_case_gets_different_due_dates_under_two_profiles(team) -> None:
    at = utcnow().replace(hour=10)
    uk = team.register(profile="uk")
    coe = team.register(profile="coe_default")
    for case in (uk, coe):
        team.to_recovery(case, at)
    due = {
        c.country_profile: {d.kind: d.due_at for d in tx.case_deadlines(team.ctx, c)}
        for c in (uk, coe)
    }
    assert set(due["uk"]) == set(due["coe_default"])
    assert due["uk"] != due["coe_default"]


def test_missing_child_escalates_through_the_outbox(team, session) -> None:
    from app.cases.models import OutboxMessage

    case = team.register(date_of_birth="2012-01-01", consent=False)
    team.fire(team.worker, case, Event.record_screening)
    with pytest.raises(GuardRefused):
        team.fire(team.worker, case, Event.report_lost_contact)
    team.fire(team.worker, case, Event.report_missing_child, reason="did not return to the shelter")
    assert case.stage == "missing_child"
    alerts = session.scalars(
        select(OutboxMessage).where(OutboxMessage.topic == "alert.missing_child")
    ).all()
    assert any(a.payload["case_id"] == str(case.id) for a in alerts)
    team.fire(team.worker, case, Event.contact_restored, reason="found")
    assert case.stage == "presumed_victim"


def test_atomicity_exception_after_audit_insert_rolls_back_both(team, session, monkeypatch) -> None:
    case = team.register()
    session.commit()  # release to the outer test transaction: the next step is its own unit
    before = (case.stage, case.version)
    count_before = session.scalar(
        select(AuditEvent.seq)
        .where(AuditEvent.chain_key == f"case:{case.id}")
        .order_by(AuditEvent.seq.desc())
        .limit(1)
    )
    real_record = tx.audit.record

    def record_then_fail(*args, **kwargs):
        real_record(*args, **kwargs)
        raise RuntimeError("injected failure after the audit insert")

    monkeypatch.setattr(tx.audit, "record", record_then_fail)
    nested = session.begin_nested()
    with pytest.raises(RuntimeError, match="injected"):
        team.fire(team.worker, case, Event.record_screening)
    nested.rollback()
    session.expire_all()
    stored = session.get(Case, case.id)
    assert (stored.stage, stored.version) == before
    count_after = session.scalar(
        select(AuditEvent.seq)
        .where(AuditEvent.chain_key == f"case:{case.id}")
        .order_by(AuditEvent.seq.desc())
        .limit(1)
    )
    assert count_after == count_before
    assert verify_chains(session, [f"case:{case.id}"]).ok


def test_offered_events_follow_role_profile_and_guards(team, session, ctx) -> None:
    case = team.register()
    team.fire(team.worker, case, Event.record_screening)
    team.fire(team.worker, case, Event.refer)
    team.fire(team.officer, case, Event.accept_referral)
    officer_events = tx.events_for(session, ctx, team.officer, case)
    assert {Event.positive_reasonable_grounds, Event.propose_negative_decision} <= set(
        officer_events
    )
    assert Event.negative_reasonable_grounds not in officer_events  # nobody proposed yet
    worker_events = tx.events_for(session, ctx, team.worker, case)
    assert Event.positive_reasonable_grounds not in worker_events
    # The SCA is not competent under coe_default for... it is: the profile names coordinator offices too.
    assert Event.positive_reasonable_grounds in tx.events_for(session, ctx, team.sca, case)


def test_deadlines_command_lists_overdue_cases_per_agency(live, monkeypatch) -> None:
    from typer.testing import CliRunner

    from app.cli import cli
    from app.config import get_settings

    worker, ngo = live.user("ngo_caseworker", "ngo")
    officer, police = live.user("police_officer", "police")
    with live.session() as s, s.begin():
        w = actor_for(worker, ngo)
        o = actor_for(officer, police)
        payload = registration()
        payload["consents"] = [
            {"purpose": "referral", "scope": ["identity"], "given_on": "2026-10-01"}
        ]
        case = cases.register(s, live.ctx, w, RegistrationIn.model_validate(payload))
        cases.refer(
            s,
            live.ctx,
            w,
            case.id,
            cases.ReferralIn(
                agency_id=police.id, access_role="identification_authority", purpose="x"
            ),
        )
        long_ago = utcnow() - timedelta(days=30)
        for actor, event in (
            (w, Event.record_screening),
            (w, Event.refer),
            (o, Event.accept_referral),
        ):
            tx.transition(
                s, live.ctx, actor, case.id, tx.TransitionInput(event), case.version, now=long_ago
            )
        reference = case.reference
    for key, value in {
        "PASSAGE_DATABASE_URL": live.env.app_url,
        "PASSAGE_KEYS_DIR": str(live.keys_dir),
        "PASSAGE_ENVIRONMENT": "test",
    }.items():
        monkeypatch.setenv(key, value)
    get_settings.cache_clear()
    try:
        result = CliRunner().invoke(cli, ["deadlines", "--fail-on-overdue"])
    finally:
        get_settings.cache_clear()
    assert result.exit_code == 1, result.output
    assert ngo.name in result.output and reference in result.output
    assert "overdue" in result.output and "reasonable_grounds_decision" in result.output


def test_victim_update_refreshes_age_band_and_duplicate_index(team, session) -> None:
    from app.cases.schemas import VictimFields
    from app.crypto.models import BlindIndexEntry

    case = team.register(date_of_birth="1990-01-01")
    assert case.age_band == "adult"
    before = set(
        session.scalars(
            select(BlindIndexEntry.digest).where(BlindIndexEntry.victim_id == case.victim_id)
        )
    )
    patch = VictimFields.model_validate({"date_of_birth": "2012-02-02"})
    cases.update_victim(session, team.ctx, team.worker, case.id, patch, case.version)
    assert case.age_band == "child"
    after = set(
        session.scalars(
            select(BlindIndexEntry.digest).where(BlindIndexEntry.victim_id == case.victim_id)
        )
    )
    assert after and after.isdisjoint(before)
    # A change that feeds neither leaves both alone.
    cases.update_victim(
        session,
        team.ctx,
        team.worker,
        case.id,
        VictimFields.model_validate({"accommodation": "Foyer B"}),
        case.version,
    )
    assert (
        set(
            session.scalars(
                select(BlindIndexEntry.digest).where(BlindIndexEntry.victim_id == case.victim_id)
            )
        )
        == after
    )


def test_a_colliding_reference_is_retried_by_the_unique_constraint(team, monkeypatch) -> None:
    first = team.register()
    fresh = iter([first.reference, "PSG-0000-0001"])
    monkeypatch.setattr(cases, "new_reference", lambda: next(fresh))
    second = team.register()
    assert second.reference == "PSG-0000-0001"
    assert second.victim_id != first.victim_id
