"""What each role receives is exactly what policies/field_visibility.toml gives it, per stage."""

from __future__ import annotations

import uuid

import pytest
from sqlalchemy import update

from app.authz.policy import STAGES
from app.cases.models import Case
from tests.builders import registration
from tests.integration.test_access_matrix import ROLE_AGENCY


@pytest.fixture
def full_case(world, api, session):
    owner_agency = world.agency("ngo")
    owner = api(world.user("ngo_caseworker", owner_agency))
    payload = registration(
        aliases=["Lodie"],
        email="e@example.org",
        current_location="Paris",
        disability="hearing",
        gender_identity="woman",
        documents=[{"type": "passport", "number": "A1", "issuing_country": "SN"}],
    )
    payload["case"].update(
        {
            "needs_assessment": "housing",
            "support_plan": "plan",
            "exploitation_acts": ["recruitment"],
            "exploitation_form_details": "d",
            "countries_of_recruitment": ["SN"],
            "exploitation_start": "2025-01-01",
            "exploitation_end": "2025-06-01",
        }
    )
    case = owner.post("/api/v1/cases", json=payload).json()
    return owner_agency, case


def test_each_role_sees_exactly_its_visible_fields_at_every_stage(
    world, api, session, ctx, full_case
) -> None:
    owner_agency, case = full_case
    case_id = uuid.UUID(case["id"])
    clients = {}
    for role, agency_type in ROLE_AGENCY.items():
        agency = (
            owner_agency if role in ("ngo_caseworker", "guardian") else world.agency(agency_type)
        )
        user = world.user(role, agency)
        if role == "guardian":
            session.execute(update(Case).where(Case.id == case_id).values(guardian_user_id=user.id))
        elif role not in ("ngo_caseworker", "coordinator", "admin"):
            from app.cases.models import CaseParticipant

            session.add(
                CaseParticipant(
                    case_id=case_id,
                    agency_id=agency.id,
                    access_role="x",
                    purpose="p",
                    granted_by=user.id,
                )
            )
        clients[role] = api(user)
    session.flush()
    checked = 0
    for stage in STAGES:
        session.execute(update(Case).where(Case.id == case_id).values(stage=stage))
        session.flush()
        for role, client in clients.items():
            response = client.get(f"/api/v1/cases/{case_id}")
            if role == "admin":
                assert response.status_code == 404
                continue
            assert response.status_code == 200, (role, stage, response.text)
            body = response.json()
            victim_allowed = ctx.policy.visible_fields(role, stage, "victims")
            case_allowed = ctx.policy.visible_fields(role, stage, "cases")
            assert set(body["victim"]) == set(victim_allowed), (role, stage)
            assert set(body["details"]) == set(case_allowed), (role, stage)
            checked += 1
    assert checked == len(STAGES) * (len(clients) - 1)


def test_policy_examples_from_the_mandates(ctx) -> None:
    police = ctx.policy.visible_fields("police_officer", "reasonable_grounds_pending", "victims")
    assert {"given_name", "family_name", "date_of_birth"} <= police
    assert not {"health_notes", "accommodation", "current_address"} & police
    social = ctx.policy.visible_groups("social_worker", "long_term_support")
    assert {"health", "accommodation", "needs"} <= social and "statements" not in social
    assert ctx.policy.visible_groups("coordinator", "identified") == frozenset()
    assert ctx.policy.visible_groups("admin", "identified") == frozenset()
