"""Two real Passage instances on loopback: each its own uvicorn process, its own database
(cloned from the migrated template: SQLite or PostgreSQL), its own key set from
`FileKeyRing.initialise`, each pinning the other's public keys in its directory.

Tests drive them over real HTTP as their users would (login, second factor, CSRF) and run
each instance's outbox dispatcher in-process against that instance's database; the
dispatcher talks to the other instance over real HTTP.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import pyotp
import pytest
from sqlalchemy.orm import Session

from app.agencies.models import Agency
from app.auth.models import User
from app.config import Settings
from app.context import AppContext, build_context
from app.crypto.keyring import (
    ENCRYPTION_KEY,
    SIGNING_KEY,
    FileKeyRing,
    ensure_encryption_key,
    read_encryption_key,
    read_signing_key,
)
from app.db.rls import system_session
from app.db.session import Database
from app.transnational.dispatcher import DispatchReport, dispatch
from tests.conftest import PASSWORD, REPO, DbEnv, Template, World, make_settings


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class HttpUser:
    """A person using an instance over real HTTP: session cookie, TOTP, CSRF header, Origin."""

    def __init__(self, instance: Instance, user: User) -> None:
        self.user = user
        self.client = httpx.Client(base_url=instance.base_url, timeout=60)
        response = self.client.post(
            "/api/v1/auth/login", json={"username": user.username, "password": PASSWORD}
        )
        assert response.status_code == 200, response.text
        body = response.json()
        self.client.headers.update(
            {"X-CSRF-Token": body["csrf_token"], "Origin": instance.base_url}
        )
        if body["mfa_required"]:
            enrol = self.client.post("/api/v1/auth/totp/enrolment")
            assert enrol.status_code == 200, enrol.text
            totp = pyotp.parse_uri(enrol.json()["provisioning_uri"])
            assert isinstance(totp, pyotp.TOTP)
            verified = self.client.post("/api/v1/auth/totp/verify", json={"code": totp.now()})
            assert verified.status_code == 200, verified.text
            self.client.headers["X-CSRF-Token"] = verified.json()["csrf_token"]

    def get(self, url: str, **kw: Any) -> httpx.Response:
        return self.client.get(url, **kw)

    def post(self, url: str, **kw: Any) -> httpx.Response:
        return self.client.post(url, **kw)

    def put(self, url: str, **kw: Any) -> httpx.Response:
        return self.client.put(url, **kw)

    def patch(self, url: str, **kw: Any) -> httpx.Response:
        return self.client.patch(url, **kw)

    def close(self) -> None:
        self.client.close()


@dataclass
class Instance:
    name: str
    country: str
    instance_id: str
    env: DbEnv
    keys_dir: Path
    base_url: str
    settings: Settings
    process: subprocess.Popen[bytes]
    log_path: Path
    password_hash: str
    database: Database = field(init=False)
    ctx: AppContext = field(init=False)
    users: list[HttpUser] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.database = Database(self.settings)
        self.ctx = build_context(self.settings)

    # -- direct database access (setup and assertions) -------------------------------------
    def session(self) -> Session:
        return system_session(self.database.sessionmaker())

    def agency(self, type_: str, *, name: str | None = None) -> Agency:
        with self.session() as s, s.begin():
            agency = World(s, self.password_hash).agency(
                type_,
                name=name or f"{self.name}-{type_}-{uuid.uuid4().hex[:6]}",
                country=self.country,
            )
        return agency

    def user(self, role: str, agency: Agency) -> User:
        with self.session() as s, s.begin():
            user = World(s, self.password_hash).user(role, agency)
        return user

    def login(self, user: User) -> HttpUser:
        client = HttpUser(self, user)
        self.users.append(client)
        return client

    def dispatch(
        self, client: httpx.Client | None = None, now: datetime | None = None
    ) -> DispatchReport:
        return dispatch(self.ctx, self.database.sessionmaker, client=client, now=now)

    # -- keys (the "out of band" channel: read from this instance's own key files) ----------
    def public_keys(self) -> dict[str, str]:
        _, signing = read_signing_key(self.keys_dir / SIGNING_KEY)
        _, encryption = read_encryption_key(self.keys_dir / ENCRYPTION_KEY)
        return {"sig": signing, "enc": encryption}

    def signing_private_pem(self) -> str:
        return read_signing_key(self.keys_dir / SIGNING_KEY)[0]

    def encryption_private_pem(self) -> str:
        return read_encryption_key(self.keys_dir / ENCRYPTION_KEY)[0]

    def server_log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self) -> None:
        for client in self.users:
            client.close()
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=10)
        self.database.dispose()


def start_instance(
    template: Template, tmp: Path, name: str, country: str, password_hash: str
) -> Instance:
    env = template.clone(name)
    keys = tmp / f"{name}-keys"
    FileKeyRing.initialise(keys)
    ensure_encryption_key(keys)
    port = free_port()
    base_url = f"http://127.0.0.1:{port}"
    settings = make_settings(env, keys, base_url=base_url, session_cookie_secure=False)
    process_env = {k: v for k, v in os.environ.items() if not k.startswith("PASSAGE_")}
    process_env.update(
        {
            "PASSAGE_ENVIRONMENT": "test",
            "PASSAGE_DATABASE_URL": env.app_url,
            "PASSAGE_MIGRATION_DATABASE_URL": env.owner_url,
            "PASSAGE_KEYS_DIR": str(keys),
            "PASSAGE_BASE_URL": base_url,
            "PASSAGE_SESSION_COOKIE_SECURE": "false",
            "PASSAGE_LOG_LEVEL": "WARNING",
        }
    )
    log_path = tmp / f"{name}-server.log"
    log = log_path.open("wb")
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "uvicorn",
            "app.main:create_app",
            "--factory",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--no-access-log",
            "--log-level",
            "warning",
        ],
        cwd=REPO,
        env=process_env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    deadline = time.monotonic() + 60
    while True:
        try:
            if httpx.get(base_url + "/readyz", timeout=2).status_code == 200:
                break
        except httpx.HTTPError:
            pass
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            raise RuntimeError(f"instance {name} did not start:\n{log_path.read_text()}")
        time.sleep(0.2)
    return Instance(
        name=name,
        country=country,
        instance_id=f"urn:passage:{country.lower()}:{name}",
        env=env,
        keys_dir=keys,
        base_url=base_url,
        settings=settings,
        process=process,
        log_path=log_path,
        password_hash=password_hash,
    )


def contacts() -> list[dict[str, Any]]:
    return [
        {
            "role_title": "National focal point for transnational referral",
            "email": "trm.focal.point@example.gov",
            "rank": "primary",
            "languages": ["en", "fr"],
        },
        {
            "role_title": "Deputy focal point (out of hours)",
            "email": "trm.duty@example.gov",
            "phone": "+351 21 000 0000",
            "rank": "deputy",
            "out_of_hours": True,
        },
    ]


@dataclass
class Side:
    """One instance configured for the exchange: its focal point and administrator."""

    instance: Instance
    focal_agency: Agency
    admin: HttpUser
    focal_point: HttpUser
    partner_id: str = ""
    partner_agency_id: str = ""


def configure(side: Instance) -> Side:
    office = side.agency("coordinator_office", name=f"{side.name} national focal point")
    admin = side.login(side.user("admin", office))
    focal = side.login(side.user("focal_point", office))
    response = admin.put(
        "/api/v1/transnational/instance",
        json={
            "instance_id": side.instance_id,
            "country": side.country,
            "institution": f"National referral mechanism {side.country}",
            "focal_point_agency_id": str(office.id),
        },
    )
    assert response.status_code == 200, response.text
    return Side(instance=side, focal_agency=office, admin=admin, focal_point=focal)


def add_partner(side: Side, other: Instance, *, pin: bool = True) -> dict[str, Any]:
    response = side.admin.post(
        "/api/v1/transnational/partners",
        json={
            "country": other.country,
            "institution": f"National referral mechanism {other.country}",
            "instance_id": other.instance_id,
            "base_url": other.base_url,
            "working_languages": ["en", "fr"],
            "last_verified_on": "2026-11-01",
            "contacts": contacts(),
        },
    )
    assert response.status_code == 201, response.text
    partner = response.json()
    side.partner_id, side.partner_agency_id = partner["id"], partner["agency_id"]
    if pin:
        for use, pem in other.public_keys().items():
            pinned = side.admin.post(
                f"/api/v1/transnational/partners/{partner['id']}/keys",
                json={"use": use, "pem": pem},
            )
            assert pinned.status_code == 201, pinned.text
    return partner


@dataclass
class Pair:
    a: Side
    b: Side


@pytest.fixture(scope="module")
def pair(
    template: Template, tmp_path_factory: pytest.TempPathFactory, password_hash: str
) -> Iterator[Pair]:
    tmp = tmp_path_factory.mktemp("trm")
    a = start_instance(template, tmp, "sending", "PT", password_hash)
    try:
        b = start_instance(template, tmp, "receiving", "SN", password_hash)
    except Exception:
        a.stop()
        raise
    try:
        side_a, side_b = configure(a), configure(b)
        add_partner(side_a, b)
        add_partner(side_b, a)
        yield Pair(side_a, side_b)
    finally:
        for inst in (a, b):
            inst.stop()
            template.drop(inst.env)
