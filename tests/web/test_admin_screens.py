"""Administration: agencies and accounts, audited, and never any case content."""

from __future__ import annotations

import re

from sqlalchemy import select

from app.agencies.models import Agency
from app.audit.models import AuditEvent
from app.auth.models import User
from tests.builders import registration
from tests.conftest import PASSWORD
from tests.web.conftest import new_client


def _admin(world, web):
    office = world.agency("coordinator_office")
    return web(world.user("admin", office)), office


def test_admin_creates_an_agency_and_a_user_and_errors_keep_the_form(world, web, session) -> None:
    admin, _ = _admin(world, web)
    bad = admin.post(
        "/admin/agencies", {"name": "A", "type": "ngo", "country": "QQ", "region": "Nord"}
    )
    assert bad.status_code == 422
    assert "Choose a valid country." in bad.text and 'value="Nord"' in bad.text
    created = admin.post(
        "/admin/agencies", {"name": "Refuge Nord", "type": "ngo", "country": "FR", "region": "Nord"}
    )
    assert created.status_code == 303
    agency = session.scalars(select(Agency).where(Agency.name == "Refuge Nord")).one()
    again = admin.post("/admin/agencies", {"name": "Refuge Nord", "type": "ngo", "country": "FR"})
    assert again.status_code == 409 and "already exists" in again.text

    weak = admin.post(
        "/admin/users",
        {
            "username": "marie.d",
            "display_name": "Marie D",
            "role": "ngo_caseworker",
            "agency_id": str(agency.id),
            "password": "short",
        },
    )
    assert weak.status_code == 422
    assert 'value="marie.d"' in weak.text and 'value="Marie D"' in weak.text
    assert "use at least 12 characters" in weak.text and 'value="short"' not in weak.text
    wrong_agency = admin.post(
        "/admin/users",
        {
            "username": "marie.d",
            "display_name": "Marie D",
            "role": "police_officer",
            "agency_id": str(agency.id),
            "password": "a long enough passphrase",
        },
    )
    assert wrong_agency.status_code == 422
    assert "This role cannot belong to this type of agency." in wrong_agency.text
    made = admin.post(
        "/admin/users",
        {
            "username": "Marie.D",
            "display_name": "Marie D",
            "role": "ngo_caseworker",
            "agency_id": str(agency.id),
            "password": "a long enough passphrase",
        },
    )
    assert made.status_code == 303
    user = session.scalars(select(User).where(User.username == "marie.d")).one()
    assert user.role == "ngo_caseworker" and user.agency_id == agency.id
    login = new_client(admin.client.app).post(
        "/login", data={"username": "marie.d", "password": "a long enough passphrase"}
    )
    assert login.status_code == 303
    actions = set(
        session.scalars(select(AuditEvent.action).where(AuditEvent.actor_user_id == admin.user.id))
    )
    assert {"agency_created", "user_created"} <= actions


def test_deactivating_a_user_ends_their_sessions_and_resetting_totp_asks_to_enrol_again(
    world, web, session
) -> None:
    admin, _ = _admin(world, web)
    ngo = world.agency("ngo")
    worker_user = world.user("ngo_caseworker", ngo)
    worker = web(worker_user)
    officer = web(world.user("police_officer", world.agency("police")))
    assert worker.get("/cases").status_code == 200
    done = admin.post(f"/admin/users/{worker_user.id}/deactivate")
    assert done.status_code == 303
    assert worker.get("/cases").headers["location"] == "/login"
    relogin = new_client(worker.client.app).post(
        "/login", data={"username": worker_user.username, "password": PASSWORD}
    )
    assert relogin.status_code == 401
    assert officer.get("/inbox").status_code == 200
    assert admin.post(f"/admin/users/{officer.user.id}/reset-totp").status_code == 303
    assert officer.get("/inbox").headers["location"] == "/login"
    fresh = new_client(officer.client.app)
    fresh.post("/login", data={"username": officer.user.username, "password": PASSWORD})
    assert "Start the setup" in fresh.get("/mfa").text
    assert admin.post(f"/admin/users/{admin.user.id}/deactivate").status_code == 409


def test_deactivating_an_agency_ends_its_users_sessions(world, web, session) -> None:
    admin, _ = _admin(world, web)
    ngo = world.agency("ngo")
    worker = web(world.user("ngo_caseworker", ngo))
    assert admin.post(f"/admin/agencies/{ngo.id}/deactivate").status_code == 303
    assert worker.get("/cases").headers["location"] == "/login"
    session.refresh(ngo)
    assert ngo.is_active is False


def test_admin_screens_show_no_case_content(world, web, api) -> None:
    worker = world.user("ngo_caseworker", world.agency("ngo"))
    created = api(worker).post("/api/v1/cases", json=registration()).json()
    admin, _ = _admin(world, web)
    for url in ("/admin/users", "/admin/agencies"):
        text = admin.get(url).text
        assert created["reference"] not in text and "Élodie" not in text
        assert not re.search(r"/cases/[0-9a-f-]{36}", text)
    assert admin.get(f"/cases/{created['id']}").status_code == 404
