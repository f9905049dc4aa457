"""Real processes for the reliability tests and the load benchmark.

A fresh PostgreSQL database migrated as the owner with a least-privilege app role (as in
production), a key directory, seeded agencies, users and cases, and `passage serve` with
real uvicorn workers on a loopback port. Also a throwaway PostgreSQL cluster (initdb in a
temporary directory, its own port) that a test may stop and start: never the shared one.

Test and benchmark tooling only; nothing in the application imports it.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from app.config import REPO_ROOT

APP_ROLE = "passage_app"
PASSWORD = "correct horse battery staple 42"  # noqa: S105 (fictional test accounts)
PG_BIN = Path("/usr/lib/postgresql/15/bin")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# -- throwaway PostgreSQL cluster ------------------------------------------------------------
@dataclass
class Cluster:
    """A private PostgreSQL cluster (trust auth, loopback only) that tests may stop."""

    port: int
    base: Path
    as_user: str | None  # run the server as this user (initdb refuses root)

    @property
    def datadir(self) -> Path:
        return self.base / "data"

    @property
    def admin_url(self) -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/postgres"

    def _run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        command = [str(a) for a in args]
        if self.as_user:
            command = ["runuser", "-u", self.as_user, "--", *command]
        return subprocess.run(  # noqa: S603 (fixed PostgreSQL tools, our arguments)
            command, check=check, capture_output=True, text=True, timeout=120
        )

    @classmethod
    def create(cls, port: int | None = None) -> Cluster:
        base = Path(tempfile.mkdtemp(prefix="passage-pg-"))
        as_user = "postgres" if os.geteuid() == 0 else None
        if as_user:
            shutil.chown(base, user=as_user, group=as_user)
        cluster = cls(port or free_port(), base, as_user)
        cluster._run(
            str(PG_BIN / "initdb"),
            "-D",
            str(cluster.datadir),
            "-U",
            "postgres",
            "--auth=trust",
            "--no-sync",
            "-E",
            "UTF8",
        )
        with open(cluster.datadir / "postgresql.conf", "a") as conf:
            conf.write(
                f"\nport = {cluster.port}\nlisten_addresses = '127.0.0.1'\n"
                f"unix_socket_directories = '{base}'\nfsync = on\nmax_connections = 200\n"
            )
        if as_user:
            shutil.chown(cluster.datadir / "postgresql.conf", user=as_user, group=as_user)
        return cluster

    def start(self) -> None:
        self._run(
            str(PG_BIN / "pg_ctl"),
            "-D",
            str(self.datadir),
            "-l",
            str(self.base / "server.log"),
            "-w",
            "-t",
            "60",
            "start",
        )

    def stop(self, mode: str = "fast") -> None:
        self._run(
            str(PG_BIN / "pg_ctl"), "-D", str(self.datadir), "-m", mode, "-w", "stop", check=False
        )

    def destroy(self) -> None:
        self.stop("immediate")
        shutil.rmtree(self.base, ignore_errors=True)


# -- databases -------------------------------------------------------------------------------
def create_database(admin_url: str, name: str) -> tuple[str, str]:
    """A fresh database migrated as the owner; returns (owner URL, app-role URL)."""
    engine = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        conn.execute(text(f'CREATE DATABASE "{name}"'))
        exists = conn.execute(
            text("SELECT 1 FROM pg_roles WHERE rolname = :r"), {"r": APP_ROLE}
        ).first()
        if not exists:
            conn.execute(text(f"CREATE ROLE {APP_ROLE} LOGIN NOSUPERUSER NOBYPASSRLS"))
    engine.dispose()
    admin = make_url(admin_url)
    owner = admin.set(database=name).render_as_string(hide_password=False)
    app = admin.set(database=name, username=APP_ROLE, password=None).render_as_string(
        hide_password=False
    )
    from alembic import command
    from alembic.config import Config

    config = Config(str(REPO_ROOT / "alembic.ini"))
    config.set_main_option("sqlalchemy.url", owner)
    config.attributes["app_role"] = APP_ROLE
    command.upgrade(config, "head")
    return owner, app


def drop_database(admin_url: str, name: str) -> None:
    engine = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    engine.dispose()


def make_keys(path: Path) -> Path:
    from app.crypto.keyring import FileKeyRing

    FileKeyRing.initialise(path)
    return path


# -- seeding ---------------------------------------------------------------------------------
def registration_payload(n: int = 0) -> dict[str, Any]:
    """A fictional person's registration (the same shape as tests/builders.py)."""
    return {
        "victim": {
            "given_name": f"Amina{n}",
            "family_name": "Testperson",
            "date_of_birth": "1994-03-0" + str(1 + n % 9),
            "sex": "female",
            "nationalities": ["NG"],
            "languages": ["en"],
            "phone": "+33 6 00 00 00 00",
            "current_address": "1 rue Fictive, 75000 Paris",
            "health_notes": "none recorded",
        },
        "case": {
            "exploitation_forms": ["labour"],
            "labour_sector": "hospitality",
            "exploitation_means": ["debt_bondage"],
            "countries_of_exploitation": ["FR"],
            "indicators": ["debt_bondage"],
            "detection_place": "Fictional place",
            "statement_summary": "fictional statement",
        },
        "detection": {"detected_on": "2026-10-01", "detecting_org_type": "ngo"},
    }


@dataclass
class Seeded:
    agency_id: uuid.UUID
    usernames: list[str]
    case_ids: list[uuid.UUID]
    cases_by_user: dict[str, list[uuid.UUID]] = field(default_factory=dict)


def seed(
    app_url: str, keys_dir: Path, *, users: int, cases_per_user: int, role: str = "ngo_caseworker"
) -> Seeded:
    """One NGO, `users` caseworkers, each registering `cases_per_user` cases (real service)."""
    from app.agencies.models import Agency
    from app.auth.models import User
    from app.auth.passwords import hash_password
    from app.auth.service import actor_for
    from app.cases import service
    from app.cases.schemas import RegistrationIn
    from app.config import Settings
    from app.context import build_context
    from app.db.rls import system_session
    from app.db.session import Database

    settings = Settings(
        environment="test", database_url=app_url, keys_dir=keys_dir, log_level="WARNING"
    )
    ctx = build_context(settings)
    database = Database(settings)
    password_hash = hash_password(PASSWORD)
    suffix = uuid.uuid4().hex[:6]
    try:
        with system_session(database.sessionmaker()) as session, session.begin():
            agency = Agency(name=f"ngo-{suffix}", type="ngo", country="FR", region="Île-de-France")
            session.add(agency)
            session.flush()
            accounts = []
            for i in range(users):
                user = User(
                    username=f"worker{i}-{suffix}",
                    display_name=f"Worker {i}",
                    agency_id=agency.id,
                    role=role,
                    password_hash=password_hash,
                )
                session.add(user)
                accounts.append(user)
            session.flush()
            seeded = Seeded(agency.id, [u.username for u in accounts], [])
            for i, user in enumerate(accounts):
                actor = actor_for(user, agency)
                mine = []
                for j in range(cases_per_user):
                    data = RegistrationIn.model_validate(registration_payload(i * 1000 + j))
                    mine.append(service.register(session, ctx, actor, data).id)
                seeded.cases_by_user[user.username] = mine
                seeded.case_ids.extend(mine)
        return seeded
    finally:
        database.dispose()


# -- the server --------------------------------------------------------------------------------
@dataclass
class Server:
    process: subprocess.Popen[bytes]
    port: int
    log_path: Path

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def worker_pids(self) -> list[int]:
        """uvicorn worker processes (children of the supervisor), from /proc."""
        pids = []
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                fields_ = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields_[1]) == self.process.pid:
                pids.append(int(entry.name))
        return sorted(pids)

    def serving_worker_pids(self) -> list[int]:
        """Workers that have loaded the app: uvicorn logs "Started server process [pid]"
        only after the import. Excludes workers still booting and multiprocessing's
        resource tracker, which are children of the supervisor too."""
        started = set(
            map(int, re.findall(r"Started server process \[(\d+)\]", self.log_path.read_text()))
        )
        return [pid for pid in self.worker_pids() if pid in started]

    def wait_ready(self, timeout: float = 60.0, workers: int = 1) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"server exited: {self.log_path.read_text()[-2000:]}")
            try:
                ok = httpx.get(self.base_url + "/readyz", timeout=2).status_code == 200
            except httpx.HTTPError:
                ok = False
            if ok and len(self.worker_pids()) >= workers:
                return
            time.sleep(0.2)
        raise TimeoutError(f"server not ready: {self.log_path.read_text()[-2000:]}")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                for pid in self.worker_pids():
                    os.kill(pid, signal.SIGKILL)
                self.process.kill()
                self.process.wait(timeout=10)


def server_env(
    app_url: str, keys_dir: Path, port: int, extra: Mapping[str, str] | None = None
) -> dict[str, str]:
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("PASSAGE_", "PROMETHEUS_"))
    }
    env.update(
        {
            "PASSAGE_ENVIRONMENT": "test",
            "PASSAGE_DATABASE_URL": app_url,
            "PASSAGE_KEYS_DIR": str(keys_dir),
            "PASSAGE_BASE_URL": f"http://127.0.0.1:{port}",
            "PASSAGE_SESSION_COOKIE_SECURE": "false",
            "PASSAGE_LOG_LEVEL": "WARNING",
            "PYTHONPATH": str(REPO_ROOT),
        }
    )
    env.update(extra or {})
    return env


def start_server(
    app_url: str,
    keys_dir: Path,
    *,
    workers: int = 2,
    log_dir: Path,
    extra_env: Mapping[str, str] | None = None,
) -> Server:
    """`passage serve` with real uvicorn workers on a free loopback port."""
    port = free_port()
    log_path = log_dir / f"server-{port}.log"
    passage = Path(sys.executable).with_name("passage")
    command = [str(passage), "serve", "--host", "127.0.0.1", "--port", str(port)]
    command += ["--workers", str(workers)]
    with open(log_path, "wb") as log:
        process = subprocess.Popen(  # noqa: S603 (our own `passage serve`)
            command,
            env=server_env(app_url, keys_dir, port, extra_env),
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=str(REPO_ROOT),
        )
    server = Server(process, port, log_path)
    server.wait_ready(workers=workers)
    return server


@contextmanager
def running_server(
    app_url: str,
    keys_dir: Path,
    *,
    workers: int = 2,
    log_dir: Path,
    extra_env: Mapping[str, str] | None = None,
) -> Iterator[Server]:
    server = start_server(app_url, keys_dir, workers=workers, log_dir=log_dir, extra_env=extra_env)
    try:
        yield server
    finally:
        server.stop()


def login(
    base_url: str,
    username: str,
    *,
    timeout: float = 10.0,
    address: str | None = None,
    transport: httpx.HTTPTransport | None = None,
) -> httpx.Client:
    """A signed-in client (session cookie, CSRF header, Origin). No second factor."""
    headers = {"Origin": base_url}
    if address:
        headers["X-Forwarded-For"] = address  # uvicorn trusts 127.0.0.1 as a proxy
    client = httpx.Client(base_url=base_url, timeout=timeout, headers=headers, transport=transport)
    response = client.post("/api/v1/auth/login", json={"username": username, "password": PASSWORD})
    response.raise_for_status()
    client.headers["X-CSRF-Token"] = response.json()["csrf_token"]
    return client
