"""Every route that takes an id, for every role, against another agency's object.

Out of scope answers 404 (identical to a missing id) and leaves an `access_denied` audit
event. A route that takes an id and is missing from MATRIX fails this test: new endpoints
cannot escape the check.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Any

import pytest
from sqlalchemy import select

from app.audit.models import AuditEvent
from app.cases.models import CaseParticipant, Consent
from tests.builders import registration

ROLE_AGENCY = {
    "ngo_caseworker": "ngo",
    "police_officer": "police",
    "social_worker": "social_services",
    "prosecutor": "prosecutor",
    "guardian": "ngo",
    "coordinator": "coordinator_office",
    "focal_point": "coordinator_office",
    "admin": "coordinator_office",
}
NATIONAL = {"coordinator"}
ANY_REFUSAL = {401, 403, 404, 409, 422, 428}


@dataclass(frozen=True)
class Entry:
    body: dict[str, Any] | None = None
    headers: dict[str, str] = field(default_factory=dict)
    # "scoped": out-of-scope roles get 404 + access_denied; national roles may read.
    # "privileged": a deliberate cross-scope path behind its own permission and checks.
    kind: str = "scoped"
    # Roles for whom a privileged path succeeds by design (e.g. the administrator erases).
    allowed: frozenset[str] = frozenset()


IF_MATCH = {"If-Match": '"1"'}
MATRIX: dict[tuple[str, str], Entry] = {
    ("GET", "/api/v1/cases/{case_id}"): Entry(),
    ("PATCH", "/api/v1/cases/{case_id}"): Entry({"detection_place": "x"}, IF_MATCH),
    ("PATCH", "/api/v1/cases/{case_id}/victim"): Entry({"given_name": "x"}, IF_MATCH),
    ("GET", "/api/v1/cases/{case_id}/duplicates"): Entry(),
    ("POST", "/api/v1/cases/{case_id}/participants"): Entry(
        {"agency_id": "{own_agency}", "access_role": "support", "purpose": "p"}
    ),
    ("DELETE", "/api/v1/cases/{case_id}/participants/{participant_id}"): Entry(),
    ("POST", "/api/v1/cases/{case_id}/consents"): Entry(
        {"purpose": "referral", "scope": ["identity"], "given_on": "2026-10-01"}
    ),
    ("POST", "/api/v1/cases/{case_id}/consents/{consent_id}/withdrawal"): Entry(),
    ("POST", "/api/v1/cases/{case_id}/notes"): Entry({"kind": "note", "body": "x"}),
    ("POST", "/api/v1/cases/{case_id}/break-glass"): Entry(
        {
            "reason_code": "safeguarding",
            "justification": "j",
            "password": "wrong password, no access",
        },
        kind="privileged",
    ),
    ("POST", "/api/v1/victims/{victim_id}/erasure"): Entry(
        {"legal_basis": "b", "reason_code": "r"}, kind="privileged", allowed=frozenset({"admin"})
    ),
    ("GET", "/api/v1/cases/{case_id}/transitions"): Entry(),
    ("POST", "/api/v1/cases/{case_id}/transitions"): Entry({"event": "record_screening"}, IF_MATCH),
    ("GET", "/api/v1/cases/{case_id}/timeline"): Entry(),
    ("GET", "/api/v1/cases/{case_id}/deadlines"): Entry(),
    ("POST", "/api/v1/cases/{case_id}/assessments"): Entry(
        {"kind": "support_plan", "body": "b"}, IF_MATCH
    ),
    ("POST", "/api/v1/cases/{case_id}/guardian"): Entry(
        {"guardian_user_id": "{own_user}"}, IF_MATCH
    ),
    ("POST", "/api/v1/cases/{case_id}/tracks/{track}"): Entry({"event": "apply"}, IF_MATCH),
}


def _id_routes(app) -> set[tuple[str, str]]:
    out = set()
    for route in app.routes:
        path = getattr(route, "path", "")
        if "{" not in path or path.startswith("/static"):
            continue
        for method in getattr(route, "methods", set()) - {"HEAD", "OPTIONS"}:
            out.add((method, path))
    return out


def test_every_id_route_is_in_the_matrix(app) -> None:
    missing = sorted(_id_routes(app) - set(MATRIX))
    assert not missing, f"add these routes to the access matrix: {missing}"


@pytest.fixture
def foreign(world, api, session):
    owner_agency = world.agency("ngo")
    owner = api(world.user("ngo_caseworker", owner_agency))
    case = owner.post("/api/v1/cases", json=registration()).json()
    other = world.agency("ngo")
    share = owner.post(
        f"/api/v1/cases/{case['id']}/participants",
        json={"agency_id": str(other.id), "access_role": "support", "purpose": "p"},
    )
    assert share.status_code == 201
    consent = owner.post(
        f"/api/v1/cases/{case['id']}/consents",
        json={"purpose": "referral", "scope": ["identity"], "given_on": "2026-10-01"},
    )
    assert consent.status_code == 201
    session.flush()
    return {
        "case_id": case["id"],
        "victim_id": case["victim_id"],
        "participant_id": str(session.scalars(select(CaseParticipant.id)).first()),
        "consent_id": str(session.scalars(select(Consent.id)).first()),
        "track": "residence_permit",
    }


def _fill(value: Any, ids: dict[str, str]) -> Any:
    if isinstance(value, str):
        for key, replacement in ids.items():
            value = value.replace("{" + key + "}", replacement)
        return value
    if isinstance(value, dict):
        return {k: _fill(v, ids) for k, v in value.items()}
    if isinstance(value, list):
        return [_fill(v, ids) for v in value]
    return value


@pytest.mark.parametrize("role", sorted(ROLE_AGENCY))
def test_foreign_objects_answer_404_and_are_audited(role, world, api, session, foreign) -> None:
    agency = world.agency(ROLE_AGENCY[role])
    user = world.user(role, agency)
    client = api(user)
    ids = {**foreign, "own_agency": str(agency.id), "own_user": str(user.id)}
    case_text = None
    for (method, path), entry in sorted(MATRIX.items()):
        url = _fill(path, ids)
        body = _fill(entry.body, ids) if entry.body is not None else None
        response = client.request(method, url, json=body, headers=entry.headers)
        where = f"{role} {method} {path}"
        assert response.status_code != 500, where
        if entry.kind == "privileged":
            expected = {200} if role in entry.allowed else {403, 404, 422}
            assert response.status_code in expected, (where, response.status_code, response.text)
            continue
        if role in NATIONAL:
            if method == "GET":
                # National scope: reads are pseudonymised (or refused by permission).
                assert response.status_code in {200, 403}, (where, response.text)
                if path == "/api/v1/cases/{case_id}":
                    assert response.status_code == 200
                    case_text = response.text
            else:
                assert response.status_code in ANY_REFUSAL, (where, response.status_code)
            continue
        assert response.status_code == 404, (where, response.status_code, response.text)
        assert response.json() == {"error": {"code": "not_found", "message": "Not found"}}, where
    if role in NATIONAL:
        assert case_text is not None and "lodie" not in case_text  # pseudonymised only
        return
    denied = session.scalars(
        select(AuditEvent).where(
            AuditEvent.action == "access_denied", AuditEvent.actor_user_id == user.id
        )
    ).all()
    assert len(denied) >= sum(1 for e in MATRIX.values() if e.kind == "scoped"), len(denied)
    assert {e.entity_id for e in denied} == {uuid.UUID(foreign["case_id"])}


def test_a_missing_id_looks_exactly_like_a_foreign_one(world, api, foreign) -> None:
    client = api(world.user("ngo_caseworker", world.agency("ngo")))
    missing = client.get(f"/api/v1/cases/{uuid.uuid4()}")
    other = client.get(f"/api/v1/cases/{foreign['case_id']}")
    assert missing.status_code == other.status_code == 404
    assert missing.content == other.content
