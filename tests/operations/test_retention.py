"""Retention: a validated schedule, legal holds, and crypto-shredding of what has expired."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select, update

from app.audit.models import AuditEvent
from app.audit.service import verify_chains
from app.cases.models import Case, OutboxMessage
from app.config import REPO_ROOT
from app.crypto.models import BlindIndexEntry, DataKey
from app.operations import retention
from app.operations.erasure_journal import TOPIC, drain_outbox, read_journal
from app.policies.retention import (
    RESTING_STAGES,
    RetentionPolicyError,
    load_retention_policy,
)
from app.victims.models import Victim
from tests.operations.support import Registered, caseworker, register

SHIPPED = REPO_ROOT / "policies" / "retention.toml"
NOW = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)


def years_ago(n: float) -> datetime:
    return NOW - timedelta(days=round(365.25 * n))


# -- the policy file ---------------------------------------------------------------------------
def test_the_shipped_schedule_is_valid_and_covers_the_resting_stages() -> None:
    policy = load_retention_policy(SHIPPED)
    assert {r.stage for r in policy.rules} == set(RESTING_STAGES)
    assert set(policy.legal_hold.proceedings_status) >= {"investigation", "prosecution", "trial"}
    closed = {r.closure_reason for r in policy.rules if r.stage == "closed"}
    assert {"support_completed", "not_identified_no_reconsideration", "lost_contact"} <= closed


def test_rule_precedence() -> None:
    policy = load_retention_policy(SHIPPED)
    assert policy.rule_for("closed", "support_completed").name == "closed_support_completed"  # type: ignore[union-attr]
    assert policy.rule_for("closed", "deceased").name == "default"  # type: ignore[union-attr]
    assert policy.rule_for("closed", None).name == "default"  # type: ignore[union-attr]
    assert policy.rule_for("lost_contact", None).name == "lost_contact"  # type: ignore[union-attr]
    for open_stage in ("detected", "identified", "long_term_support", "missing_child"):
        assert policy.rule_for(open_stage, None) is None


BASE = SHIPPED.read_text()


@pytest.mark.parametrize(
    ("edit", "problem"),
    [
        (lambda t: t.replace("version = 1", "version = 2"), "version"),
        (lambda t: t + "\n[[rules]\n", "not valid TOML"),
        (
            lambda t: t.replace('stage = "lost_contact"', 'stage = "identified"'),
            "stage 'identified' is open work",
        ),
        (
            lambda t: t.replace('stage = "lost_contact"', 'stage = "lost"'),
            "unknown stage 'lost'",
        ),
        (
            lambda t: t.replace('closure_reason = "support_completed"', 'closure_reason = "bored"'),
            "unknown closure reason 'bored'",
        ),
        (
            lambda t: t.replace(
                '["investigation", "prosecution", "trial"]', '["investigation", "prosecution"]'
            ),
            "missing: trial",
        ),
        (
            lambda t: t.replace("compensation_claimed = true", "compensation_claimed = false"),
            "legal_hold.compensation_claimed",
        ),
        (
            lambda t: t.replace('name = "closed_transferred"', 'name = "closed_support_completed"'),
            "rule name 'closed_support_completed' is used twice",
        ),
        (
            lambda t: t.replace(
                'closure_reason = "transferred_to_other_country"',
                'closure_reason = "support_completed"',
            ),
            "two rules for stage 'closed' and closure reason 'support_completed'",
        ),
        (
            lambda t: t.replace("keep_years = 2\n", "keep_years = 0\n"),
            "keep_years or keep_days must be more than 0",
        ),
        (
            lambda t: t.replace('anchor = "last_contact_at"', 'anchor = "closed_at"'),
            "anchor closed_at is only set on closed cases",
        ),
        (lambda t: t.replace("keep_years = 6\n", 'keep_years = "6"\n', 1), "default.keep_years"),
        (lambda t: t + "\nsurprise = 1\n", "surprise"),
    ],
)
def test_a_bad_file_names_the_file_and_the_problem(tmp_path: Path, edit: Any, problem: str) -> None:
    path = tmp_path / "retention.toml"
    changed = edit(BASE)
    assert changed != BASE
    path.write_text(changed)
    with pytest.raises(RetentionPolicyError) as caught:
        load_retention_policy(path)
    assert str(path) in str(caught.value)
    assert problem in str(caught.value)


def test_a_missing_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(RetentionPolicyError, match=r"retention\.toml: cannot read"):
        load_retention_policy(tmp_path / "retention.toml")


def test_start_up_refuses_a_bad_retention_file(tmp_path: Path, settings) -> None:
    import shutil

    from app.context import build_context

    policies = tmp_path / "policies"
    shutil.copytree(REPO_ROOT / "policies", policies)
    (policies / "retention.toml").write_text(BASE.replace("version = 1", "version = 9"))
    with pytest.raises(RetentionPolicyError, match=r"retention\.toml"):
        build_context(settings.model_copy(update={"policies_dir": policies}))


# -- applying it -------------------------------------------------------------------------------
def _set(live, case_id: uuid.UUID, **values: Any) -> None:
    with live.session() as session, session.begin():
        session.execute(update(Case).where(Case.id == case_id).values(**values))


def _closed(live, r: Registered, reason: str | None, closed: datetime, **extra: Any) -> None:
    _set(
        live,
        r.case_id,
        stage="closed",
        closure_reason=reason,
        closed_at=closed,
        stage_entered_at=closed,
        **extra,
    )


def _holds_key(live, victim_id: uuid.UUID) -> bool:
    with live.session() as session:
        keys = session.scalar(select(func.count()).where(DataKey.victim_id == victim_id))
        index = session.scalar(select(func.count()).where(BlindIndexEntry.victim_id == victim_id))
        victim = session.get(Victim, victim_id)
    assert victim is not None
    if keys:
        assert victim.erased_at is None
    return bool(keys or index)


@pytest.fixture
def schedule(live):
    """Cases with backdated closures: who expires, who is kept, who is held."""
    actor = caseworker(live)
    r: dict[str, Registered] = {}
    for name in (
        "support_done_7y",
        "support_done_5y",
        "not_identified_4y",
        "trial_10y",
        "compensation_10y",
        "open_12y",
        "declined_3y",
        "declined_1y",
        "lost_contact_6y",
        "deceased_7y",
        "two_cases",
        "outcome_10y",
    ):
        r[name] = register(live, actor, name.replace("_", "").title())
    _closed(live, r["support_done_7y"], "support_completed", years_ago(7))
    _closed(live, r["support_done_5y"], "support_completed", years_ago(5))
    _closed(live, r["not_identified_4y"], "not_identified_no_reconsideration", years_ago(4))
    _closed(live, r["trial_10y"], "support_completed", years_ago(10), proceedings_status="trial")
    _closed(
        live, r["compensation_10y"], "support_completed", years_ago(10), compensation_claimed=True
    )
    _closed(
        live, r["outcome_10y"], "support_completed", years_ago(10), proceedings_status="outcome"
    )
    _set(live, r["open_12y"].case_id, stage="identified", stage_entered_at=years_ago(12))
    _set(
        live,
        r["declined_3y"].case_id,
        stage="declined_formal_identification",
        stage_entered_at=years_ago(3),
    )
    _set(
        live,
        r["declined_1y"].case_id,
        stage="declined_formal_identification",
        stage_entered_at=years_ago(1),
    )
    _set(
        live,
        r["lost_contact_6y"].case_id,
        stage="lost_contact",
        stage_entered_at=years_ago(6),
        last_contact_at=years_ago(6),
    )
    _closed(live, r["deceased_7y"], "deceased", years_ago(7))
    # One victim, two cases: the old one expired, the new one is open work.
    _closed(live, r["two_cases"], "support_completed", years_ago(9))
    with live.session() as session, session.begin():
        first = session.get(Case, r["two_cases"].case_id)
        assert first is not None
        session.add(
            Case(
                reference="PSG-TWO0-CASE",
                victim_id=first.victim_id,
                owning_agency_id=first.owning_agency_id,
                country_profile=first.country_profile,
                stage="long_term_support",
                detected_on=first.detected_on,
            )
        )
    return r


EXPIRED = {
    "support_done_7y": "closed_support_completed",
    "not_identified_4y": "closed_not_identified",
    "declined_3y": "declined_formal_identification",
    "lost_contact_6y": "lost_contact",
    "deceased_7y": "default",
    "outcome_10y": "closed_support_completed",
}
HELD = {"trial_10y", "compensation_10y"}


def _policy():
    return load_retention_policy(SHIPPED)


def test_dry_run_reports_by_rule_and_changes_nothing(live, schedule) -> None:
    with live.session() as session:
        keys_before = session.scalar(select(func.count()).select_from(DataKey))
        events_before = session.scalar(select(func.count()).select_from(AuditEvent))

    report = retention.apply(live.session, live.ctx, _policy(), now=NOW, dry_run=True)

    expected = dict.fromkeys(EXPIRED.values(), 0)
    for rule in EXPIRED.values():
        expected[rule] += 1
    assert dict(report.erased) == expected
    assert dict(report.retained) == {
        "closed_support_completed": 1,
        "declined_formal_identification": 1,
    }
    assert report.held == 2
    assert report.active == 2  # open_12y and the victim with an open second case
    assert report.erased_ids == []
    assert "would erase" in "\n".join(report.lines())
    with live.session() as session:
        assert session.scalar(select(func.count()).select_from(DataKey)) == keys_before
        assert session.scalar(select(func.count()).select_from(AuditEvent)) == events_before
        assert session.scalar(select(func.count()).where(OutboxMessage.topic == TOPIC)) == 0


def test_apply_shreds_what_expired_journals_it_and_never_touches_held_cases(
    live, schedule, tmp_path: Path
) -> None:
    report = retention.apply(live.session, live.ctx, _policy(), now=NOW)

    erased = {name for name, r in schedule.items() if r.victim_id in set(report.erased_ids)}
    assert erased == set(EXPIRED)
    assert sum(report.erased.values()) == len(EXPIRED) and report.held == 2
    for name, r in schedule.items():
        assert _holds_key(live, r.victim_id) is (name not in EXPIRED), name
    for name in HELD | {"open_12y", "two_cases", "support_done_5y", "declined_1y"}:
        assert _holds_key(live, schedule[name].victim_id), name

    with live.session() as session:
        # Same erasure path as a data subject's request: audited with the rule as legal basis.
        events = session.scalars(
            select(AuditEvent).where(
                AuditEvent.action == "victim_erased", AuditEvent.case_id.is_(None)
            )
        ).all()
        assert {e.victim_id for e in events} == {schedule[n].victim_id for n in EXPIRED}
        assert {e.details["reason_code"] for e in events} == {"retention_expired"}
        assert {e.details["legal_basis"] for e in events} == {
            f"retention_policy:{rule}" for rule in EXPIRED.values()
        }
        assert verify_chains(session).ok

    # Each erasure was journaled before it committed: nothing is left for the drain.
    journal = live.settings.erasure_journal
    assert journal is not None
    with live.session() as session, session.begin():
        assert drain_outbox(session, journal) == 0
    contents = read_journal(journal)
    assert contents.victim_ids() == {schedule[n].victim_id for n in EXPIRED}
    assert {e.reason_code for e in contents.entries} == {"retention_expired"}

    # Nothing is left to do, and the next run agrees.
    again = retention.apply(live.session, live.ctx, _policy(), now=NOW)
    assert sum(again.erased.values()) == 0 and again.held == 2


def test_a_hold_set_after_planning_still_protects_the_victim(live, schedule) -> None:
    policy = _policy()
    target = schedule["support_done_7y"]
    with live.session() as session:
        decisions = retention.plan(session, policy, NOW)
    assert any(d.victim_id == target.victim_id and d.status == "expired" for d in decisions)
    _set(live, target.case_id, proceedings_status="investigation")
    with live.session() as session, session.begin():
        decision = retention.erase_expired_victim(session, live.ctx, policy, target.victim_id, NOW)
    assert decision.status == "held"
    assert _holds_key(live, target.victim_id)


def test_expiry_is_the_anchor_plus_the_period_to_the_day(live) -> None:
    actor = caseworker(live)
    r = register(live, actor, "Boundary")
    closed = datetime(2020, 2, 29, 9, 0, tzinfo=UTC)  # a leap day
    _closed(live, r, "support_completed", closed)
    policy = _policy()
    with live.session() as session:
        (decision,) = [
            d for d in retention.plan(session, policy, NOW) if d.victim_id == r.victim_id
        ]
    assert decision.expires_at == datetime(2026, 2, 28, 9, 0, tzinfo=UTC)
    with live.session() as session:
        just_before = retention.plan(session, policy, datetime(2026, 2, 28, 8, 59, tzinfo=UTC))
    assert [d.status for d in just_before if d.victim_id == r.victim_id] == ["retained"]


def test_an_unwritable_journal_erases_nothing_and_says_so(live, schedule, tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("a file where the journal's directory should be\n")
    live.ctx.settings = live.settings.model_copy(
        update={"erasure_journal": blocker / "erasures.log"}
    )
    report = retention.apply(live.session, live.ctx, _policy(), now=NOW)
    assert report.not_journaled == len(EXPIRED) and sum(report.erased.values()) == 0
    assert any("NOT ERASED" in line for line in report.lines())
    for name in EXPIRED:
        assert _holds_key(live, schedule[name].victim_id), name
