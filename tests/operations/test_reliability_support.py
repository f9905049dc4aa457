"""Shared pieces of the reliability suite (this module holds no tests).

`reliability` marks the suite (declared in pyproject.toml); `make test-reliability` runs
it on PostgreSQL and `make test` / `make test-pg` leave it out.
"""

from __future__ import annotations

import random
import threading
import time
import uuid
from dataclasses import dataclass, field

import httpx
import pytest

reliability = pytest.mark.reliability

NO_LIMITS = {"PASSAGE_RATE_LIMIT_ENABLED": "false"}


@dataclass
class Outcomes:
    acked: list[tuple[str, int]] = field(default_factory=list)  # (case id, version) answered 2xx
    statuses: list[tuple[float, int, float]] = field(default_factory=list)  # (start, status, secs)
    transport_errors: list[float] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def record(self, start: float, status: int) -> None:
        with self.lock:
            self.statuses.append((start, status, time.monotonic() - start))


def transition_loop(
    base_url: str,
    username: str,
    case_ids: list[str],
    stop: threading.Event,
    out: Outcomes,
    *,
    read_ratio: float = 0.5,
    timeout: float = 15.0,
) -> None:
    """Flip owned cases between lost_contact and their stage; read them in between."""
    from app.operations.liveserver import login

    rng = random.Random(username)
    client: httpx.Client | None = None
    while not stop.is_set():
        start = time.monotonic()
        try:
            if client is None:
                client = login(base_url, username, timeout=timeout)
            case_id = rng.choice(case_ids)
            if rng.random() < read_ratio:
                read = client.get(f"/api/v1/cases/{case_id}")
                out.record(start, read.status_code)
                continue
            state = client.get(f"/api/v1/cases/{case_id}/transitions")
            out.record(start, state.status_code)
            if state.status_code != 200:
                time.sleep(0.05)
                continue
            body = state.json()
            event = "contact_restored" if body["stage"] == "lost_contact" else "report_lost_contact"
            start = time.monotonic()
            moved = client.post(
                f"/api/v1/cases/{case_id}/transitions",
                json={"event": event},
                headers={"If-Match": f'"{body["version"]}"'},
            )
            out.record(start, moved.status_code)
            if moved.status_code == 200:
                with out.lock:
                    out.acked.append((case_id, moved.json()["version"]))
        except httpx.TransportError:
            with out.lock:
                out.transport_errors.append(start)
            time.sleep(0.05)
        except httpx.HTTPStatusError:  # login refused while the database is away
            client = None
            time.sleep(0.2)
    if client is not None:
        client.close()


def check_invariants(app_url: str, keys_dir, outcomes: Outcomes) -> dict[str, int]:
    """0 cases without their audit events, 0 acknowledged writes lost, every chain valid."""
    from sqlalchemy import func, select

    from app.audit.models import AuditEvent
    from app.audit.service import verify_chains
    from app.cases.models import Case
    from app.config import Settings
    from app.db.rls import system_session
    from app.db.session import Database

    database = Database(Settings(environment="test", database_url=app_url, keys_dir=keys_dir))
    try:
        with system_session(database.sessionmaker()) as s:
            versions = {str(c.id): c.version for c in s.scalars(select(Case))}
            transitions = dict(
                s.execute(
                    select(AuditEvent.case_id, func.count())
                    .where(AuditEvent.action == "transition")
                    .group_by(AuditEvent.case_id)
                ).all()
            )
            registered = set(
                s.scalars(select(AuditEvent.case_id).where(AuditEvent.action == "case_registered"))
            )
            recorded = {
                (str(e.case_id), int(e.details["version"]))
                for e in s.scalars(select(AuditEvent).where(AuditEvent.action == "transition"))
            }
            report = verify_chains(s)
    finally:
        database.dispose()
    without_audit = [
        case_id
        for case_id, version in versions.items()
        if transitions.get(uuid.UUID(case_id), 0) != version - 1
        or uuid.UUID(case_id) not in registered
    ]
    lost = [(c, v) for c, v in outcomes.acked if versions.get(c, 0) < v or (c, v) not in recorded]
    assert without_audit == [], f"cases whose audit events do not match: {without_audit[:5]}"
    assert lost == [], f"acknowledged writes lost: {lost[:5]}"
    assert report.ok, report.broken[:3]
    return {
        "cases": len(versions),
        "transitions": sum(transitions.values()),
        "chains": report.chains,
    }
