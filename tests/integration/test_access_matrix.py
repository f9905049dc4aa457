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
from fastapi.routing import iter_route_contexts
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
    # Screens post forms, not JSON.
    form: dict[str, str] | None = None
    params: dict[str, str] | None = None


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
    # Screens (HTML): the same scope rule, the same 404 as a missing id.
    ("GET", "/cases/{case_id}"): Entry(),
    ("GET", "/cases/{case_id}/timeline"): Entry(),
    ("GET", "/cases/{case_id}/notes"): Entry(),
    ("GET", "/cases/{case_id}/registered"): Entry(),
    ("GET", "/cases/{case_id}/masked/{group}"): Entry(),
    ("POST", "/cases/{case_id}/reveal"): Entry(form={"group": "identity", "purpose": "p"}),
    ("POST", "/cases/{case_id}/transition"): Entry(form={"event": "record_screening"}),
    ("POST", "/cases/{case_id}/referrals"): Entry(form={"agency_id": "{own_agency}"}),
    ("POST", "/cases/{case_id}/referrals/{participant_id}/revoke"): Entry(form={}),
    ("POST", "/cases/{case_id}/notes"): Entry(form={"kind": "note", "body": "x"}),
    ("POST", "/cases/{case_id}/assessments"): Entry(form={"kind": "support_plan", "body": "b"}),
    ("POST", "/cases/{case_id}/guardian"): Entry(form={"guardian_user_id": "{own_user}"}),
    ("POST", "/cases/{case_id}/accommodation"): Entry(form={"shelter_name": "x"}),
    ("POST", "/cases/{case_id}/consents"): Entry(form={"purpose": "referral"}),
    ("POST", "/cases/{case_id}/consents/{consent_id}/withdraw"): Entry(form={}),
    ("POST", "/cases/{case_id}/tracks/{track}"): Entry(form={"event": "apply"}),
    # Transnational, per case: scoped like every case route.
    ("GET", "/api/v1/transnational/cases/{case_id}/classification"): Entry(),
    ("POST", "/api/v1/transnational/cases/{case_id}/classification"): Entry(
        {"classification": "smuggling", "reason_code": "new_evidence"}, IF_MATCH
    ),
    ("GET", "/api/v1/transnational/cases/{case_id}/package-preview"): Entry(
        params={"partner_id": "{nobody}", "purpose": "return_preparation"}
    ),
    ("GET", "/transnational/cases/{case_id}/send"): Entry(
        params={"partner_id": "{nobody}", "purpose": "return_preparation"}
    ),
    ("POST", "/transnational/cases/{case_id}/send"): Entry(
        form={"partner_id": "{nobody}", "purpose": "return_preparation"}
    ),
    ("POST", "/api/v1/transnational/cases/{case_id}/referrals"): Entry(
        {"partner_id": "{nobody}", "purpose": "return_preparation"}
    ),
}

# Routes on objects that belong to the instance, not to an agency (partner instances, exchanges
# with them, evidence, users, agencies, break-glass grants): gated by role permission. Every
# role gets a refusal or "not found" for an unknown id, never a success and never a 500.
INSTANCE_ROUTES: dict[tuple[str, str], Entry] = {
    ("GET", "/api/v1/reporting/cases/{case_id}/timeline"): Entry(kind="national"),
    # The administrator is the security officer: access logs, never case content.
    ("GET", "/api/v1/reporting/audit/cases/{case_id}/access-log"): Entry(
        kind="national", allowed=frozenset({"admin"})
    ),
    ("GET", "/api/v1/reporting/exports/{kind}"): Entry(kind="national"),
    ("POST", "/api/v1/reporting/audit/break-glass/{grant_id}/review"): Entry(
        {"outcome": "justified", "comment": "c"}
    ),
    ("POST", "/coordinator/audit/break-glass/{grant_id}/review"): Entry(form={"outcome": "x"}),
    ("POST", "/admin/users/{user_id}/deactivate"): Entry(form={}),
    ("POST", "/admin/users/{user_id}/reset-totp"): Entry(form={}),
    ("POST", "/admin/agencies/{agency_id}/deactivate"): Entry(form={}),
    ("GET", "/api/v1/transnational/partners/{partner_id}"): Entry(),
    ("PATCH", "/api/v1/transnational/partners/{partner_id}"): Entry({"institution": "x"}),
    ("POST", "/api/v1/transnational/partners/{partner_id}/keys"): Entry({"public_key_pem": "x"}),
    ("POST", "/api/v1/transnational/partners/{partner_id}/keys/fetch"): Entry({}),
    ("POST", "/api/v1/transnational/partners/{partner_id}/keys/{kid}/status"): Entry(
        {"status": "retired"}
    ),
    ("GET", "/api/v1/transnational/evidence/{evidence_id}"): Entry(),
    ("GET", "/transnational/exchanges/{exchange_id}"): Entry(),
    ("GET", "/api/v1/transnational/exchanges/{exchange_id}"): Entry(),
    ("GET", "/api/v1/transnational/exchanges/{exchange_id}/package"): Entry(),
    ("GET", "/api/v1/transnational/exchanges/{exchange_id}/attachments/{attachment_id}"): Entry(),
    **{
        ("POST", f"/api/v1/transnational/exchanges/{{exchange_id}}/{step}"): Entry({})
        for step in (
            "accept",
            "arrival",
            "follow-ups",
            "handover",
            "logistics",
            "re-trafficking",
            "receiving-organisation/confirm",
            "reintegration",
            "reject",
            "risk-assessment",
            "risk-assessment/finalise",
            "status",
        )
    },
}


def _id_routes(app) -> set[tuple[str, str]]:
    # FastAPI >= 0.16x keeps included routers nested; iter_route_contexts flattens them.
    out = set()
    for route in iter_route_contexts(app.routes):
        path = route.path
        if "{" not in path or path.startswith("/static"):
            continue
        for method in getattr(route, "methods", set()) - {"HEAD", "OPTIONS"}:
            out.add((method, path))
    return out


def test_every_id_route_is_in_the_matrix(app) -> None:
    assert len(_id_routes(app)) >= len(MATRIX) // 2, "the route walker found too few routes"
    missing = sorted(_id_routes(app) - set(MATRIX) - set(INSTANCE_ROUTES))
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
        "group": "identity",
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


def _denials(session, user_id: uuid.UUID, case_id: str) -> int:  # type: ignore[no-untyped-def]
    return len(
        session.scalars(
            select(AuditEvent.id).where(
                AuditEvent.action == "access_denied",
                AuditEvent.actor_user_id == user_id,
                AuditEvent.entity_id == uuid.UUID(case_id),
            )
        ).all()
    )


def _send(client, method: str, url: str, entry: Entry, ids: dict[str, str]):  # type: ignore[no-untyped-def]
    params = _fill(entry.params, ids) if entry.params else None
    if entry.form is not None:
        data = _fill(entry.form, ids)
        return client.request(method, url, data=data, params=params, headers=entry.headers)
    body = _fill(entry.body, ids) if entry.body is not None else None
    return client.request(method, url, json=body, params=params, headers=entry.headers)


@pytest.mark.parametrize("role", sorted(ROLE_AGENCY))
def test_foreign_objects_answer_404_and_are_audited(role, world, api, session, foreign) -> None:
    agency = world.agency(ROLE_AGENCY[role])
    user = world.user(role, agency)
    client = api(user)
    ids = {
        **foreign,
        "own_agency": str(agency.id),
        "own_user": str(user.id),
        "nobody": str(uuid.uuid4()),
    }
    case_text = None
    denials_so_far = _denials(session, user.id, foreign["case_id"])
    for (method, path), entry in sorted(MATRIX.items()):
        url = _fill(path, ids)
        response = _send(client, method, url, entry, ids)
        where = f"{role} {method} {path}"
        assert response.status_code != 500, where
        if entry.kind == "privileged":
            expected = {200} if role in entry.allowed else {403, 404, 422}
            assert response.status_code in expected, (where, response.status_code, response.text)
            continue
        if role in NATIONAL:
            if method == "GET":
                # National scope: reads are pseudonymised (or refused by permission; a
                # masked group the role may never see does not exist for it).
                assert response.status_code in {200, 403, 404}, (where, response.text)
                if path == "/api/v1/cases/{case_id}":
                    assert response.status_code == 200
                    case_text = response.text
            else:
                assert response.status_code in ANY_REFUSAL, (where, response.status_code)
            continue
        assert response.status_code == 404, (where, response.status_code, response.text)
        assert _denials(session, user.id, foreign["case_id"]) > denials_so_far, f"{where}: no audit"
        denials_so_far = _denials(session, user.id, foreign["case_id"])
        if path.startswith("/api/"):
            assert response.json() == {"error": {"code": "not_found", "message": "Not found"}}
        # Identical to a missing id: nothing tells a foreign case from no case.
        if "If-Match" in entry.headers:
            # Without the precondition: the same answer as for a missing id (no version leaks).
            bare = Entry(entry.body, {}, entry.kind, entry.allowed, entry.form, entry.params)
            nowhere = _fill(path, {**ids, "case_id": str(uuid.uuid4())})
            foreign_answer = _send(client, method, url, bare, ids)
            missing_answer = _send(client, method, nowhere, bare, ids)
            assert foreign_answer.status_code == missing_answer.status_code, where
            assert foreign_answer.content == missing_answer.content, where
        # (Pages echo their own path in the language form, so ids are blanked to compare.)
        other_id = str(uuid.uuid4())
        missing = _send(client, method, _fill(path, {**ids, "case_id": other_id}), entry, ids)
        assert missing.status_code == 404, where
        same = missing.text.replace(other_id, "ID") == response.text.replace(ids["case_id"], "ID")
        assert same, where
    if role in NATIONAL:
        assert case_text is not None and "lodie" not in case_text  # pseudonymised only
        return
    denied = session.scalars(
        select(AuditEvent).where(
            AuditEvent.action == "access_denied", AuditEvent.actor_user_id == user.id
        )
    ).all()
    # Every scoped route left a denial on the foreign case (the missing-id probes add their own).
    on_foreign = [e for e in denied if e.entity_id == uuid.UUID(foreign["case_id"])]
    assert len(on_foreign) >= sum(1 for e in MATRIX.values() if e.kind == "scoped")


def test_a_missing_id_looks_exactly_like_a_foreign_one(world, api, foreign) -> None:
    client = api(world.user("ngo_caseworker", world.agency("ngo")))
    missing = client.get(f"/api/v1/cases/{uuid.uuid4()}")
    other = client.get(f"/api/v1/cases/{foreign['case_id']}")
    assert missing.status_code == other.status_code == 404
    assert missing.content == other.content


@pytest.mark.parametrize("role", sorted(ROLE_AGENCY))
def test_instance_objects_never_answer_success_for_an_unknown_id(role, world, api, foreign) -> None:
    client = api(world.user(role, world.agency(ROLE_AGENCY[role])))
    unknown = {
        **{k: str(uuid.uuid4()) for k in ("grant_id", "user_id", "agency_id", "partner_id")},
        **{k: str(uuid.uuid4()) for k in ("evidence_id", "exchange_id", "attachment_id")},
        "kid": "unknown-kid",
        "kind": "nrm_quarterly",
        "case_id": foreign["case_id"],
        "nobody": str(uuid.uuid4()),
    }
    for (method, path), entry in sorted(INSTANCE_ROUTES.items()):
        response = _send(client, method, _fill(path, unknown), entry, unknown)
        where = (role, method, path, response.status_code)
        assert response.status_code != 500, where
        if (entry.kind == "national" and role in NATIONAL) or role in entry.allowed:
            # The coordinator's national, pseudonymised view: allowed, never identifying.
            assert response.status_code in {200, 404}, where
            assert "lodie" not in response.text, where
        else:
            assert response.status_code in ANY_REFUSAL | {400}, where
