"""HTML-screen fixtures: a browser-like client that signs in through the forms."""

from __future__ import annotations

import html
import re
from collections.abc import Callable
from typing import Any

import pyotp
import pytest
from fastapi.testclient import TestClient
from httpx import Response
from sqlalchemy.orm import Session

from app.auth.models import User
from tests.conftest import PASSWORD

ORIGIN = "https://testserver"
_CSRF = re.compile(r'<meta name="csrf-token" content="([^"]+)"')
_SECRET = re.compile(r'<code id="totp-secret"[^>]*>([^<]+)</code>')


def csrf_of(page: str) -> str:
    match = _CSRF.search(page)
    assert match, "no csrf-token meta on the page"
    return match.group(1)


def secret_of(page: str) -> str:
    match = _SECRET.search(page)
    assert match, "no TOTP secret on the page"
    return html.unescape(match.group(1)).replace(" ", "")


def new_client(app: Any) -> TestClient:
    client = TestClient(app, base_url=ORIGIN, follow_redirects=False)
    client.headers["Origin"] = ORIGIN
    return client


class WebUser:
    """A signed-in browser session: cookie, Origin header, and the page's CSRF token."""

    def __init__(self, app: Any, user: User, *, complete_mfa: bool = True) -> None:
        self.user = user
        self.client = new_client(app)
        response = self.client.post(
            "/login", data={"username": user.username, "password": PASSWORD}
        )
        assert response.status_code == 303, response.text
        self.mfa_pending = response.headers["location"] == "/mfa"
        self.totp: pyotp.TOTP | None = None
        self.token = ""
        if self.mfa_pending and complete_mfa:
            self.complete_mfa()
        else:
            self.refresh_token()

    def refresh_token(self) -> str:
        page = self.client.get("/mfa" if self.mfa_pending else "/account/password")
        assert page.status_code == 200, page.text
        self.token = csrf_of(page.text)
        return self.token

    def complete_mfa(self) -> None:
        token = csrf_of(self.client.get("/mfa").text)
        enrol = self.client.post("/mfa/enrol", data={"csrf_token": token})
        assert enrol.status_code == 200, enrol.text
        self.totp = pyotp.TOTP(secret_of(enrol.text))
        verified = self.client.post(
            "/mfa/verify", data={"csrf_token": token, "code": self.totp.now()}
        )
        assert verified.status_code == 303 and verified.headers["location"] == "/"
        self.mfa_pending = False
        self.refresh_token()

    def get(self, url: str, **kwargs: Any) -> Response:
        return self.client.get(url, **kwargs)

    def post(self, url: str, data: Any = None, **kwargs: Any) -> Response:
        body = {"csrf_token": self.token, **(data or {})}
        return self.client.post(url, data=body, **kwargs)


@pytest.fixture
def web(app: Any, session: Session) -> Callable[..., WebUser]:
    def make(user: User, *, complete_mfa: bool = True) -> WebUser:
        session.flush()
        return WebUser(app, user, complete_mfa=complete_mfa)

    return make
