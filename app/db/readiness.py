"""The database part of `/readyz`, answered within a fixed time whatever the database does.

The check runs on a small thread pool of its own and the probe waits for it at most
`db_readiness_timeout_seconds` (0.8 s by default): a probe that times out (Kubernetes
gives it 1 s) would count as a failure anyway, and a slow answer must not tie up request
threads. At most two checks are ever outstanding per process; while both are, the next
probe answers "unreachable" at once.

Inside the check, the query is bounded by the same time (the watchdog's per-thread limit)
and the pool's pre-ping by its own deadline (`ping_timeout`, which replaces it for the
ping). The watchdog does not see the rest: waiting for a pooled connection is bounded by
the pool's `pool_timeout` only, and opening a connection by libpq's `connect_timeout` only
(psycopg connects without going through `Connection.wait`). So a check stuck behind a
silent network or a full pool may end well after the probe has answered: it keeps its
slot for up to about pool_timeout + ping_timeout + connect_timeout + the budget (a
pre-ping that fails reconnects): 5 + 2 + 5 + 0.8 s with the defaults, longer if libpq
tries several addresses (connect_timeout applies to each).
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

from sqlalchemy import text
from sqlalchemy.orm import Session

from app.db.watchdog import wait_limit
from app.logging import get_logger

log = get_logger("passage.db")

_CONCURRENT_CHECKS = 2


class ReadinessCheck:
    def __init__(
        self, sessionmaker: Callable[[], Session], expected_head: str | None, budget: float
    ) -> None:
        self._sessionmaker = sessionmaker
        self._expected_head = expected_head
        self.budget = budget
        self._slots = threading.BoundedSemaphore(_CONCURRENT_CHECKS)
        self._executor = ThreadPoolExecutor(
            max_workers=_CONCURRENT_CHECKS, thread_name_prefix="passage-readyz"
        )

    async def database(self) -> tuple[str, str]:
        """(database, migrations): ("ok"|"unreachable", "ok"|"behind"|"unknown")."""
        if not self._slots.acquire(blocking=False):
            # Earlier checks are still stuck: the database is not answering.
            return "unreachable", "unknown"
        try:
            future = self._executor.submit(self._check)
        except RuntimeError:  # shut down
            self._slots.release()
            return "unreachable", "unknown"
        future.add_done_callback(lambda _: self._slots.release())
        try:
            current = await asyncio.wait_for(asyncio.wrap_future(future), self.budget)
        except TimeoutError:
            log.warning("readiness_database_timeout", seconds=self.budget)
            return "unreachable", "unknown"
        except Exception as exc:
            log.warning("readiness_database_unreachable", exc_type=type(exc).__name__)
            return "unreachable", "unknown"
        return "ok", "ok" if current == self._expected_head else "behind"

    def _check(self) -> str | None:
        with wait_limit(self.budget), self._sessionmaker() as session:
            return session.execute(text("SELECT version_num FROM alembic_version")).scalar()

    def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)
