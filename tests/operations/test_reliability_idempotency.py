"""Idempotency after a crash: a worker SIGKILLed mid-registration does not block the key.

Two real uvicorn workers on a fresh PostgreSQL database. The test holds `LOCK TABLE cases IN
SHARE MODE`, so a registration sent with an Idempotency-Key claims its key, inserts its
victim and then waits for the lock, mid-transaction. The worker serving it (found from its
database connection's client port) is SIGKILLed, the lock is released, and the client
retries with the same key, honouring Retry-After as a client would. Before issue 10 the
retry got 409 for the 30 s lease; now the dead worker's advisory lock is gone with its
connection and the retry registers the victim. Exactly one victim and one case exist.
"""

from __future__ import annotations

import os
import signal
import threading
import time
import uuid
from pathlib import Path

import httpx
import pytest
from sqlalchemy import create_engine, func, select, text

from app.operations.liveserver import login, registration_payload, running_server, seed
from tests.conftest import copy_keys
from tests.operations.test_reliability_support import NO_LIMITS, reliability

pytestmark = [reliability, pytest.mark.postgres_only]


def _socket_inodes(pid: int) -> set[str]:
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            target = os.readlink(fd)
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[len("socket:[") : -1])
    return inodes


def _process_with_local_port(pids: list[int], port: int) -> int | None:
    """The process owning the TCP socket whose local port is `port` (from /proc/net/tcp*)."""
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            if int(fields[1].rsplit(":", 1)[1], 16) == port:
                inodes.add(fields[9])
    return next((pid for pid in pids if _socket_inodes(pid) & inodes), None)


def test_a_retry_after_a_worker_killed_mid_registration_succeeds_at_once(
    fresh_db, keys_dir, tmp_path
) -> None:
    keys = copy_keys(keys_dir, tmp_path / "keys")
    seeded = seed(fresh_db.app_url, keys, users=1, cases_per_user=0)
    owner = create_engine(fresh_db.owner_url)
    key = {"Idempotency-Key": str(uuid.uuid4())}
    payload = registration_payload(7)
    try:
        with running_server(
            fresh_db.app_url, keys, workers=2, log_dir=tmp_path, extra_env=NO_LIMITS
        ) as server:
            client = login(server.base_url, seeded.usernames[0], timeout=30)
            first: list[BaseException | httpx.Response] = []

            def register() -> None:
                try:
                    first.append(client.post("/api/v1/cases", json=payload, headers=key))
                except httpx.TransportError as exc:
                    first.append(exc)

            watcher = owner.connect().execution_options(isolation_level="AUTOCOMMIT")
            with owner.connect() as blocker, watcher:
                blocker.execute(text("LOCK TABLE cases IN SHARE MODE"))
                thread = threading.Thread(target=register)
                thread.start()
                # The registration waits for the lock (the app's lock_timeout is 3 s).
                deadline, port = time.monotonic() + 2.5, None
                while port is None and time.monotonic() < deadline:
                    port = watcher.execute(
                        text(
                            "SELECT client_port FROM pg_stat_activity WHERE datname = "
                            "current_database() AND wait_event_type = 'Lock' AND pid <> "
                            "pg_backend_pid()"
                        )
                    ).scalar()
                    time.sleep(0.02)
                assert port is not None, "the registration never waited for the lock"
                claims = watcher.execute(text("SELECT state FROM idempotency_keys")).scalars()
                assert list(claims) == ["in_flight"]
                worker = _process_with_local_port(server.serving_worker_pids(), port)
                assert worker is not None, "no worker owns the registration's connection"
                os.kill(worker, signal.SIGKILL)
                killed = time.monotonic()
                blocker.rollback()  # the lock goes; the dead worker's transaction aborts
            thread.join(timeout=30)
            assert first and isinstance(first[0], httpx.TransportError), first

            # The client retries with the same key, as a client honouring Retry-After does.
            answers: list[int | str] = []
            while time.monotonic() - killed < 15:
                try:
                    retry = client.post("/api/v1/cases", json=payload, headers=key)
                except httpx.TransportError as exc:
                    answers.append(type(exc).__name__)
                    time.sleep(0.1)
                    continue
                answers.append(retry.status_code)
                if retry.status_code != 409:
                    break
                time.sleep(float(retry.headers.get("retry-after", "1")))
            waited = time.monotonic() - killed
            print(f"\nretry answered {answers[-1]} {waited:.3f} s after the kill: {answers}")
            assert retry.status_code == 201, retry.text
            assert waited < 5
            replay = client.post("/api/v1/cases", json=payload, headers=key)
            assert replay.status_code == 201 and replay.headers["idempotent-replayed"] == "true"
            assert replay.json()["id"] == retry.json()["id"]
            client.close()
        with owner.connect() as conn:
            from app.cases.models import Case
            from app.victims.models import Victim

            assert conn.scalar(select(func.count()).select_from(Case)) == 1
            assert conn.scalar(select(func.count()).select_from(Victim)) == 1
            assert str(conn.scalar(select(Case.id))) == retry.json()["id"]
            row = conn.execute(text("SELECT state, resource_id FROM idempotency_keys")).one()
            assert row.state == "completed" and str(row.resource_id) == retry.json()["id"]
    finally:
        owner.dispose()
