"""A client-side deadline on every wait for PostgreSQL.

Server-side timeouts (statement_timeout, lock_timeout) and TCP keepalives do not help when
the network path stops forwarding without closing: a proxy or PgBouncer that still ACKs
our packets keeps the kernel happy, the server never sees the statement, and psycopg waits
on the socket forever. So every wait on a connection is armed here with a deadline; one
monitor thread per process shuts the socket down (`shutdown(SHUT_RDWR)` on a duplicate of
its descriptor) when a deadline passes. The blocked wait then returns at once with an
`OperationalError`, psycopg marks the connection broken and SQLAlchemy invalidates it
instead of returning it to the pool.

`GuardedConnection` is the psycopg connection class the app's engine creates (see
app/db/engine.py): its `wait()` is what every statement, fetch, COMMIT, ROLLBACK and pool
pre-ping goes through, so all of them are covered. Connecting is bounded separately by
libpq's connect_timeout.
"""

from __future__ import annotations

import itertools
import os
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg.abc import RV, PQGen

from app.logging import get_logger

log = get_logger("passage.db")

# A shorter limit for the waits of the current thread or task (pool pre-ping, /readyz).
_limit_override: ContextVar[float | None] = ContextVar("passage_db_wait_limit", default=None)


@contextmanager
def wait_limit(seconds: float) -> Iterator[None]:
    """Bound every database wait in this block by `seconds` (never longer than usual)."""
    token = _limit_override.set(seconds)
    try:
        yield
    finally:
        _limit_override.reset(token)


class DeadlineExceeded(psycopg.OperationalError):
    """The database did not answer in time; the watchdog closed the connection."""


_IDLE_POLL_SECONDS = 0.25


@dataclass
class _Armed:
    deadline: float
    connection: psycopg.Connection[Any]
    seconds: float


class Watchdog:
    """One monitor thread per process; registrations in a dict under a lock."""

    def __init__(self) -> None:
        self._reset()
        os.register_at_fork(after_in_child=self._reset)

    def _reset(self) -> None:
        # After a fork the monitor thread does not exist in the child: start afresh.
        self._lock = threading.Lock()
        self._wake = threading.Condition(self._lock)
        self._armed: dict[int, _Armed] = {}
        self._fired: set[int] = set()
        self._tokens = itertools.count()
        self._next_wake = float("inf")
        self._thread: threading.Thread | None = None
        self.fired_total = 0

    def arm(self, connection: psycopg.Connection[Any], seconds: float) -> int:
        deadline = time.monotonic() + seconds
        with self._lock:
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._monitor, name="passage-db-watchdog", daemon=True
                )
                self._thread.start()
            token = next(self._tokens)
            self._armed[token] = _Armed(deadline, connection, seconds)
            if deadline < self._next_wake:
                self._wake.notify()
        return token

    def disarm(self, token: int) -> bool:
        """Forget a registration; True when the watchdog had already fired for it."""
        with self._lock:
            if self._armed.pop(token, None) is not None:
                return False
            self._fired.discard(token)
            return True

    def armed(self) -> int:
        with self._lock:
            return len(self._armed)

    def _monitor(self) -> None:
        with self._lock:
            while True:
                now = time.monotonic()
                for token in [t for t, a in self._armed.items() if a.deadline <= now]:
                    armed = self._armed.pop(token)
                    self._fired.add(token)
                    self.fired_total += 1
                    # Under the lock: the waiting thread cannot disarm (and so cannot close
                    # the connection and free its descriptor) while we shut the socket down.
                    try:
                        _shut_down(armed.connection)
                        log.warning("database_wait_deadline_exceeded", seconds=armed.seconds)
                    except Exception:  # noqa: S110 (the monitor must outlive any one failure)
                        pass
                # Idle, look again shortly: then arming a statement's deadline (always later
                # than that) needs no wake-up, only a dict entry under the lock.
                self._next_wake = min(
                    (a.deadline for a in self._armed.values()), default=now + _IDLE_POLL_SECONDS
                )
                self._wake.wait(max(self._next_wake - now, 0.001))


def _shut_down(connection: psycopg.Connection[Any]) -> None:
    try:
        fd = connection.pgconn.socket
        duplicate = socket.socket(fileno=os.dup(fd))
    except (OSError, psycopg.Error):
        return  # already closed: nothing is waiting on it any more
    try:
        duplicate.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
    finally:
        duplicate.close()


WATCHDOG = Watchdog()


class GuardedConnection(psycopg.Connection[Any]):
    """A psycopg connection whose every wait is bounded by the watchdog."""

    # Seconds any single wait may take; set by the engine at connect (None: unbounded).
    wait_limit: float | None = None

    def wait(
        self,
        gen: PQGen[RV],
        interval: float = 0.1,
        timeout: float | None = None,
    ) -> RV:
        limit = self.wait_limit
        override = _limit_override.get()
        if override is not None:
            limit = override if limit is None else min(limit, override)
        if limit is None:
            return super().wait(gen, interval, timeout)
        token = WATCHDOG.arm(self, limit)
        fired = False
        try:
            return super().wait(gen, interval, timeout)
        except psycopg.OperationalError as exc:
            fired = WATCHDOG.disarm(token)
            token = -1
            if fired:
                self.pgconn.finish()  # closed and broken, whatever libpq concluded
                raise DeadlineExceeded(
                    f"no answer from the database within {limit:g} s; connection closed"
                ) from exc
            raise
        finally:
            if token >= 0:
                # Fired just as the answer arrived: the result stands, the connection is
                # dead and its next use fails as a disconnect.
                WATCHDOG.disarm(token)
