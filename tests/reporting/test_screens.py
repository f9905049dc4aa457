"""Coordinator screens: filters in the URL, htmx fragments, SVG charts, audit actions."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select

from app.audit.models import AuditEvent
from app.auth.break_glass import BreakGlassGrant
from app.db.base import utcnow
from tests.reporting.test_indicators import build


def test_dashboard_keeps_filters_in_the_url_and_draws_svg(scene, api) -> None:
    built = build(scene)
    coordinator = api(scene.coordinator_user)
    page = coordinator.get("/coordinator/dashboard", params={"country_profile": "uk"})
    assert page.status_code == 200, page.text[:500]
    html = page.text
    assert (
        "<svg" in html
        and 'class="funnel-bar"' in html
        and "<script" not in html.split("</head>")[1]
    )
    assert 'value="uk" selected' in html  # the filter form shows the state of the URL
    # the late reasonable-grounds decision links to the cases behind it, filters kept
    assert "/coordinator/cases?country_profile=uk&amp;indicator=rg_late" in html
    fragment = coordinator.get(
        "/coordinator/dashboard", params={"period": "2026-Q2"}, headers={"HX-Request": "true"}
    )
    assert fragment.status_code == 200
    assert fragment.text.lstrip().startswith('<div id="report-body">')
    listing = coordinator.get(
        "/coordinator/cases", params={"country_profile": "uk", "indicator": "rg_late"}
    )
    assert built["B"].reference in listing.text and built["A"].reference not in listing.text
    assert f"/cases/{built['B'].id}/timeline" in listing.text


def test_overdue_statistics_and_bad_filters(scene, api) -> None:
    build(scene)
    coordinator = api(scene.coordinator_user)
    overdue = coordinator.get("/coordinator/overdue")
    assert overdue.status_code == 200 and scene.ngo_agency.name in overdue.text
    stats = coordinator.get("/coordinator/statistics", params={"group_by": "country_profile"})
    assert stats.status_code == 200
    assert "coe_default" in stats.text and "/api/v1/reporting/exports/ctdc_records" in stats.text
    bad = coordinator.get("/coordinator/dashboard", params={"period": "26-Q9"})
    assert bad.status_code == 422 and "<html" in bad.text  # an HTML error page, not JSON


def test_other_roles_do_not_see_the_screens(scene, api) -> None:
    worker = api(scene.worker_user)
    for path in ("/coordinator/dashboard", "/coordinator/statistics", "/coordinator/audit"):
        assert worker.get(path).status_code == 404, path


def test_audit_screen_verifies_and_reviews_break_glass(scene, api, session) -> None:
    case = scene.register("2026-10-01 09:00", detected="2026-10-01")
    grant = BreakGlassGrant(
        user_id=scene.officer.user_id,
        case_id=case.id,
        reason_code="missing_child",
        granted_at=utcnow(),
        expires_at=utcnow() + timedelta(minutes=60),
    )
    session.add(grant)
    session.flush()
    coordinator = api(scene.coordinator_user)
    page = coordinator.get("/coordinator/audit")
    assert case.reference in page.text and "missing child" in page.text
    verified = coordinator.post(
        "/coordinator/audit/verify",
        data={"reference": case.reference},
        headers={"HX-Request": "true"},
    )
    assert verified.status_code == 200 and "All chains verify" in verified.text
    reviewed = coordinator.post(
        f"/coordinator/audit/break-glass/{grant.id}/review",
        data={"outcome": "justified"},
        follow_redirects=False,
    )
    assert reviewed.status_code == 303
    session.refresh(grant)
    assert grant.review_outcome == "justified" and grant.reviewed_by == scene.coordinator.user_id
    log = coordinator.get("/coordinator/audit", params={"reference": case.reference})
    assert "case_shared" in log.text or "Shared" in log.text or "shared" in log.text.lower()
    actions = set(session.scalars(select(AuditEvent.action)))
    assert {"audit_verified", "break_glass_reviewed"} <= actions
