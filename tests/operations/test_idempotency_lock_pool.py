"""The idempotency claim-lock pool (app/operations/idempotency.py, docs/reliability.md):
as large as the request pool, and closed with it by Database.dispose()."""

from __future__ import annotations

import time
import uuid
from dataclasses import replace

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.pool import QueuePool

from app.db.engine import DatabaseLimits, make_engine
from app.db.session import Database
from app.operations import idempotency

pytestmark = pytest.mark.postgres_only


def _key() -> tuple[int, int]:
    return idempotency.lock_key(uuid.uuid4(), uuid.uuid4().bytes)


def _alive(owner_url: str, pids: list[int]) -> list[int]:
    admin = create_engine(owner_url)
    try:
        with admin.connect() as conn:
            found = conn.execute(
                text("SELECT pid FROM pg_stat_activity WHERE pid = ANY(:pids)"), {"pids": pids}
            )
            return [int(pid) for pid in found.scalars()]
    finally:
        admin.dispose()


def test_dispose_closes_the_claim_lock_pool(live) -> None:
    locks = idempotency.claim_locks(live.database)
    assert locks is not None
    holds = [locks.try_hold(_key()) for _ in range(3)]
    pids = [h.execute(text("SELECT pg_backend_pid()")).scalar_one() for h in holds if h]
    assert len(pids) == 3
    for hold in holds:
        idempotency.Hold(hold).end()  # back in the pool, idle: still connected
    pool = locks.engine.pool
    assert pool.checkedout() == 0 and pool.checkedin() >= 1
    assert _alive(live.env.owner_url, pids)

    live.database.dispose()

    pool = locks.engine.pool  # dispose() swaps in a fresh, empty pool
    assert pool.checkedin() == 0 and pool.checkedout() == 0
    deadline = time.monotonic() + 5
    while _alive(live.env.owner_url, pids) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _alive(live.env.owner_url, pids) == []
    # Still usable afterwards, as the request pool is.
    again = locks.try_hold(_key())
    assert again is not None
    idempotency.Hold(again).end()


def test_the_lock_pool_is_as_large_as_the_request_pool(live) -> None:
    """A worker whose request pool opens 24 connections holds 24 claim locks at once: none
    of them waits for the pool (which would answer 503 after pool_timeout)."""
    limits = replace(DatabaseLimits.from_settings(live.settings), pool_timeout=1.0)
    engine = make_engine(live.settings.database_url, pool_size=12, max_overflow=12, limits=limits)
    database = Database(live.settings, engine)
    try:
        assert idempotency.lock_pool_size(database.engine) == (2, 22)
        locks = idempotency.claim_locks(database, limits)
        assert locks is not None
        pool = locks.engine.pool
        assert isinstance(pool, QueuePool) and pool.size() == 2
        holds = []
        try:
            for _ in range(24):
                hold = locks.try_hold(_key())
                assert hold is not None
                holds.append(hold)
            assert pool.checkedout() == 24
        finally:
            for hold in holds:
                idempotency.Hold(hold).end()
    finally:
        database.dispose()
    assert locks.engine.pool.checkedin() == 0


def test_the_default_pools_match() -> None:
    request = make_engine("postgresql+psycopg://nobody@127.0.0.1:1/none", limits=DatabaseLimits())
    try:
        pool = request.pool
        assert isinstance(pool, QueuePool)
        size, overflow = idempotency.lock_pool_size(request)
        assert size + overflow == pool.size() + pool._max_overflow == 20
    finally:
        request.dispose()
