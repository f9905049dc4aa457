"""Indicator values against hand-computed expectations on a small fixed timeline.

Six episodes, built through the real services with backdated clocks:

A  uk, adult. Detected Mon 30 Mar 2026, referred Thu 2 Apr (3 days: late, target 1 day).
   Positive RG Mon 13 Apr: 5 working days in England (Good Friday 3 Apr and Easter Monday
   6 Apr are bank holidays: 7, 8, 9, 10, 13 Apr), on target. Contact 23 h later. Positive
   identification 22 Jul: 100 days, after the 30-day minimum.
B  uk, adult. Detected Wed 1 Apr, referred Thu 2 Apr (1 day: on time). Positive RG Tue
   14 Apr: 6 working days, late. No support contact. No identification decision yet.
C  coe_default, age uncertain (a child). Referred the day of detection after a guardian
   request (no consent: exempt). Guardian 26 h after registration. Negative RG proposed
   Fri 8 May and confirmed by a second officer Mon 11 May (5 working days: on target).
   Reconsideration requested 20 May by the guardian, not decided yet.
D  coe_default, adult. Referred Mon 1 Jun, no RG decision yet (target 8 Jun passed).
E  coe_default, adult. Declined formal identification on 10 Jun.
F  coe_default, adult. Referred Mon 2 Feb, positive RG Tue 3 Feb (1 working day), contact
   exactly 48 h later (on time). Identified 20 Feb, 17 days after RG: before the 30-day
   minimum, which this profile allows. Returned 1 Apr, 30 days after the return was
   planned, with every safeguard recorded. One follow-up contact 19 days after return.

"Now" is fixed at 20 Nov 2026 12:00 UTC.
"""

from __future__ import annotations

import uuid
from datetime import date

import pytest
from sqlalchemy import select, update

from app.audit import service as audit
from app.cases.models import Case
from app.cases.workflow import Event
from app.reporting.indicators import drill_down, funnel, indicators, make_filters, percentile
from app.reporting.models import open_deadlines
from app.reporting.store import execute, refresh
from tests.reporting.conftest import Scene, at

NOW = at("2026-11-20 12:00")


def build(scene: Scene) -> dict[str, Case]:
    s = scene
    a = s.register("2026-03-31 09:00", detected="2026-03-30", profile="uk")
    s.fire(s.worker, a, Event.record_screening, "2026-04-01 10:00")
    s.fire(s.worker, a, Event.refer, "2026-04-02 10:00")
    s.fire(s.sca, a, Event.accept_referral, "2026-04-02 14:00")
    s.fire(s.sca, a, Event.positive_reasonable_grounds, "2026-04-13 10:00", reason="r")
    s.note(a, "contact", "2026-04-14 09:00")
    s.fire(s.sca, a, Event.start_identification, "2026-04-20 10:00")
    s.fire(s.sca, a, Event.positive_identification, "2026-07-22 10:00", reason="r")

    b = s.register("2026-04-01 12:00", detected="2026-04-01", profile="uk")
    s.fire(s.worker, b, Event.record_screening, "2026-04-01 13:00")
    s.fire(s.worker, b, Event.refer, "2026-04-02 09:00")
    s.fire(s.sca, b, Event.accept_referral, "2026-04-02 11:00")
    s.fire(s.sca, b, Event.positive_reasonable_grounds, "2026-04-14 09:00", reason="r")
    s.fire(s.sca, b, Event.start_identification, "2026-04-20 10:00")

    c = s.register(
        "2026-05-04 08:00",
        detected="2026-05-04",
        consent=False,
        date_of_birth=None,
        estimated_age=16,
        age_uncertain=True,
    )
    s.assess(c, "guardian_request", "2026-05-04 08:10")
    s.fire(s.worker, c, Event.record_screening, "2026-05-04 09:00")
    s.fire(s.worker, c, Event.refer, "2026-05-04 15:00")
    s.assign_guardian(c, "2026-05-05 10:00")
    s.fire(s.officer, c, Event.accept_referral, "2026-05-05 11:00")
    s.fire(s.officer, c, Event.propose_negative_decision, "2026-05-08 10:00", reason="r")
    s.fire(s.officer2, c, Event.negative_reasonable_grounds, "2026-05-11 10:00", reason="r")
    s.fire(s.guardian, c, Event.request_reconsideration, "2026-05-20 10:00", reason="new")

    d = s.register("2026-06-01 09:00", detected="2026-06-01")
    s.fire(s.worker, d, Event.record_screening, "2026-06-01 10:00")
    s.fire(s.worker, d, Event.refer, "2026-06-01 11:00")
    s.fire(s.officer, d, Event.accept_referral, "2026-06-01 12:00")

    e = s.register("2026-06-10 09:00", detected="2026-06-10", consent=False)
    s.fire(s.worker, e, Event.record_screening, "2026-06-10 10:00")
    s.fire(s.worker, e, Event.decline_formal_identification, "2026-06-10 11:00")

    f = s.register("2026-02-02 09:00", detected="2026-02-02")
    s.fire(s.worker, f, Event.record_screening, "2026-02-02 09:30")
    s.fire(s.worker, f, Event.refer, "2026-02-02 10:00")
    s.fire(s.officer, f, Event.accept_referral, "2026-02-02 10:30")
    s.fire(s.officer, f, Event.positive_reasonable_grounds, "2026-02-03 10:00", reason="r")
    s.fire(s.officer, f, Event.start_identification, "2026-02-04 10:00")
    s.note(f, "contact", "2026-02-05 10:00")
    s.fire(s.officer, f, Event.positive_identification, "2026-02-20 10:00", reason="r")
    s.consent(f, "return_preparation", "2026-03-01 10:00")
    s.fire(s.worker, f, Event.plan_return, "2026-03-02 10:00")
    s.assess(f, "pre_return_risk", "2026-03-10 10:00")
    s.assess(f, "receiving_organisation", "2026-03-12 10:00")
    s.consent(f, "data_sharing_transnational", "2026-03-13 10:00")
    s.share(f, s.focal_agency, "2026-03-14 10:00")
    s.fire(s.focal, f, Event.confirm_return_handover, "2026-04-01 10:00")
    s.note(f, "contact", "2026-04-20 10:00", actor=s.focal)
    return {"A": a, "B": b, "C": c, "D": d, "E": e, "F": f}


def values(body: dict, key: str) -> dict:
    return next(b["values"] for b in body["indicators"] if b["id"] == key)


@pytest.fixture
def built(scene: Scene) -> dict[str, Case]:
    return build(scene)


def test_percentile_is_percentile_cont() -> None:
    assert percentile({1: 1, 2: 1, 3: 1, 4: 1}, 0.5) == 2.5
    assert percentile({0: 3, 1: 1, 3: 1}, 0.9) == 2.2
    assert percentile({}, 0.5) is None
    assert percentile({7: 1}, 0.9) == 7


def test_every_indicator_matches_the_hand_computed_timeline(scene, built, session, ctx) -> None:
    body = indicators(session, ctx, make_filters(ctx), now=NOW)
    assert body["population"] == {"episodes": 6, "re_opened_after_re_trafficking": 0}

    assert values(body, "detection_to_referral") == {
        "referred": 5,
        "median_days": 0.0,  # 3, 1, 0, 0, 0
        "p90_days": 2.2,
        "on_time": 4,
        "on_time_pct": 80.0,
        "late": 1,
        "pending": 0,  # E declined: not awaiting referral
        "declined": 1,
    }
    assert values(body, "referral_to_reasonable_grounds") == {
        "decided": 4,
        "positive": 3,
        "negative": 1,
        "median_working_days": 5.0,  # 1, 5, 5, 6 (Easter bank holidays skipped)
        "p90_working_days": 5.7,
        "on_target": 3,
        "on_target_pct": 75.0,
        "late": 1,
        "pending": 1,
        "pending_past_target": 1,
    }
    assert values(body, "rg_to_first_support_contact") == {
        "reflection_started": 3,
        "contacted": 2,
        "median_hours": 35.5,  # 23 and 48
        "p90_hours": 45.5,
        "on_time": 2,
        "on_time_pct": 66.7,  # B has no contact and its 48 hours are long past
        "late": 0,
        "no_contact_past_target": 1,
    }
    assert values(body, "reflection_compliance") == {
        "started": 3,
        "running": 0,
        "granted_in_full": 2,  # A decided after the minimum, B not decided
        "cut_short": 1,  # F identified on day 17
        "granted_in_full_pct": 66.7,
        "enforcement_events": 0,
        "episodes_with_enforcement": 0,
    }
    assert values(body, "rg_to_identification") == {
        "decided": 2,
        "positive": 2,
        "negative": 0,
        "median_days": 58.5,  # 100 and 17
        "p90_days": 91.7,
        "over_90_pct": 50.0,
        "over_180_pct": 0.0,
        "over_365_pct": 0.0,
        "before_minimum": 1,
        "before_minimum_where_forbidden": 0,  # coe_default does not gate identification
        "pending": 1,  # B: no decision, excluded from the durations
        "pending_over_90": 1,
        "pending_over_180": 1,
        "pending_over_365": 0,
    }
    assert values(body, "assistance_conditionality") == {"events": 0}
    assert values(body, "children") == {
        "registered_as_child": 1,
        "registered_age_unknown": 0,
        "guardians_assigned": 1,
        "median_hours_to_guardian": 26.0,
        "p90_hours_to_guardian": 26.0,
        "within_24h_pct": 0.0,
        "awaiting_guardian": 0,
        "not_adult_referred": 1,
        "treated_as_children_pct": 100.0,
        "missing_child_reports": 0,
        "episodes_with_missing_child": 0,
        "still_missing": 0,
    }
    assert values(body, "consent_completeness") == {
        "referrals": 5,
        "with_referral_consent": 4,
        "child_exemptions": 1,
        "complete_pct": 100.0,
        "missing": 0,
        "returns": 1,
        "returns_with_data_transfer_consent_pct": 100.0,
        "withdrawals": 0,
    }
    assert values(body, "reconsideration") == {
        "negative_decisions": 1,
        "second_reviewed_pct": 100.0,
        "episodes_with_negative": 1,
        "requested": 1,
        "request_rate_pct": 100.0,
        "within_window_pct": 100.0,
        "upheld": 0,
        "overturned": 0,
        "overturn_rate_pct": None,
        "pending": 1,
    }
    assert values(body, "return") == {
        "requested": 1,
        "completed": 1,
        "cancelled": 0,
        "median_days_request_to_departure": 30.0,
        "p90_days_request_to_departure": 30.0,
        "risk_assessed_pct": 100.0,
        "voluntary_pct": 100.0,
        "receiving_organisation_pct": 100.0,
        "child_returns_without_best_interests": 0,
    }
    assert values(body, "post_return") == {
        "reintegration_started": 0,
        "follow_up": {
            "day_30": {"due": 1, "reached": 1, "reached_pct": 100.0},
            "day_90": {"due": 1, "reached": 0, "reached_pct": 0.0},
            "day_180": {"due": 1, "reached": 0, "reached_pct": 0.0},
        },
        "re_trafficking_reports": 0,
        "re_trafficking_rate_pct": 0.0,
    }
    assert values(body, "presumed_vs_identified") == {
        "presumed": 6,
        "identified": 2,
        "identified_per_presumed": 0.333,
        "with_a_negative_decision": 1,
    }


def test_periods_on_the_detection_and_the_event_basis(built, session, ctx) -> None:
    by_detection = indicators(session, ctx, make_filters(ctx, period="2026-Q2"), now=NOW)
    assert by_detection["population"]["episodes"] == 4  # B, C, D, E (A was detected 30 Mar)
    by_event = indicators(session, ctx, make_filters(ctx, period="2026-Q2", basis="event"), now=NOW)
    rg = values(by_event, "referral_to_reasonable_grounds")
    assert (rg["decided"], rg["on_target"]) == (3, 2)  # A 13 Apr, B 14 Apr (late), C 11 May
    assert values(by_event, "detection_to_referral")["referred"] == 4  # A, B, C, D
    grouped = indicators(session, ctx, make_filters(ctx), group_by="country_profile", now=NOW)
    assert [(g["key"], g["episodes"], g["small"]) for g in grouped["groups"]] == [
        ("coe_default", 4, True),
        ("uk", 2, True),
    ]
    uk = make_filters(ctx, country_profile="uk", sex="female", nationality="sn")
    assert indicators(session, ctx, uk, now=NOW)["population"]["episodes"] == 2


def test_drill_down_lists_the_references_behind_a_figure(built, session, ctx) -> None:
    late = drill_down(session, ctx, make_filters(ctx), indicator="rg_late", now=NOW)
    assert [i["reference"] for i in late["items"]] == [built["B"].reference]
    pending = drill_down(session, ctx, make_filters(ctx), indicator="rg_pending", now=NOW)
    assert [i["reference"] for i in pending["items"]] == [built["D"].reference]
    assert set(pending["items"][0]) == {
        "case_id", "reference", "episode", "stage", "country_profile", "owning_agency_id",
        "age_band", "detected_on", "referred_at", "rg_decided_at", "id_decided_at",
    }  # fmt: skip


def test_overdue_drill_down_pages_through_the_cases_with_a_deadline_past(
    built, session, ctx
) -> None:
    everything = make_filters(ctx)
    first = drill_down(session, ctx, everything, overdue_kind="any", limit=1, now=NOW)
    # Checked against the open deadlines themselves, not the shortcut the list uses (the
    # earliest due date kept on the current episode).
    D = open_deadlines.c
    expected = set(execute(session, select(D.case_id).where(D.due_at < NOW)).scalars())
    assert built["D"].id in expected  # its reasonable-grounds decision was due on 8 June
    assert first["total"] == len(expected) >= 2 and len(first["items"]) == 1
    whole = drill_down(session, ctx, everything, overdue_kind="any", now=NOW)
    assert {uuid.UUID(i["case_id"]) for i in whole["items"]} == expected
    assert whole["items"][0] == first["items"][0]  # same order, page by page
    beyond = drill_down(session, ctx, everything, overdue_kind="any", offset=50, now=NOW)
    assert beyond["items"] == [] and beyond["total"] == len(expected)
    rg = drill_down(session, ctx, everything, overdue_kind="reasonable_grounds_decision", now=NOW)
    assert [i["reference"] for i in rg["items"]] == [built["D"].reference]
    assert rg["total"] == 1
    # Before any deadline fell due, nothing is overdue.
    early = drill_down(session, ctx, everything, overdue_kind="any", now=at("2026-01-01 12:00"))
    assert early == {**early, "total": 0, "items": []}


def test_funnel_counts_reached_steps_and_current_stages(built, session, ctx) -> None:
    body = funnel(session, ctx, make_filters(ctx), now=NOW)
    reached = {r["step"]: r["episodes"] for r in body["reached"]}
    assert reached["episodes"] == 6 and reached["referred"] == 5 and reached["identified"] == 2
    assert reached["returned"] == 1
    current = {r["stage"]: r["cases"] for r in body["current_stage"] if r["cases"]}
    assert current == {
        "identified": 1,
        "identification_pending": 1,
        "reconsideration": 1,
        "reasonable_grounds_pending": 1,
        "declined_formal_identification": 1,
        "returned_handed_over": 1,
    }


def test_figures_come_from_the_timeline_and_refresh_incrementally(
    scene, built, session, ctx
) -> None:
    indicators(session, ctx, make_filters(ctx), now=NOW)
    assert refresh(session, ctx).cases == 0  # nothing changed since
    # The case row's milestone cache is overwritten; the figures do not move.
    session.execute(
        update(Case).where(Case.id == built["A"].id).values(referred_at=at("2026-03-30 08:00"))
    )
    refresh(session, ctx, full=True)
    body = indicators(session, ctx, make_filters(ctx), now=NOW)
    assert values(body, "detection_to_referral")["late"] == 1
    # Reserved actions are counted: an enforcement measure during B's reflection period and
    # an assistance suspension. Only the two changed cases are rebuilt.
    audit.record(
        session,
        scene.officer,
        "enforcement_event",
        case_id=built["B"].id,
        details={"measure": "removal_order"},
        occurred_at=at("2026-04-20 10:00"),
    )
    audit.record(session, scene.worker, "assistance_suspended", case_id=built["D"].id)
    assert refresh(session, ctx).cases == 2
    body = indicators(session, ctx, make_filters(ctx), now=NOW)
    assert values(body, "reflection_compliance")["enforcement_events"] == 1
    assert values(body, "assistance_conditionality") == {"events": 1}


def test_filters_refuse_unknown_values(ctx) -> None:
    from app.errors import InvalidInput

    for bad in ({"sex": "x"}, {"period": "2026-Q5"}, {"exploitation_form": "%"}, {"basis": "y"}):
        with pytest.raises(InvalidInput):
            make_filters(ctx, **bad)
    f = make_filters(ctx, period="2026-Q4")
    assert (f.date_from, f.date_to) == (date(2026, 10, 1), date(2027, 1, 1))


def test_break_glass_events_and_their_review_are_counted(scene, built, session, ctx) -> None:
    from datetime import timedelta

    from app.auth import break_glass
    from app.auth.break_glass import BreakGlassGrant

    grants = []
    for case in (built["C"], built["D"]):  # two emergency openings, both in June
        when = at("2026-06-15 22:00")
        grant = BreakGlassGrant(
            user_id=scene.officer.user_id,
            case_id=case.id,
            reason_code="missing_child",
            granted_at=when,
            expires_at=when + timedelta(minutes=60),
        )
        session.add(grant)
        audit.record(
            session,
            scene.officer,
            "break_glass",
            case_id=case.id,
            details={"minutes": 60},
            occurred_at=when,
        )
        grants.append(grant)
    session.flush()
    access = values(indicators(session, ctx, make_filters(ctx), now=NOW), "access")
    assert access["break_glass_events"] == 2
    assert (access["grants_awaiting_review"], access["grants_found_unjustified"]) == (2, 0)
    break_glass.review(session, ctx, scene.coordinator, grants[0].id, "unjustified")
    access = values(indicators(session, ctx, make_filters(ctx), now=NOW), "access")
    assert (access["grants_awaiting_review"], access["grants_found_unjustified"]) == (1, 1)
    # The event count follows the period filter: none in the first quarter.
    q1 = values(indicators(session, ctx, make_filters(ctx, period="2026-Q1"), now=NOW), "access")
    assert q1["break_glass_events"] == 0
