"""The reporting and audit API: permissions, state in the URL, audit of exports and reviews,
and a canary sweep proving no personal value reaches any coordinator route or export."""

from __future__ import annotations

import json
import logging
from datetime import timedelta

from fastapi.routing import RouteContext, iter_route_contexts
from sqlalchemy import select

from app.audit import service as audit
from app.audit.models import AuditEvent
from app.auth.break_glass import BreakGlassGrant
from app.cases import service as cases
from app.cases.schemas import NoteIn, RegistrationIn
from app.cases.workflow import Event
from app.db.base import utcnow
from app.reporting.indicators import GROUP_DIMENSIONS
from app.reporting.screens import DRILL
from tests.builders import registration
from tests.reporting.conftest import Scene

CANARIES = {
    "given_name": "Zyxqvanarygiven",
    "family_name": "Wqplcanaryfamily",
    "alias": "Qjxcanaryalias",
    "gender_identity": "Canarygenderidentity",
    "current_location": "Canaryvillelocation",
    "phone": "+33 6 00 11 22 33",
    "email": "canary.mail@example.test",
    "current_address": "CanaryStreet 4242 Nowhereville",
    "accommodation": "CanaryShelter Bluebird",
    "health_notes": "CanaryHealth asthma note",
    "document": "CANARYDOC998877",
    "statement": "CanaryStatement recruited via cousin",
    "detection_place": "CanaryPlace backyard",
    "note": "CanaryNote body text",
    "reason": "CanaryReason decision text",
}


def canary_case(scene: Scene, session, ctx):
    payload = registration(
        given_name=CANARIES["given_name"],
        family_name=CANARIES["family_name"],
        aliases=[CANARIES["alias"]],
        gender_identity=CANARIES["gender_identity"],
        current_location=CANARIES["current_location"],
        phone=CANARIES["phone"],
        email=CANARIES["email"],
        current_address=CANARIES["current_address"],
        accommodation=CANARIES["accommodation"],
        health_notes=CANARIES["health_notes"],
        documents=[{"type": "passport", "number": CANARIES["document"], "issuing_country": "SN"}],
    )
    payload["case"]["statement_summary"] = CANARIES["statement"]
    payload["case"]["detection_place"] = CANARIES["detection_place"]
    payload["consents"] = [{"purpose": "referral", "scope": ["identity"], "given_on": "2026-10-01"}]
    case = cases.register(session, ctx, scene.worker, RegistrationIn.model_validate(payload))
    for agency in (scene.police_agency,):
        cases.refer(
            session, ctx, scene.worker, case.id,
            cases.ReferralIn(agency_id=agency.id, access_role="decider", purpose="decision"),
        )  # fmt: skip
    now = utcnow() - timedelta(days=3)
    for actor, event in (
        (scene.worker, Event.record_screening),
        (scene.worker, Event.refer),
        (scene.officer, Event.accept_referral),
        (scene.officer, Event.positive_reasonable_grounds),
    ):
        scene.fire(actor, case, event, now.strftime("%Y-%m-%d %H:%M"), reason=CANARIES["reason"])
    cases.add_note(
        session, ctx, scene.worker, case.id, NoteIn(kind="contact", body=CANARIES["note"])
    )
    cases.reveal(session, ctx, scene.worker, case.id, ["given_name"], "case_work")
    return case


def test_only_coordinators_read_statistics(scene, api) -> None:
    coordinator = api(scene.coordinator_user)
    assert coordinator.get("/api/v1/reporting/indicators").status_code == 200
    worker = api(scene.worker_user)
    for path in (
        "/api/v1/reporting/indicators",
        "/api/v1/reporting/funnel",
        "/api/v1/reporting/overdue",
        "/api/v1/reporting/cases",
        "/api/v1/reporting/exports/nrm_quarterly",
    ):
        response = worker.get(path)
        assert response.status_code == 403, path
    assert worker.get("/api/v1/reporting/audit/break-glass").status_code == 403


def test_filters_live_in_the_query_and_bad_ones_are_refused(scene, api) -> None:
    coordinator = api(scene.coordinator_user)
    ok = coordinator.get(
        "/api/v1/reporting/indicators",
        params={"period": "2026-Q2", "basis": "event", "sex": "female", "group_by": "sex"},
    )
    assert ok.status_code == 200
    assert ok.json()["filters"] == {"period": "2026-Q2", "basis": "event", "sex": "female"}
    for params in ({"period": "2026-13"}, {"sex": "x"}, {"group_by": "name"}, {"from": "x"}):
        assert coordinator.get("/api/v1/reporting/indicators", params=params).status_code == 422


def test_exports_are_attachments_and_audited(scene, api, session) -> None:
    coordinator = api(scene.coordinator_user)
    response = coordinator.get(
        "/api/v1/reporting/exports/eurostat", params={"format": "csv", "k": 6}
    )
    assert response.status_code == 200
    assert response.headers["content-disposition"].startswith("attachment; filename=")
    assert response.headers["cache-control"] == "no-store"
    event = session.scalars(
        select(AuditEvent).where(AuditEvent.action == "statistics_exported")
    ).one()
    assert event.details["kind"] == "eurostat" and event.details["k"] == 6
    assert (
        coordinator.get("/api/v1/reporting/exports/ctdc_records", params={"k": 2}).status_code
        == 422
    )


def test_break_glass_queue_and_review(scene, api, session) -> None:
    case = scene.register("2026-10-01 09:00", detected="2026-10-01")
    grant = BreakGlassGrant(
        user_id=scene.officer.user_id,
        case_id=case.id,
        reason_code="safeguarding",
        granted_at=utcnow(),
        expires_at=utcnow() + timedelta(minutes=60),
    )
    session.add(grant)
    session.flush()
    coordinator = api(scene.coordinator_user)
    queue = coordinator.get("/api/v1/reporting/audit/break-glass").json()["grants"]
    assert [g["grant_id"] for g in queue] == [str(grant.id)]
    assert queue[0]["case_reference"] == case.reference
    reviewed = coordinator.post(
        f"/api/v1/reporting/audit/break-glass/{grant.id}/review", json={"outcome": "unjustified"}
    )
    assert reviewed.status_code == 200 and reviewed.json()["review_outcome"] == "unjustified"
    assert coordinator.get("/api/v1/reporting/audit/break-glass").json()["grants"] == []
    again = coordinator.post(
        f"/api/v1/reporting/audit/break-glass/{grant.id}/review", json={"outcome": "justified"}
    )
    assert again.status_code == 409
    assert session.scalars(
        select(AuditEvent).where(AuditEvent.action == "break_glass_reviewed")
    ).one().details == {"outcome": "unjustified"}


def test_verify_and_access_log(scene, api, session, ctx) -> None:
    case = canary_case(scene, session, ctx)
    coordinator = api(scene.coordinator_user)
    verified = coordinator.post("/api/v1/reporting/audit/verify", json={"case_id": str(case.id)})
    assert verified.status_code == 200
    assert verified.json()["ok"] is True and verified.json()["chains"] == 1
    log = coordinator.get(f"/api/v1/reporting/audit/cases/{case.id}/access-log").json()
    actions = [e["action"] for e in log["events"]]
    assert "fields_revealed" in actions and "case_shared" in actions
    assert "transition" not in actions


def _path_for(route: RouteContext, ids: dict[str, str]) -> list[str]:
    path: str = route.path
    variants = [path]
    if "{kind}" in path:
        variants = [
            path.replace("{kind}", k) for k in ("nrm_quarterly", "eurostat", "ctdc_records")
        ]
    out = []
    for variant in variants:
        for name, value in ids.items():
            variant = variant.replace("{" + name + "}", value)
        assert "{" not in variant, variant
        out.append(variant)
    return out


def test_no_personal_value_reaches_any_coordinator_route_or_export(
    scene, api, app, session, ctx, caplog
) -> None:
    case = canary_case(scene, session, ctx)
    grant = BreakGlassGrant(
        user_id=scene.officer.user_id,
        case_id=case.id,
        reason_code="safeguarding",
        granted_at=utcnow(),
        expires_at=utcnow() + timedelta(minutes=60),
    )
    session.add(grant)
    audit.record(session, scene.officer, "break_glass", case_id=case.id, details={"minutes": 60})
    session.flush()
    coordinator = api(scene.coordinator_user)
    ids = {"case_id": str(case.id), "grant_id": str(grant.id)}
    # FastAPI 0.165 keeps included routers nested: app.routes alone lists none of them.
    routes = [
        r
        for r in iter_route_contexts(app.routes)
        if r.path.startswith(("/api/v1/reporting", "/coordinator"))
    ]
    assert routes
    bodies: list[str] = []
    caplog.set_level(logging.DEBUG)
    for route in routes:
        methods = route.methods or {"GET"}
        for path in _path_for(route, ids):
            if "GET" in methods:
                variants = [{}]
                if path.endswith(("/indicators", "/cases", "/funnel", "/overdue", "/trend")):
                    variants += [{"group_by": "nationality"}, {"indicator": "rg_on_time"}]
                if path.endswith("/cases"):  # every drill-down list, and the overdue ones
                    variants += [{"indicator": name} for name in DRILL.values()]
                    variants += [{"overdue": "any"}]
                if path.endswith(("/indicators", "/statistics")):
                    variants += [{"group_by": name} for name in GROUP_DIMENSIONS]
                if path == "/coordinator/audit":  # the per-case access log screen
                    variants += [{"reference": case.reference}]
                if "/exports/" in path:
                    variants = [{"format": "csv"}, {"format": "json"}]
                for params in variants:
                    response = coordinator.get(path, params=params)
                    assert response.status_code < 500, (path, response.status_code)
                    bodies.append(response.text + json.dumps(dict(response.headers)))
            if "POST" in methods and path.startswith("/coordinator"):  # HTML forms
                form = {"outcome": "justified"} if path.endswith("/review") else {}
                if path.endswith("/verify"):
                    form = {"reference": case.reference}
                response = coordinator.post(path, data=form, follow_redirects=True)
                assert response.status_code < 500, (path, response.status_code)
                bodies.append(response.text)
            elif "POST" in methods:
                body = {"outcome": "justified"} if path.endswith("/review") else {}
                if path.endswith("/verify"):
                    body = {"case_id": str(case.id)}
                response = coordinator.post(path, json=body)
                assert response.status_code < 500, (path, response.status_code)
                bodies.append(response.text)
    assert len(bodies) > 60
    everything = "\n".join(bodies) + caplog.text
    assert case.reference in everything  # the pseudonymous reference is what they see
    for name, value in CANARIES.items():
        assert value.casefold() not in everything.casefold(), name
