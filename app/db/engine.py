"""Engine construction for SQLite (embedded default) and PostgreSQL (production).

On PostgreSQL every wait for the database is bounded (docs/reliability.md, "Bounded
waits"): connect_timeout and TCP keepalives at connect, statement_timeout, lock_timeout
and idle_in_transaction_session_timeout set per transaction (so PgBouncer transaction
pooling keeps them), a pool checkout timeout, a short deadline on the pool's pre-ping, and
a client-side watchdog (app/db/watchdog.py) on every statement, COMMIT and ROLLBACK.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sqlalchemy import Engine, create_engine, event

from app.db.watchdog import GuardedConnection, wait_limit

if TYPE_CHECKING:
    from app.config import Settings

# The watchdog fires this long after statement_timeout, so that a server that can still
# answer reports the timeout itself (QueryCanceled) and keeps the connection usable.
WATCHDOG_MARGIN_SECONDS = 0.5


@dataclass(frozen=True)
class DatabaseLimits:
    """How long the app waits for PostgreSQL; 0 disables a server-side timeout."""

    connect_timeout: int = 5
    statement_timeout: float = 10.0
    lock_timeout: float = 3.0
    idle_in_transaction_timeout: float = 30.0
    pool_timeout: float = 5.0
    ping_timeout: float = 2.0
    keepalives_idle: int = 30
    keepalives_interval: int = 10
    keepalives_count: int = 3

    @classmethod
    def from_settings(cls, settings: Settings) -> DatabaseLimits:
        return cls(
            connect_timeout=settings.db_connect_timeout_seconds,
            statement_timeout=settings.db_statement_timeout_seconds,
            lock_timeout=settings.db_lock_timeout_seconds,
            idle_in_transaction_timeout=settings.db_idle_in_transaction_timeout_seconds,
            pool_timeout=settings.db_pool_timeout_seconds,
            ping_timeout=settings.db_ping_timeout_seconds,
            keepalives_idle=settings.db_keepalives_idle_seconds,
            keepalives_interval=settings.db_keepalives_interval_seconds,
            keepalives_count=settings.db_keepalives_count,
        )

    @property
    def watchdog_seconds(self) -> float | None:
        """Longest single wait on a connection (None when statements are unbounded)."""
        if self.statement_timeout <= 0:
            return None
        return self.statement_timeout + WATCHDOG_MARGIN_SECONDS

    def set_config_sql(self) -> str:
        """One statement setting the server-side timeouts for the current transaction."""
        values = {
            "statement_timeout": self.statement_timeout,
            "lock_timeout": self.lock_timeout,
            "idle_in_transaction_session_timeout": self.idle_in_transaction_timeout,
        }
        # Integers (milliseconds) built here from validated floats: nothing from outside.
        parts = [f"set_config('{name}', '{round(v * 1000)}', true)" for name, v in values.items()]
        return "SELECT " + ", ".join(parts)


def make_engine(
    url: str,
    *,
    pool_size: int = 10,
    max_overflow: int = 10,
    limits: DatabaseLimits | None = None,
) -> Engine:
    """An engine; with `limits` (the app's Database), every PostgreSQL wait is bounded."""
    if url.startswith("sqlite"):
        # A small pool: closing the last WAL connection checkpoints the whole log, which
        # would otherwise happen on every request.
        engine = create_engine(
            url,
            connect_args={"check_same_thread": False, "timeout": 30},
            pool_size=5,
            max_overflow=5,
            pool_timeout=limits.pool_timeout if limits else 30.0,
        )
        _configure_sqlite(engine)
        return engine
    if limits is None:
        return create_engine(
            url,
            pool_size=pool_size,
            max_overflow=max_overflow,
            pool_pre_ping=True,
            # PgBouncer in transaction mode cannot keep server-side prepared statements.
            connect_args={"prepare_threshold": None, "connect_timeout": 5},
        )
    engine = create_engine(
        url,
        pool_size=pool_size,
        max_overflow=max_overflow,
        pool_pre_ping=True,
        pool_timeout=limits.pool_timeout,
        connect_args={
            "prepare_threshold": None,
            "connect_timeout": limits.connect_timeout,
            "keepalives": 1,
            "keepalives_idle": limits.keepalives_idle,
            "keepalives_interval": limits.keepalives_interval,
            "keepalives_count": limits.keepalives_count,
        },
    )
    _configure_postgresql(engine, limits)
    return engine


def _configure_postgresql(engine: Engine, limits: DatabaseLimits) -> None:
    watchdog_seconds = limits.watchdog_seconds
    set_limits = limits.set_config_sql()

    @event.listens_for(engine, "do_connect")
    def _connect(_dialect: Any, _record: Any, cargs: Any, cparams: Any) -> GuardedConnection:
        connection = GuardedConnection.connect(*cargs, **cparams)
        connection.wait_limit = watchdog_seconds
        return connection

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Any) -> None:
        # Transaction-local (SET LOCAL), so PgBouncer transaction pooling never leaks them
        # to another client, and they hold from the first statement of each transaction.
        conn.exec_driver_sql(set_limits)

    # The pre-ping is a bare ";": it gets a short deadline of its own, so a pooled
    # connection behind a silent network is given up quickly (the pool then reconnects,
    # bounded by connect_timeout) instead of after a whole statement's allowance.
    dialect: Any = engine.dialect
    plain_ping = dialect.do_ping

    def bounded_ping(dbapi_connection: Any) -> bool:
        with wait_limit(limits.ping_timeout):
            return bool(plain_ping(dbapi_connection))

    dialect.do_ping = bounded_ping


def _configure_sqlite(engine: Engine) -> None:
    # pysqlite's own transaction handling breaks SAVEPOINT and takes locks lazily; take over:
    # BEGIN IMMEDIATE serialises writers up front so audit chains never race.
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Any) -> None:
        conn.exec_driver_sql("BEGIN IMMEDIATE")
