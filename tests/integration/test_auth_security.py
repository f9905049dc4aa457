"""Sessions, throttling, TOTP, CSRF, headers and break-glass, through the real API."""

from __future__ import annotations

import time
import uuid
from datetime import timedelta

import pyotp
from fastapi.testclient import TestClient
from sqlalchemy import select, update

from app.auth.break_glass import BreakGlassGrant, pending_reviews
from app.auth.models import User, UserSession
from app.auth.service import revoke_all_sessions
from app.cases.models import OutboxMessage
from app.db.base import utcnow
from tests.builders import registration
from tests.conftest import PASSWORD


def _login(app, username: str, password: str = PASSWORD, address: str = "testclient"):
    client = TestClient(app, base_url="https://testserver")
    return client, client.post(
        "/api/v1/auth/login", json={"username": username, "password": password}
    )


def test_cookie_is_host_prefixed_secure_httponly_strict_and_token_stored_only_as_hmac(
    world, api, session
) -> None:
    user = world.user("ngo_caseworker", world.agency("ngo"))
    session.flush()
    from app.main import create_app  # noqa: F401

    worker = api(user)
    cookie_header = [v for k, v in worker.client.cookies.jar._cookies.items()]
    assert cookie_header
    jar_cookie = next(iter(worker.client.cookies.jar))
    assert jar_cookie.name == "__Host-passage" and jar_cookie.secure and jar_cookie.path == "/"
    token = jar_cookie.value
    assert len(token) >= 43  # 256 bits, base64url
    stored = session.scalars(select(UserSession).where(UserSession.user_id == user.id)).all()
    assert stored and all(
        token.encode() != s.token_hmac and len(s.token_hmac) == 32 for s in stored
    )


def test_set_cookie_attributes(world, app, session) -> None:
    user = world.user("ngo_caseworker", world.agency("ngo"))
    session.flush()
    _, response = _login(app, user.username)
    header = response.headers["set-cookie"].lower()
    for part in ("__host-passage=", "secure", "httponly", "samesite=strict", "path=/"):
        assert part in header
    assert "domain=" not in header


def test_unknown_user_and_wrong_password_get_the_same_answer(world, app, session) -> None:
    user = world.user("ngo_caseworker", world.agency("ngo"))
    session.flush()
    _, wrong = _login(app, user.username, "not the password at all")
    _, unknown = _login(app, "nobody-" + uuid.uuid4().hex[:6], "not the password at all")
    assert wrong.status_code == unknown.status_code == 401
    assert wrong.json() == unknown.json()


def test_seventh_attempt_within_a_minute_is_throttled_then_locked(world, app, session) -> None:
    user = world.user("ngo_caseworker", world.agency("ngo"))
    session.flush()
    codes = [_login(app, user.username, "wrong password number x")[1].status_code for _ in range(6)]
    assert codes == [401] * 6
    _, seventh = _login(app, user.username, PASSWORD)  # even the right password, while locked
    assert seventh.status_code == 429
    assert int(seventh.headers["Retry-After"]) > 25 * 60


def test_logout_and_disable_revoke_at_once(world, api, session) -> None:
    user = world.user("ngo_caseworker", world.agency("ngo"))
    first, second = api(user), api(user)
    assert first.get("/api/v1/cases").status_code == 200
    assert first.post("/api/v1/auth/logout").status_code == 204
    stale = TestClient(first.client.app, base_url="https://testserver")
    assert first.get("/api/v1/cases").status_code == 401
    del stale
    assert second.get("/api/v1/cases").status_code == 200
    stored = session.get(User, user.id)
    stored.is_active = False
    revoke_all_sessions(session, stored)
    session.flush()
    assert second.get("/api/v1/cases").status_code == 401


def test_idle_and_absolute_timeouts(world, api, session) -> None:
    user = world.user("ngo_caseworker", world.agency("ngo"))
    client = api(user)
    assert client.get("/api/v1/cases").status_code == 200
    session.execute(
        update(UserSession)
        .where(UserSession.user_id == user.id)
        .values(last_seen_at=utcnow() - timedelta(minutes=16))
    )
    session.flush()
    assert client.get("/api/v1/cases").status_code == 401
    other = api(user)
    session.execute(
        update(UserSession)
        .where(UserSession.user_id == user.id, UserSession.revoked_at.is_(None))
        .values(absolute_expiry=utcnow() - timedelta(seconds=1))
    )
    session.flush()
    assert other.get("/api/v1/cases").status_code == 401


def test_mfa_roles_cannot_reach_cases_before_totp_and_codes_are_single_use(
    world, api, session
) -> None:
    officer = world.user("police_officer", world.agency("police"))
    pending = api(officer, complete_mfa=False)
    assert pending.mfa_required
    assert pending.get("/api/v1/cases").status_code == 401
    pending.complete_mfa()
    assert pending.get("/api/v1/cases").status_code == 200
    # Log in again: the code just used is refused (replay), a fresh step is accepted.
    again = api(officer, complete_mfa=False)
    used = pending.totp.now()
    replay = again.post("/api/v1/auth/totp/verify", json={"code": used})
    assert replay.status_code == 401
    assert again.get("/api/v1/cases").status_code == 401
    fresh = pending.totp.at(time.time() + 30)
    ok = again.post("/api/v1/auth/totp/verify", json={"code": fresh})
    assert ok.status_code == 200, ok.text
    # The session rotated: the pre-MFA token no longer works even with the new CSRF token.
    assert again.get("/api/v1/cases").status_code == 200


def test_csrf_missing_token_other_sessions_token_and_cross_site_origin(world, api, session) -> None:
    user = world.user("ngo_caseworker", world.agency("ngo"))
    me, other = api(user), api(world.user("ngo_caseworker", world.agency("ngo")))
    body = registration()
    missing = me.post("/api/v1/cases", json=body, headers={"X-CSRF-Token": ""})
    assert missing.status_code == 403 and missing.json()["error"]["code"] == "csrf_failed"
    foreign = me.post(
        "/api/v1/cases", json=body, headers={"X-CSRF-Token": other.client.headers["X-CSRF-Token"]}
    )
    assert foreign.status_code == 403
    cross = me.post("/api/v1/cases", json=body, headers={"Origin": "https://evil.example"})
    assert cross.status_code == 403
    cross_site = me.post("/api/v1/cases", json=body, headers={"Sec-Fetch-Site": "cross-site"})
    assert cross_site.status_code == 403
    # An opaque "null" origin counts only when the browser vouches for the site itself.
    opaque = me.post("/api/v1/cases", json=body, headers={"Origin": "null"})
    assert opaque.status_code == 403
    vouched = {"Origin": "null", "Sec-Fetch-Site": "same-origin"}
    assert me.post("/api/v1/cases", json=registration(), headers=vouched).status_code == 201
    assert me.post("/api/v1/cases", json=body).status_code == 201
    # GET never writes and needs no token.
    assert me.get("/api/v1/cases", headers={"X-CSRF-Token": ""}).status_code == 200


def test_security_headers_on_every_response(world, api, client) -> None:
    worker = api(world.user("ngo_caseworker", world.agency("ngo")))
    for response in (
        client.get("/healthz"),
        client.get("/api/v1/cases"),
        worker.get("/api/v1/cases"),
        client.get("/nope"),
    ):
        csp = response.headers["content-security-policy"]
        for directive in (
            "script-src 'self'",
            "object-src 'none'",
            "base-uri 'none'",
            "frame-ancestors 'none'",
        ):
            assert directive in csp
        assert "unsafe-inline" not in csp and "unsafe-eval" not in csp
        assert response.headers["strict-transport-security"].startswith("max-age=")
        assert response.headers["x-content-type-options"] == "nosniff"
        assert response.headers["referrer-policy"] == "no-referrer"
        assert response.headers["cache-control"] == "no-store"


def test_break_glass_grants_one_case_for_an_hour_and_queues_a_review(world, api, session) -> None:
    owner_ngo = world.agency("ngo")
    worker = api(world.user("ngo_caseworker", owner_ngo))
    case = worker.post("/api/v1/cases", json=registration()).json()
    police = world.agency("police")
    officer_user = world.user("police_officer", police)
    officer = api(officer_user)
    url = f"/api/v1/cases/{case['id']}"
    assert officer.get(url).status_code == 404
    body = {
        "reason_code": "imminent_risk_to_life",
        "justification": "caller reports threat tonight",
        "password": PASSWORD,
    }
    assert (
        officer.post(
            url + "/break-glass", json={**body, "password": "wrong password here"}
        ).status_code
        == 403
    )
    assert (
        officer.post(url + "/break-glass", json={**body, "reason_code": "curiosity"}).status_code
        == 422
    )
    next_code = pyotp.TOTP(officer.totp.secret).at(time.time() + 30)
    granted = officer.post(url + "/break-glass", json={**body, "totp_code": next_code})
    assert granted.status_code == 201, granted.text
    seen = officer.get(url)
    assert seen.status_code == 200
    assert "health_notes" not in seen.json()["victim"]  # still only what the role may see
    grant_id = uuid.UUID(granted.json()["grant_id"])
    assert any(g.id == grant_id for g in pending_reviews(session))
    alerts = session.scalars(
        select(OutboxMessage).where(OutboxMessage.topic == "alert.break_glass")
    ).all()
    assert any(a.payload["grant_id"] == str(grant_id) for a in alerts)
    assert "caller reports" not in str([a.payload for a in alerts])
    session.execute(
        update(BreakGlassGrant)
        .where(BreakGlassGrant.id == grant_id)
        .values(expires_at=utcnow() - timedelta(seconds=1))
    )
    session.flush()
    assert officer.get(url).status_code == 404


def test_machine_token_works_without_cookie_or_csrf_and_dies_with_the_account(
    world, api, app, session
) -> None:
    user = world.user("ngo_caseworker", world.agency("ngo"))
    worker = api(user)
    issued = worker.post("/api/v1/auth/token")
    assert issued.status_code == 200
    token = issued.json()["access_token"]
    assert issued.json()["expires_in"] <= 300
    machine = TestClient(app, base_url="https://testserver")
    headers = {"Authorization": f"Bearer {token}"}
    assert machine.get("/api/v1/cases", headers=headers).status_code == 200
    assert machine.post("/api/v1/cases", json=registration(), headers=headers).status_code == 201
    tampered = token[:-4] + ("AAAA" if not token.endswith("AAAA") else "BBBB")
    assert (
        machine.get("/api/v1/cases", headers={"Authorization": f"Bearer {tampered}"}).status_code
        == 401
    )
    stored = session.get(User, user.id)
    revoke_all_sessions(session, stored, at=utcnow() + timedelta(seconds=1))
    session.flush()
    assert machine.get("/api/v1/cases", headers=headers).status_code == 401
