"""Each role reaches its own screens; every other screen answers 404 (never a hint)."""

from __future__ import annotations

import uuid

import pytest
from sqlalchemy import select

from app.audit.models import AuditEvent
from app.cases.models import Case
from tests.builders import registration
from tests.web.pages import assert_accessible_page

AGENCY_OF = {
    "ngo_caseworker": "ngo",
    "police_officer": "police",
    "social_worker": "social_services",
    "prosecutor": "prosecutor",
    "guardian": "social_services",
    "coordinator": "coordinator_office",
    "focal_point": "coordinator_office",
    "admin": "coordinator_office",
}
SCREENS = ("/cases", "/cases/new", "/inbox", "/coordinator", "/admin/users", "/admin/agencies")
ALLOWED = {
    "ngo_caseworker": {"/cases", "/cases/new"},
    "police_officer": {"/cases", "/cases/new", "/inbox"},
    "social_worker": {"/cases", "/cases/new"},
    "prosecutor": {"/cases"},
    "guardian": {"/cases"},
    "coordinator": {"/cases", "/coordinator"},
    "focal_point": {"/cases"},
    "admin": {"/admin/users", "/admin/agencies"},
}
HOME = {
    "ngo_caseworker": "/cases",
    "police_officer": "/inbox",
    "social_worker": "/cases",
    "prosecutor": "/cases",
    "guardian": "/cases",
    "coordinator": "/coordinator",
    "focal_point": "/cases",
    "admin": "/admin/users",
}


@pytest.mark.parametrize("role", sorted(AGENCY_OF))
def test_each_role_gets_its_screens_and_404_elsewhere(role, world, web) -> None:
    me = web(world.user(role, world.agency(AGENCY_OF[role])))
    assert me.get("/").headers["location"] == HOME[role]
    for screen in SCREENS:
        response = me.get(screen)
        if screen in ALLOWED[role]:
            assert response.status_code == 200, (role, screen)
            assert_accessible_page(response.text)
        else:
            assert response.status_code == 404, (role, screen)
            assert response.headers["content-type"].startswith("text/html")
            assert "Page not found" in response.text
    assert me.get("/account/password").status_code == 200


def test_guardian_list_is_titled_for_their_children(world, web) -> None:
    page = web(world.user("guardian", world.agency("social_services"))).get("/cases")
    assert "My child cases" in page.text
    assert "Register a presumed victim" not in page.text


def test_case_page_shows_each_role_only_its_field_groups(world, web, api, session) -> None:
    ngo, police, social = (
        world.agency("ngo"),
        world.agency("police"),
        world.agency("social_services"),
    )
    worker = world.user("ngo_caseworker", ngo)
    created = api(worker).post("/api/v1/cases", json=registration()).json()
    for agency, role in ((police, "police_officer"), (social, "social_worker")):
        shared = api(worker).post(
            f"/api/v1/cases/{created['id']}/participants",
            json={"agency_id": str(agency.id), "access_role": role, "purpose": "assistance"},
        )
        assert shared.status_code == 201
    url = f"/cases/{created['id']}"

    def groups(role: str, agency) -> set[str]:
        page = web(world.user(role, agency)).get(url)
        assert page.status_code == 200
        assert_accessible_page(page.text)
        return {
            g
            for g in (
                "identity",
                "documents",
                "contact",
                "location",
                "accommodation",
                "vulnerability",
                "health",
                "exploitation",
                "detection",
                "needs",
                "statements",
            )
            if f'id="group-{g}"' in page.text
        }

    assert groups("ngo_caseworker", ngo) >= {"identity", "contact", "health", "accommodation"}
    assert "statements" not in groups("ngo_caseworker", ngo)
    police_groups = groups("police_officer", police)
    assert {"identity", "exploitation", "statements"} <= police_groups
    assert not police_groups & {"health", "accommodation", "contact", "location"}
    social_groups = groups("social_worker", social)
    assert {"accommodation", "health"} <= social_groups
    assert not social_groups & {"exploitation", "statements", "documents"}
    assert groups("coordinator", world.agency("coordinator_office")) == set()


def test_a_case_out_of_scope_is_a_404_page_and_the_refusal_is_audited(
    world, web, api, session
) -> None:
    owner = world.user("ngo_caseworker", world.agency("ngo"))
    created = api(owner).post("/api/v1/cases", json=registration()).json()
    stranger = web(world.user("ngo_caseworker", world.agency("ngo")))
    for url in (
        f"/cases/{created['id']}",
        f"/cases/{created['id']}/timeline",
        f"/cases/{created['id']}/notes",
        f"/cases/{created['id']}/registered",
    ):
        response = stranger.get(url)
        assert response.status_code == 404, url
        assert created["reference"] not in response.text
    denied = session.scalars(
        select(AuditEvent).where(
            AuditEvent.action == "access_denied", AuditEvent.actor_user_id == stranger.user.id
        )
    ).all()
    assert len(denied) >= 1
    missing = stranger.get("/cases/01234567-89ab-7def-8123-456789abcdef")
    malformed = stranger.get("/cases/not-a-uuid")
    assert missing.status_code == malformed.status_code == 404
    assert session.get(Case, uuid.UUID(created["id"])) is not None
