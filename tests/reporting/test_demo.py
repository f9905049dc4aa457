"""Demo data: both paths build genuine timelines whose audit chains verify."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from app.audit.models import AuditEvent
from app.audit.service import verify_chains
from app.auth.models import User
from app.auth.passwords import verify_password
from app.cases.models import STAGES, Case
from app.demo import DEMO_PASSWORD, USERS, DemoAlreadyLoaded, load_demo_data


def test_small_demo_covers_every_stage_and_its_chains_verify(session, ctx) -> None:
    summary = load_demo_data(session, ctx, cases=50, seed=7)
    assert "WARNING" not in summary
    stages = set(session.scalars(select(Case.stage).distinct()))
    assert stages == set(STAGES)
    assert session.scalar(select(func.count()).select_from(Case)) == 50
    report = verify_chains(session)
    assert report.ok, report.broken[:3]
    # every login of the summary exists and opens with the one demo password
    for spec in USERS:
        assert spec.username in summary
    user = session.scalars(select(User).where(User.username == "coordinator.marc")).one()
    assert verify_password(DEMO_PASSWORD, user.password_hash)[0]
    hashes = set(
        session.scalars(
            select(User.password_hash).where(User.username.in_([u.username for u in USERS]))
        )
    )
    assert len(hashes) == 1  # hashed once, reused
    with pytest.raises(DemoAlreadyLoaded):
        load_demo_data(session, ctx, cases=1, seed=7)


def test_bulk_demo_chains_verify(session, ctx) -> None:
    summary = load_demo_data(session, ctx, cases=300, seed=11, bulk=True, batch_size=128)
    assert "300 fictional cases" in summary
    assert session.scalar(select(func.count()).select_from(Case)) == 300
    events = session.scalar(select(func.count()).select_from(AuditEvent))
    assert events > 300 * 8
    report = verify_chains(session)
    assert report.ok, report.broken[:3]


def _timeline(session, case_id) -> list[tuple]:
    from app.audit.service import case_timeline

    out = []
    for e in case_timeline(session, case_id):
        details = dict(e.details)
        if "reason_note_id" in details:
            details["reason_note_id"] = details["reason_note_id"] is not None
        # The bulk path's lighter variant seals fewer fields at registration (documented).
        fields = () if e.action == "case_registered" else tuple(e.fields)
        out.append((e.action, e.actor_role, e.occurred_at, fields, details))
    return out


_COMPARED = (
    "stage", "previous_stage", "stage_entered_at", "version", "age_band", "sex", "nationality",
    "exploitation_forms", "detecting_org_type", "detected_on", "region", "indicator_count",
    "episode_started_at", "guardian_requested_at", "guardian_assigned_at",
    "best_interests_assessed_at", "support_plan_at", "pre_return_risk_assessed_at",
    "receiving_organisation_confirmed_at", "reintegration_plan_at", "guardian_cosigned_at",
    "stage_before_return", "negative_decision_proposed_in", "closure_reason", "referred_at",
    "reasonable_grounds_at", "first_support_contact_at", "identification_decided_at",
    "identification_positive", "not_identified_at", "returned_at", "last_contact_at",
    "closed_at", "residence_permit_status", "residence_permit_valid_from",
    "residence_permit_valid_until", "proceedings_status", "created_at",
)  # fmt: skip


def test_bulk_path_writes_what_the_services_write(session, ctx) -> None:
    """The same stories, once through the services and once in bulk, give equal timelines,
    equal case rows (plain columns) and equal reporting rows."""
    from app.db.base import utcnow
    from app.demo import _load_bulk, _load_with_services, create_directory, write_stories
    from app.reporting.store import refresh

    now = utcnow()
    directory = create_directory(session, ctx, now)
    served = _load_with_services(session, ctx, directory, write_stories(40, 5, now))
    bulk = _load_bulk(session, ctx, directory, write_stories(40, 5, now), 5, 16)
    assert served.refused_steps == 0
    assert len(served.case_ids) == len(bulk.case_ids) == 40
    for a_id, b_id in zip(served.case_ids, bulk.case_ids, strict=True):
        assert _timeline(session, a_id) == _timeline(session, b_id)
        a, b = session.get(Case, a_id), session.get(Case, b_id)
        for column in _COMPARED:
            assert getattr(a, column) == getattr(b, column), column
        assert (a.guardian_user_id is None) == (b.guardian_user_id is None)
    refresh(session, ctx)
    from sqlalchemy import select as sql_select

    from app.reporting.models import episodes
    from app.reporting.store import execute

    def rows(case_id):
        found = execute(
            session, sql_select(episodes).where(episodes.c.case_id == case_id)
        ).mappings()
        return [{k: v for k, v in r.items() if k not in ("case_id", "reference")} for r in found]

    for a_id, b_id in zip(served.case_ids, bulk.case_ids, strict=True):
        assert rows(a_id) == rows(b_id)
