"""Bounded waits for the database: the settings reach real connections, a request that
runs into a timeout answers 503 with Retry-After, and the watchdog frees a connection stuck
behind a network that has gone silent (tests/silent_proxy.py)."""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import create_engine, text
from sqlalchemy.exc import DBAPIError, OperationalError

from app.db.engine import WATCHDOG_MARGIN_SECONDS, DatabaseLimits, make_engine
from app.db.rls import system_session
from app.db.session import Database
from app.db.watchdog import WATCHDOG, DeadlineExceeded
from app.main import create_app, is_database_unavailable
from tests.conftest import PASSWORD, DbEnv, World, copy_keys, make_settings
from tests.silent_proxy import SilentProxy, silent_proxy

postgres_only = pytest.mark.postgres_only
ORIGIN = "https://testserver"
CANARY = "canary-user-7f3a"


def test_settings_have_documented_defaults_and_reach_the_pool(db_env, keys_dir) -> None:
    settings = make_settings(db_env, keys_dir)
    assert (
        settings.db_statement_timeout_seconds,
        settings.db_lock_timeout_seconds,
        settings.db_idle_in_transaction_timeout_seconds,
        settings.db_pool_timeout_seconds,
        settings.db_connect_timeout_seconds,
        settings.db_ping_timeout_seconds,
        settings.db_readiness_timeout_seconds,
    ) == (10.0, 3.0, 30.0, 5.0, 5, 2.0, 0.8)
    database = Database(make_settings(db_env, keys_dir, db_pool_timeout_seconds=1.5))
    try:
        assert database.engine.pool.timeout() == 1.5  # type: ignore[attr-defined]
    finally:
        database.dispose()


@postgres_only
def test_settings_from_the_environment_reach_the_connection(db_env, keys_dir, monkeypatch) -> None:
    from app.config import Settings

    monkeypatch.setenv("PASSAGE_DB_STATEMENT_TIMEOUT_SECONDS", "2.5")
    monkeypatch.setenv("PASSAGE_DB_KEEPALIVES_IDLE_SECONDS", "45")
    settings = Settings(environment="test", database_url=db_env.app_url, keys_dir=keys_dir)
    database = Database(settings)
    try:
        with database.engine.connect() as conn:
            shown = {
                name: conn.execute(text(f"SHOW {name}")).scalar()
                for name in (
                    "statement_timeout",
                    "lock_timeout",
                    "idle_in_transaction_session_timeout",
                )
            }
            raw = conn.connection.dbapi_connection
            assert raw is not None
            sock = socket.socket(fileno=os.dup(raw.fileno()))
            try:
                keepalive = (
                    sock.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE),
                    sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE),
                    sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPINTVL),
                    sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPCNT),
                )
            finally:
                sock.close()
            conn.rollback()
            # Transaction-local (what PgBouncer transaction pooling needs): outside the
            # app's transactions the session keeps the server's defaults.
            raw.autocommit = True
            outside = raw.execute("SHOW statement_timeout").fetchone()
            raw.autocommit = False
        assert shown == {
            "statement_timeout": "2500ms",
            "lock_timeout": "3s",
            "idle_in_transaction_session_timeout": "30s",
        }
        assert keepalive[0] != 0 and keepalive[1:] == (45, 10, 3)
        assert outside == ("0",)
    finally:
        database.dispose()


# -- a real app with its own committed database and chosen limits ---------------------------
class LimitedApp:
    def __init__(self, env: DbEnv, keys: Path, password_hash: str, **limits: Any) -> None:
        self.env = env
        self.settings = make_settings(env, keys, rate_limit_enabled=False, **limits)
        self.database = Database(self.settings)
        self.app = create_app(self.settings, database=self.database)
        with system_session(self.database.sessionmaker()) as s, s.begin():
            world = World(s, password_hash)
            self.username = world.user("ngo_caseworker", world.agency("ngo"), username=CANARY)
            self.username = CANARY

    def client(self) -> TestClient:
        return TestClient(self.app, base_url=ORIGIN, headers={"Origin": ORIGIN})

    def login(self, client: TestClient) -> Any:
        return client.post(
            "/api/v1/auth/login", json={"username": self.username, "password": PASSWORD}
        )

    def close(self) -> None:
        self.database.dispose()


@pytest.fixture
def limited_app(fresh_db, keys_dir, tmp_path, password_hash) -> Iterator[Any]:
    made: list[LimitedApp] = []

    def make(**limits: Any) -> LimitedApp:
        made.append(
            LimitedApp(
                fresh_db, copy_keys(keys_dir, tmp_path / f"k{len(made)}"), password_hash, **limits
            )
        )
        return made[-1]

    yield make
    for instance in made:
        instance.close()


def _hold_table_lock(env: DbEnv, table: str) -> Any:
    owner = create_engine(env.owner_url)
    conn = owner.connect()
    conn.execute(text(f"LOCK TABLE {table} IN ACCESS EXCLUSIVE MODE"))
    return owner, conn


def _assert_clean_503(answer: Any, log: str, cause: str) -> None:
    assert answer.status_code == 503, answer.text
    assert answer.headers["Retry-After"].isdigit()
    assert answer.json()["error"]["code"] == "service_unavailable"
    assert f'"cause": "{cause}"' in log, log
    for leaked in (CANARY, "SELECT", "users", "Traceback"):
        assert leaked not in answer.text and leaked not in log


@postgres_only
def test_a_request_waiting_on_a_lock_answers_503_at_the_lock_timeout(limited_app, capfd) -> None:
    app = limited_app(db_lock_timeout_seconds=0.3)
    owner, locker = _hold_table_lock(app.env, "users")
    try:
        capfd.readouterr()
        started = time.monotonic()
        answer = app.login(app.client())
        elapsed = time.monotonic() - started
    finally:
        locker.close()
        owner.dispose()
    _assert_clean_503(answer, capfd.readouterr().err, "LockNotAvailable")
    assert elapsed < 2.0
    assert app.login(app.client()).status_code == 200  # the pool is healthy again


@postgres_only
def test_a_statement_over_the_statement_timeout_answers_503(limited_app, capfd) -> None:
    app = limited_app(db_statement_timeout_seconds=0.3, db_lock_timeout_seconds=0)
    owner, locker = _hold_table_lock(app.env, "users")
    try:
        capfd.readouterr()
        started = time.monotonic()
        answer = app.login(app.client())
        elapsed = time.monotonic() - started
    finally:
        locker.close()
        owner.dispose()
    _assert_clean_503(answer, capfd.readouterr().err, "QueryCanceled")
    assert elapsed < 0.3 + WATCHDOG_MARGIN_SECONDS  # the server answered, not the watchdog
    assert app.login(app.client()).status_code == 200


# -- behind a network that has gone silent ---------------------------------------------------
@pytest.fixture
def proxy() -> Iterator[SilentProxy]:
    with silent_proxy(("127.0.0.1", 5432)) as p:
        yield p


@postgres_only
def test_watchdog_closes_a_connection_stuck_behind_a_silent_proxy(db_env, proxy) -> None:
    limits = DatabaseLimits(statement_timeout=0.5, ping_timeout=0.3, connect_timeout=2)
    engine = make_engine(proxy.url(db_env.app_url), limits=limits)
    try:
        conn = engine.connect()
        assert conn.execute(text("SELECT 1")).scalar() == 1
        proxy.partition()
        fired = WATCHDOG.fired_total
        started = time.monotonic()
        with pytest.raises(OperationalError) as stuck:
            conn.execute(text("SELECT 2"))
        elapsed = time.monotonic() - started
        conn.close()
        assert isinstance(stuck.value.orig, DeadlineExceeded)
        assert stuck.value.connection_invalidated  # never handed back to the pool
        assert is_database_unavailable(stuck.value)
        assert 0.5 + WATCHDOG_MARGIN_SECONDS <= elapsed < 1.5
        assert WATCHDOG.fired_total == fired + 1 and WATCHDOG.armed() == 0

        # A pooled connection: its pre-ping gets the short deadline, the pool gives up the
        # connection and reconnects, which connect_timeout bounds.
        proxy.heal()
        first, second = engine.connect(), engine.connect()
        first.execute(text("SELECT 1"))
        second.execute(text("SELECT 1"))
        first.close()
        second.close()
        proxy.partition()
        started = time.monotonic()
        with pytest.raises(OperationalError), engine.connect() as again:
            again.execute(text("SELECT 3"))
        assert time.monotonic() - started < 0.3 + 2 + 0.7

        proxy.heal()
        with engine.connect() as healed:
            assert healed.execute(text("SELECT 4")).scalar() == 4
    finally:
        engine.dispose()


@postgres_only
def test_requests_and_readyz_answer_in_time_behind_a_silent_proxy(
    fresh_db, keys_dir, tmp_path, password_hash, proxy
) -> None:
    behind = DbEnv("postgresql", fresh_db.owner_url, proxy.url(fresh_db.app_url), tmp_path)
    app = LimitedApp(
        behind,
        copy_keys(keys_dir, tmp_path / "keys"),
        password_hash,
        db_statement_timeout_seconds=1.0,
        db_ping_timeout_seconds=0.3,
        db_connect_timeout_seconds=2,
        db_pool_timeout_seconds=0.5,
    )
    try:
        client = app.client()
        assert app.login(client).status_code == 200
        assert client.get("/readyz").status_code == 200
        proxy.partition()
        for _ in range(3):  # later probes find earlier checks still stuck
            started = time.monotonic()
            ready = client.get("/readyz")
            assert time.monotonic() - started < 1.0
            assert ready.status_code == 503 and ready.json()["database"] == "unreachable"
        started = time.monotonic()
        answer = app.login(app.client())
        # The slowest path here: the pre-ping gives up (0.3 s), then reconnecting runs into
        # connect_timeout (2 s, libpq's minimum); a statement would give up at 1.5 s.
        assert time.monotonic() - started < max(1.0 + WATCHDOG_MARGIN_SECONDS, 0.3 + 2) + 0.5
        assert answer.status_code == 503 and answer.headers["Retry-After"].isdigit()
        proxy.heal()
        deadline = time.monotonic() + 10
        while client.get("/readyz").status_code != 200:
            assert time.monotonic() < deadline, "not ready again after the partition"
            time.sleep(0.2)
        assert app.login(app.client()).status_code == 200
    finally:
        app.close()


@postgres_only
def test_a_request_in_flight_when_the_network_goes_silent_answers_503(
    fresh_db, keys_dir, tmp_path, password_hash, proxy, capfd
) -> None:
    behind = DbEnv("postgresql", fresh_db.owner_url, proxy.url(fresh_db.app_url), tmp_path)
    app = LimitedApp(
        behind,
        copy_keys(keys_dir, tmp_path / "keys"),
        password_hash,
        db_statement_timeout_seconds=1.0,
    )
    try:
        started = time.monotonic()
        assert app.login(app.client()).status_code == 200
        healthy = time.monotonic() - started  # mostly the password hash
        # Silent from the middle of the next login: its SELECTs were answered, its INSERT
        # never reaches the server and no answer ever comes back.
        proxy.partition_on(lambda packet: b"INSERT INTO user_sessions" in packet)
        capfd.readouterr()
        started = time.monotonic()
        answer = app.login(app.client())
        elapsed = time.monotonic() - started
        _assert_clean_503(answer, capfd.readouterr().err, "DeadlineExceeded")
        assert proxy.partitioned
        watchdog = 1.0 + WATCHDOG_MARGIN_SECONDS
        assert watchdog <= elapsed < healthy + watchdog + 0.5
        proxy.heal()
        assert app.login(app.client()).status_code == 200
    finally:
        app.close()


def test_a_closed_connection_is_an_outage_not_a_bug() -> None:
    lost = OperationalError("SELECT", {}, DeadlineExceeded("no answer"))
    assert is_database_unavailable(lost)
    assert not is_database_unavailable(DBAPIError("SELECT", {}, Exception("x")))
