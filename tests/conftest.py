"""Test fixtures: a migrated database (SQLite or PostgreSQL), real keys, real crypto.

TEST_DATABASE_URL selects the engine. On PostgreSQL a fresh database is created per run,
migrated as the owner, and the app connects as a separate least-privilege role, exactly as
in production. Each test runs inside a transaction that is rolled back (savepoints let the
app's own commits work inside it).
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyotp
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Connection, Engine, create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

from app.agencies.models import Agency
from app.auth.models import User
from app.auth.passwords import hash_password
from app.config import Settings
from app.context import AppContext, build_context
from app.crypto.keyring import FileKeyRing
from app.db.engine import make_engine
from app.db.session import Database

APP_ROLE = "passage_app"
PASSWORD = "correct horse battery staple 42"
REPO = Path(__file__).resolve().parent.parent


@dataclass
class DbEnv:
    dialect: str
    owner_url: str
    app_url: str
    base_dir: Path

    @property
    def is_postgres(self) -> bool:
        return self.dialect == "postgresql"


def _migrate(owner_url: str, app_role: str | None) -> None:
    from alembic import command
    from alembic.config import Config

    config = Config(str(REPO / "alembic.ini"))
    config.set_main_option("sqlalchemy.url", owner_url)
    config.attributes["app_role"] = app_role
    command.upgrade(config, "head")


def _create_pg_database(admin_url: str, name: str, template: str | None = None) -> None:
    engine = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        suffix = f' TEMPLATE "{template}"' if template else ""
        conn.execute(text(f'CREATE DATABASE "{name}"{suffix}'))
    engine.dispose()


def _drop_pg_database(admin_url: str, name: str) -> None:
    engine = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    engine.dispose()


def _ensure_app_role(admin_url: str) -> None:
    engine = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        exists = conn.execute(
            text("SELECT 1 FROM pg_roles WHERE rolname = :r"), {"r": APP_ROLE}
        ).first()
        if not exists:
            conn.execute(text(f"CREATE ROLE {APP_ROLE} LOGIN NOSUPERUSER NOBYPASSRLS"))
    engine.dispose()


@dataclass
class Template:
    """A migrated, never-connected database that tests clone for a clean, committed world."""

    dialect: str
    admin_url: str
    name: str
    base_dir: Path

    def clone(self, label: str) -> DbEnv:
        suffix = uuid.uuid4().hex[:6]
        if self.dialect == "postgresql":
            clone = f"{self.name}_{label}_{suffix}"[:63]
            _create_pg_database(self.admin_url, clone, template=self.name)
            admin = make_url(self.admin_url)
            owner = admin.set(database=clone).render_as_string(hide_password=False)
            app = admin.set(database=clone, username=APP_ROLE, password=None).render_as_string(
                hide_password=False
            )
            return DbEnv("postgresql", owner, app, self.base_dir)
        path = self.base_dir / f"{label}-{suffix}.db"
        shutil.copy(self.base_dir / "template.db", path)
        url = f"sqlite:///{path}"
        return DbEnv("sqlite", url, url, self.base_dir)

    def drop(self, env: DbEnv) -> None:
        if self.dialect == "postgresql":
            _drop_pg_database(self.admin_url, make_url(env.owner_url).database or "")


@pytest.fixture(scope="session")
def template(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Template]:
    base_dir = tmp_path_factory.mktemp("passage")
    url = os.environ.get("TEST_DATABASE_URL", "sqlite")
    if url.startswith("postgresql"):
        name = f"passage_test_{uuid.uuid4().hex[:8]}"
        _ensure_app_role(url)
        _create_pg_database(url, name)
        _migrate(make_url(url).set(database=name).render_as_string(hide_password=False), APP_ROLE)
        yield Template("postgresql", url, name, base_dir)
        _drop_pg_database(url, name)
    else:
        _migrate(f"sqlite:///{base_dir / 'template.db'}", None)
        yield Template("sqlite", url, "template", base_dir)


@pytest.fixture(scope="session")
def db_env(template: Template) -> Iterator[DbEnv]:
    env = template.clone("main")
    yield env
    template.drop(env)


@pytest.fixture
def fresh_db(template: Template) -> Iterator[DbEnv]:
    """A clean database of its own, for tests that need real commits."""
    env = template.clone("t")
    yield env
    template.drop(env)


@pytest.fixture(scope="session")
def keys_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("keys") / "keys"
    FileKeyRing.initialise(path)
    return path


def make_settings(db_env: DbEnv, keys_dir: Path, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "environment": "test",
        "database_url": db_env.app_url,
        "migration_database_url": db_env.owner_url,
        "keys_dir": keys_dir,
        "base_url": "https://testserver",
        "log_level": "WARNING",
        # Next to the keys (never inside them): erasures are journaled before they commit.
        "erasure_journal": keys_dir.parent / "erasure-journal" / "erasures.log",
    }
    values.update(overrides)
    return Settings(**values)


@pytest.fixture(scope="session")
def settings(db_env: DbEnv, keys_dir: Path) -> Settings:
    return make_settings(db_env, keys_dir)


@pytest.fixture(scope="session")
def ctx(settings: Settings) -> AppContext:
    return build_context(settings)


@pytest.fixture(scope="session")
def app_engine(db_env: DbEnv) -> Iterator[Engine]:
    engine = make_engine(db_env.app_url)
    yield engine
    engine.dispose()


@pytest.fixture
def connection(app_engine: Engine) -> Iterator[Connection]:
    conn = app_engine.connect()
    outer = conn.begin()
    if conn.dialect.name == "postgresql":
        # Tests build their world directly: act as the system unless a request says otherwise.
        conn.execute(text("SELECT set_config('passage.scope', 'system', true)"))
    yield conn
    outer.rollback()
    conn.close()


class _RequestSession(Session):
    """A request's session inside a test: on close, the test goes back to the system scope.

    In production each request is its own transaction, so its row-level-security context
    dies with it; here requests are savepoints of one long transaction, so reset it.
    """

    def close(self) -> None:
        bind = self.bind
        super().close()
        if (
            isinstance(bind, Connection)
            and bind.dialect.name == "postgresql"
            and bind.in_transaction()
        ):
            bind.execute(text("SELECT set_config('passage.scope', 'system', true)"))


class BoundDatabase(Database):
    """The app's database, bound to the test's connection: app commits become savepoints."""

    def __init__(self, connection: Connection) -> None:
        self.engine = connection.engine
        self.sessionmaker = sessionmaker(
            bind=connection,
            class_=_RequestSession,
            expire_on_commit=False,
            join_transaction_mode="create_savepoint",
        )

    def dispose(self) -> None:
        pass


@pytest.fixture
def session(connection: Connection) -> Iterator[Session]:
    with Session(
        bind=connection, join_transaction_mode="create_savepoint", expire_on_commit=False
    ) as s:
        yield s


@pytest.fixture(scope="session")
def password_hash() -> str:
    return hash_password(PASSWORD)


class World:
    """Builds agencies and users for a test."""

    def __init__(self, session: Session, password_hash: str) -> None:
        self.session = session
        self.password_hash = password_hash

    def agency(
        self,
        type_: str = "ngo",
        *,
        name: str | None = None,
        country: str = "FR",
        region: str | None = "Île-de-France",
    ) -> Agency:
        agency = Agency(
            name=name or f"{type_}-{uuid.uuid4().hex[:6]}",
            type=type_,
            country=country,
            region=region,
        )
        self.session.add(agency)
        self.session.flush()
        return agency

    def user(self, role: str, agency: Agency, *, username: str | None = None) -> User:
        user = User(
            username=username or f"{role}-{uuid.uuid4().hex[:6]}",
            display_name=role.replace("_", " ").title(),
            agency_id=agency.id,
            role=role,
            password_hash=self.password_hash,
        )
        self.session.add(user)
        self.session.flush()
        return user


@pytest.fixture
def world(session: Session, password_hash: str) -> World:
    return World(session, password_hash)


@pytest.fixture
def app(settings: Settings, connection: Connection):  # type: ignore[no-untyped-def]
    from app.main import create_app

    return create_app(settings, database=BoundDatabase(connection))


@pytest.fixture
def client(app) -> Iterator[TestClient]:  # type: ignore[no-untyped-def]
    with TestClient(app, base_url="https://testserver") as c:
        yield c


class ApiUser:
    """A logged-in API client for one user: session cookie plus CSRF header and Origin."""

    def __init__(self, app: Any, user: User, *, complete_mfa: bool = True) -> None:
        self.user = user
        self.client = TestClient(app, base_url="https://testserver")
        response = self.client.post(
            "/api/v1/auth/login", json={"username": user.username, "password": PASSWORD}
        )
        assert response.status_code == 200, response.text
        body = response.json()
        self.mfa_required = body["mfa_required"]
        self.client.headers.update(
            {"X-CSRF-Token": body["csrf_token"], "Origin": "https://testserver"}
        )
        self.totp: pyotp.TOTP | None = None
        if self.mfa_required and complete_mfa:
            self.complete_mfa()

    def complete_mfa(self) -> None:
        enrol = self.client.post("/api/v1/auth/totp/enrolment")
        assert enrol.status_code == 200, enrol.text
        totp = pyotp.parse_uri(enrol.json()["provisioning_uri"])
        assert isinstance(totp, pyotp.TOTP)
        self.totp = totp
        verified = self.client.post("/api/v1/auth/totp/verify", json={"code": totp.now()})
        assert verified.status_code == 200, verified.text
        self.client.headers["X-CSRF-Token"] = verified.json()["csrf_token"]
        self.mfa_required = False

    def __getattr__(self, name: str) -> Any:
        return getattr(self.client, name)


@pytest.fixture
def api(app, session: Session):  # type: ignore[no-untyped-def]
    def make(user: User, *, complete_mfa: bool = True) -> ApiUser:
        session.flush()
        return ApiUser(app, user, complete_mfa=complete_mfa)

    return make


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    is_pg = os.environ.get("TEST_DATABASE_URL", "").startswith("postgresql")
    skip_pg = pytest.mark.skip(reason="needs PostgreSQL (run make test-pg)")
    for item in items:
        if "postgres_only" in item.keywords and not is_pg:
            item.add_marker(skip_pg)


def copy_keys(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    return dst


class Live:
    """A real app on its own committed database and its own copy of the keys."""

    def __init__(self, env: DbEnv, keys: Path, password_hash: str) -> None:
        from app.main import create_app

        self.env = env
        self.keys_dir = keys
        self.settings = make_settings(env, keys)
        self.database = Database(self.settings)
        self.app = create_app(self.settings, database=self.database)
        self.password_hash = password_hash

    @property
    def ctx(self) -> AppContext:
        context: AppContext = self.app.state.context
        return context

    def session(self) -> Session:
        """A system-scope session, as CLI jobs get (direct reads and setup in tests)."""
        from app.db.rls import system_session

        return system_session(self.database.sessionmaker())

    def user(
        self, role: str, agency_type: str, *, agency: Agency | None = None
    ) -> tuple[User, Agency]:
        with self.session() as s, s.begin():
            world = World(s, self.password_hash)
            agency = agency or world.agency(agency_type)
            user = world.user(role, agency)
        return user, agency

    def api(self, user: User, *, complete_mfa: bool = True) -> ApiUser:
        return ApiUser(self.app, user, complete_mfa=complete_mfa)

    def close(self) -> None:
        self.database.dispose()


@pytest.fixture
def live(fresh_db: DbEnv, keys_dir: Path, tmp_path: Path, password_hash: str) -> Iterator[Live]:
    keys = copy_keys(keys_dir, tmp_path / "keys")
    instance = Live(fresh_db, keys, password_hash)
    yield instance
    instance.close()
