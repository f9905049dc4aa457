"""Sign-in screens through the HTML forms: login, TOTP, password, logout, CSRF."""

from __future__ import annotations

import time

import pyotp
from sqlalchemy import select

from app.audit.models import AuditEvent
from app.auth.models import User, UserSession
from tests.conftest import PASSWORD
from tests.web.conftest import ORIGIN, csrf_of, new_client, secret_of
from tests.web.pages import assert_accessible_page


def test_login_form_signs_in_with_a_host_only_secure_cookie(world, app, session) -> None:
    user = world.user("ngo_caseworker", world.agency("ngo"))
    session.flush()
    client = new_client(app)
    page = client.get("/login")
    assert page.status_code == 200
    assert_accessible_page(page.text)
    assert 'name="username"' in page.text and 'type="password"' in page.text
    response = client.post("/login", data={"username": user.username, "password": PASSWORD})
    assert response.status_code == 303 and response.headers["location"] == "/"
    cookie = response.headers["set-cookie"].lower()
    for part in ("__host-passage=", "secure", "httponly", "samesite=strict", "path=/"):
        assert part in cookie
    assert client.get("/").headers["location"] == "/cases"
    assert client.get("/cases").status_code == 200
    # Signed in already: the login page sends you on.
    assert client.get("/login").status_code == 303


def test_unknown_user_and_wrong_password_get_one_answer_and_keep_only_the_user_name(
    world, app, session
) -> None:
    user = world.user("ngo_caseworker", world.agency("ngo"))
    session.flush()
    client = new_client(app)
    wrong = client.post(
        "/login", data={"username": user.username, "password": "not the password at all"}
    )
    unknown = client.post(
        "/login", data={"username": "nobody-here", "password": "not the password at all"}
    )
    assert wrong.status_code == unknown.status_code == 401
    assert "Unknown user name or wrong password." in wrong.text
    assert "Unknown user name or wrong password." in unknown.text
    assert f'value="{user.username}"' in wrong.text  # the user name stays in the form
    assert "not the password at all" not in wrong.text  # a password is never sent back
    assert "__host-passage" not in wrong.headers.get("set-cookie", "").lower()


def test_empty_login_form_is_refused_with_field_messages(app) -> None:
    response = new_client(app).post("/login", data={"username": "", "password": ""})
    assert response.status_code == 422
    assert "Enter your user name." in response.text and "Enter your password." in response.text
    assert 'aria-invalid="true"' in response.text


def test_seventh_attempt_is_throttled_with_a_429_page(world, app, session) -> None:
    user = world.user("ngo_caseworker", world.agency("ngo"))
    session.flush()
    client = new_client(app)
    for _ in range(6):
        attempt = client.post("/login", data={"username": user.username, "password": "wrong-pw"})
        assert attempt.status_code == 401
    locked = client.post("/login", data={"username": user.username, "password": PASSWORD})
    assert locked.status_code == 429
    assert int(locked.headers["Retry-After"]) > 25 * 60
    assert "Too many attempts" in locked.text
    assert locked.headers["content-type"].startswith("text/html")


def test_login_from_another_site_is_refused(world, app, session) -> None:
    user = world.user("ngo_caseworker", world.agency("ngo"))
    session.flush()
    client = new_client(app)
    cross = client.post(
        "/login",
        data={"username": user.username, "password": PASSWORD},
        headers={"Origin": "https://evil.example"},
    )
    assert cross.status_code == 403
    assert cross.headers["content-type"].startswith("text/html")
    assert "set-cookie" not in cross.headers


def test_totp_enrolment_then_prompt_and_codes_are_single_use(world, app, session) -> None:
    officer = world.user("police_officer", world.agency("police"))
    session.flush()
    client = new_client(app)
    login = client.post("/login", data={"username": officer.username, "password": PASSWORD})
    assert login.headers["location"] == "/mfa"
    # Before the second factor, no screen opens.
    assert client.get("/inbox").headers["location"] == "/mfa"
    start = client.get("/mfa")
    assert start.status_code == 200 and "Start the setup" in start.text
    token = csrf_of(start.text)
    enrol = client.post("/mfa/enrol", data={"csrf_token": token})
    assert enrol.status_code == 200
    assert_accessible_page(enrol.text)
    secret = secret_of(enrol.text)
    assert "otpauth://totp/" in enrol.text
    totp = pyotp.TOTP(secret)
    bad = client.post("/mfa/verify", data={"csrf_token": token, "code": "000000"})
    assert bad.status_code == 401 and "not valid" in bad.text
    assert secret_of(bad.text) == secret  # still enrolling: the same key is shown again
    good = client.post("/mfa/verify", data={"csrf_token": token, "code": totp.now()})
    assert good.status_code == 303 and good.headers["location"] == "/"
    assert client.get("/inbox").status_code == 200
    # The pre-MFA session is gone: its token was rotated.
    revoked = session.scalars(
        select(UserSession).where(
            UserSession.user_id == officer.id, UserSession.revoked_at.is_not(None)
        )
    ).all()
    assert revoked

    # Next sign-in: a prompt, not an enrolment; the code just used is refused.
    again = new_client(app)
    again.post("/login", data={"username": officer.username, "password": PASSWORD})
    prompt = again.get("/mfa")
    assert "Enter your code" in prompt.text and "totp-secret" not in prompt.text
    assert again.post("/mfa/enrol", data={"csrf_token": csrf_of(prompt.text)}).status_code == 303
    replay = again.post(
        "/mfa/verify", data={"csrf_token": csrf_of(prompt.text), "code": totp.now()}
    )
    assert replay.status_code == 401
    fresh = again.post(
        "/mfa/verify",
        data={"csrf_token": csrf_of(prompt.text), "code": totp.at(time.time() + 30)},
    )
    assert fresh.status_code == 303
    assert again.get("/inbox").status_code == 200


def test_password_change_checks_policy_and_ends_other_sessions(world, web, app, session) -> None:
    user = world.user("ngo_caseworker", world.agency("ngo"))
    me, elsewhere = web(user), web(user)
    page = me.get("/account/password")
    assert_accessible_page(page.text)
    wrong = me.post(
        "/account/password",
        {"current_password": "wrong wrong wrong", "new_password": "x", "confirm": "y"},
    )
    assert wrong.status_code == 422
    assert "The current password is wrong." in wrong.text
    assert "use at least 12 characters" in wrong.text
    assert "The two new passwords do not match." in wrong.text
    assert "wrong wrong wrong" not in wrong.text
    common = me.post(
        "/account/password",
        {"current_password": PASSWORD, "new_password": "password1234", "confirm": "password1234"},
    )
    assert common.status_code == 422 and "too common" in common.text
    new = "a completely different passphrase 2026"
    done = me.post(
        "/account/password", {"current_password": PASSWORD, "new_password": new, "confirm": new}
    )
    assert done.status_code == 303
    assert me.get(done.headers["location"]).text.count("Your password was changed.") == 1
    assert me.get("/cases").status_code == 200  # this browser got a fresh session
    assert elsewhere.get("/cases").headers["location"] == "/login"  # the other one ended
    old = new_client(app).post("/login", data={"username": user.username, "password": PASSWORD})
    assert old.status_code == 401
    fresh = new_client(app).post("/login", data={"username": user.username, "password": new})
    assert fresh.status_code == 303
    events = session.scalars(
        select(AuditEvent.action).where(AuditEvent.actor_user_id == user.id)
    ).all()
    assert "password_changed" in events


def test_logout_ends_the_session(world, web) -> None:
    me = web(world.user("ngo_caseworker", world.agency("ngo")))
    out = me.post("/logout")
    assert out.status_code == 303 and out.headers["location"] == "/login"
    assert me.get("/cases").headers["location"] == "/login"


def test_signed_out_screens_redirect_to_login_also_for_htmx(app) -> None:
    client = new_client(app)
    assert client.get("/cases").headers["location"] == "/login"
    partial = client.get("/cases", headers={"HX-Request": "true"})
    assert partial.headers["HX-Redirect"] == "/login"


def test_csrf_missing_token_other_sessions_token_and_cross_site_are_refused(
    world, web, session
) -> None:
    ngo = world.agency("ngo")
    me, other = web(world.user("ngo_caseworker", ngo)), web(world.user("ngo_caseworker", ngo))
    body = {"current_password": PASSWORD, "new_password": "xx", "confirm": "xx"}

    def refused(response) -> None:
        assert response.status_code == 403
        assert response.headers["content-type"].startswith("text/html")
        assert "This request could not be verified" in response.text

    missing = me.client.post("/account/password", data=body)
    refused(missing)
    refused(me.client.post("/account/password", data={**body, "csrf_token": other.token}))
    refused(me.post("/account/password", body, headers={"Origin": "https://evil.example"}))
    refused(me.post("/account/password", body, headers={"Sec-Fetch-Site": "cross-site"}))
    refused(me.client.post("/logout", data={"csrf_token": ""}))
    # None of these did anything: the session still works, the form answers normally.
    assert me.get("/cases").status_code == 200
    assert me.post("/account/password", body).status_code == 422
    # The htmx header carries the token too.
    assert (
        me.client.post("/logout", headers={"X-CSRF-Token": me.token, "Origin": ORIGIN}).status_code
        == 303
    )
    stored = session.get(User, me.user.id)
    assert stored is not None and stored.is_active
