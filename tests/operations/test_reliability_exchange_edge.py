"""The exchange edge under a flood, on real uvicorn workers (2 processes, PostgreSQL).

Bodies of another media type and bodies over the size limit (declared, and streamed in
chunks without a length) are posted concurrently from a few source addresses (through
X-Forwarded-For: uvicorn trusts 127.0.0.1 as a proxy). Every one is answered 415 or 413,
none is a server error, and afterwards the database holds what the refusals leave behind:
quarantine rows counted per source (never more than the per-source cap, whatever worker
answered), every request counted exactly once, one audit event per row plus one per
power-of-two repeat, and the quarantine audit chain intact.
"""

from __future__ import annotations

import json
import threading
from collections import Counter
from collections.abc import Iterator

import httpx
import pytest
from sqlalchemy import select

from app.operations.liveserver import running_server
from app.transnational import incoming
from app.transnational.protocol import MAX_BODY_BYTES
from app.transnational.transport import MESSAGES_PATH
from tests.conftest import copy_keys
from tests.operations.test_reliability_support import NO_LIMITS, reliability

pytestmark = [reliability, pytest.mark.postgres_only]

DOCUMENT = json.dumps({"message": "a.b.c.d.e", "attachments": []}).encode()
CHUNK = 64 * 1024


def _chunks(total: int) -> Iterator[bytes]:
    sent = 0
    while sent < total:
        yield b"x" * CHUNK
        sent += CHUNK


# (source address, what is posted, expected status, reason code, how many times)
PLAN = [
    ("203.0.113.1", "text/plain", 415, "unsupported_media_type", 40),
    ("203.0.113.2", None, 415, "unsupported_media_type", 6),
    ("203.0.113.3", "multipart/form-data; boundary=b", 415, "unsupported_media_type", 6),
    ("203.0.113.4", "declared_oversize", 413, "oversize", 6),
    ("203.0.113.5", "streamed_oversize", 413, "oversize", 6),
]


def _post(client: httpx.Client, address: str, kind: str | None) -> httpx.Response:
    headers = {"X-Forwarded-For": address}
    if kind == "declared_oversize":
        headers["Content-Type"] = "application/json"
        return client.post(MESSAGES_PATH, content=b"x" * 1_500_000, headers=headers)
    if kind == "streamed_oversize":
        headers["Content-Type"] = "application/json"
        return client.post(MESSAGES_PATH, content=_chunks(1_200_000), headers=headers)
    if kind is not None:
        headers["Content-Type"] = kind
    return client.post(MESSAGES_PATH, content=DOCUMENT, headers=headers)


def test_refused_floods_leave_bounded_quarantine_rows_and_audit_events(
    fresh_db, keys_dir, tmp_path
) -> None:
    keys = copy_keys(keys_dir, tmp_path / "keys")
    statuses: Counter[tuple[str, int]] = Counter()
    problems: list[str] = []
    lock = threading.Lock()
    with running_server(
        fresh_db.app_url, keys, workers=2, log_dir=tmp_path, extra_env=NO_LIMITS
    ) as server:
        jobs = [(address, kind) for address, kind, _, _, n in PLAN for _ in range(n)]
        jobs.reverse()

        def worker() -> None:
            with httpx.Client(base_url=server.base_url, timeout=30) as client:
                while True:
                    with lock:
                        if not jobs:
                            return
                        address, kind = jobs.pop()
                    try:
                        response = _post(client, address, kind)
                    except httpx.TransportError as exc:
                        with lock:
                            problems.append(f"{address}: {type(exc).__name__}")
                        continue
                    with lock:
                        statuses[(address, response.status_code)] += 1
                        if response.status_code >= 500:
                            problems.append(response.text[:200])

        threads = [threading.Thread(target=worker) for _ in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=120)
        assert len(server.serving_worker_pids()) == 2

    assert problems == []
    for address, _, status, _, n in PLAN:
        assert statuses[(address, status)] == n, (address, statuses)

    from app.audit.models import AuditEvent
    from app.audit.service import verify_chains
    from app.config import Settings
    from app.db.rls import system_session
    from app.db.session import Database
    from app.transnational.models import QuarantinedPackage

    database = Database(Settings(environment="test", database_url=fresh_db.app_url, keys_dir=keys))
    try:
        with system_session(database.sessionmaker()) as s:
            rows = list(s.scalars(select(QuarantinedPackage)))
            events = list(
                s.scalars(
                    select(AuditEvent).where(AuditEvent.chain_key == incoming.QUARANTINE_CHAIN)
                )
            )
            report = verify_chains(s, [incoming.QUARANTINE_CHAIN])
    finally:
        database.dispose()

    assert report.ok, report.broken
    for address, _kind, _, reason, n in PLAN:
        mine = [r for r in rows if r.source_address == address]
        assert mine, address
        assert {r.reason_code for r in mine} == {reason}
        assert len(mine) == min(n, incoming.ROWS_PER_SOURCE), (address, len(mine))
        assert sum(r.repeat_count for r in mine) == n, address  # every refusal counted once
        for row in mine:
            assert row.body is None  # nothing of a refused body is kept at the edge
            if reason == "oversize":
                assert row.size > MAX_BODY_BYTES and row.sha256 is None
            else:
                assert row.size == len(DOCUMENT) and row.sha256 is not None
    opened = [e for e in events if e.action == "transnational_package_quarantined"]
    repeated = [e for e in events if e.action == "transnational_refusals_repeated"]
    assert sorted(str(e.entity_id) for e in opened) == sorted(str(r.id) for r in rows)
    expected_repeats = sum(
        sum(1 for k in range(2, r.repeat_count + 1) if k & (k - 1) == 0) for r in rows
    )
    assert len(repeated) == expected_repeats
    flood = max(rows, key=lambda r: r.repeat_count)
    assert flood.source_address == "203.0.113.1" and flood.repeat_count == 40 - 9
