"""Issue 10 finding 4: a silent network partition between the app and PostgreSQL.

Two real uvicorn workers reach the (shared) PostgreSQL server through a TCP proxy
(tests/silent_proxy.py) that, for PARTITION seconds, stops forwarding without closing
anything: the workers' kernels keep getting ACKs, so only the app's own client-side
deadline can end a wait. Six clients log in and read their cases meanwhile and a prober
calls /readyz. Every request must answer within the statement timeout + 1 s plus its own
work (the slowest healthy answer of its kind before the partition, at least CLIENT_SLACK: a
login hashes a password, seconds on two loaded cores), with 503 and Retry-After while the
database cannot be reached, never a 500 or a hang; /readyz must answer 503 within 1 s;
after the partition heals requests succeed again.
"""

from __future__ import annotations

import random
import threading
import time
from dataclasses import dataclass, field

import httpx
import pytest
from sqlalchemy.engine import make_url

from app.operations.liveserver import PASSWORD, running_server, seed
from tests.conftest import copy_keys
from tests.operations.test_reliability_support import NO_LIMITS, reliability
from tests.silent_proxy import silent_proxy

pytestmark = [reliability, pytest.mark.postgres_only]

CLIENTS = 6
PARTITION = 10.0
STATEMENT_TIMEOUT = 2.0
BOUND = STATEMENT_TIMEOUT + 1.0
CLIENT_SLACK = 1.0
READY_BOUND = 1.0
RECOVERY_BOUND = 5.0
LIMITS = {
    **NO_LIMITS,
    "PASSAGE_DB_STATEMENT_TIMEOUT_SECONDS": str(STATEMENT_TIMEOUT),
    "PASSAGE_DB_LOCK_TIMEOUT_SECONDS": "1",
    # connect_timeout cannot go below 2 s (libpq); a pooled connection behind the silent
    # network is given up after the ping deadline, then reconnecting takes connect_timeout:
    # 0.5 + 2 <= BOUND. Waiting for a pool slot is bounded the same way.
    "PASSAGE_DB_CONNECT_TIMEOUT_SECONDS": "2",
    "PASSAGE_DB_PING_TIMEOUT_SECONDS": "0.5",
    "PASSAGE_DB_POOL_TIMEOUT_SECONDS": "0.5",
}


@dataclass
class Answer:
    kind: str
    start: float
    seconds: float
    status: int  # 0: no answer (transport error or client timeout)
    retry_after: str | None


@dataclass
class Record:
    answers: list[Answer] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def call(self, kind: str, send: object) -> httpx.Response | None:
        start = time.monotonic()
        try:
            response: httpx.Response | None = send()  # type: ignore[operator]
        except httpx.HTTPError:
            response = None
        answer = Answer(
            kind,
            start,
            time.monotonic() - start,
            response.status_code if response is not None else 0,
            response.headers.get("Retry-After") if response is not None else None,
        )
        with self.lock:
            self.answers.append(answer)
        return response


def client_loop(
    base_url: str, username: str, case_ids: list[str], stop: threading.Event, record: Record
) -> None:
    rng = random.Random(username)
    client: httpx.Client | None = None
    while not stop.is_set():
        if client is None or rng.random() < 0.2:
            if client is not None:
                client.close()
            client = httpx.Client(base_url=base_url, timeout=15, headers={"Origin": base_url})
            response = record.call(
                "login",
                lambda c=client: c.post(
                    "/api/v1/auth/login", json={"username": username, "password": PASSWORD}
                ),
            )
            if response is None or response.status_code != 200:
                client.close()
                client = None
                time.sleep(0.1)
                continue
            client.headers["X-CSRF-Token"] = response.json()["csrf_token"]
        case_id = rng.choice(case_ids)
        record.call("read", lambda c=client, i=case_id: c.get(f"/api/v1/cases/{i}"))
    if client is not None:
        client.close()


def probe_loop(base_url: str, stop: threading.Event, record: Record) -> None:
    with httpx.Client(base_url=base_url, timeout=15) as client:
        while not stop.is_set():
            record.call("readyz", lambda: client.get("/readyz"))
            time.sleep(0.3)


def test_silent_partition_answers_503_in_bounded_time_and_recovers(
    fresh_db, keys_dir, tmp_path
) -> None:
    keys = copy_keys(keys_dir, tmp_path / "keys")
    seeded = seed(fresh_db.app_url, keys, users=CLIENTS, cases_per_user=2)
    upstream = make_url(fresh_db.app_url)
    record = Record()
    stop = threading.Event()
    with (
        silent_proxy((upstream.host or "127.0.0.1", upstream.port or 5432)) as proxy,
        running_server(
            proxy.url(fresh_db.app_url), keys, workers=2, log_dir=tmp_path, extra_env=LIMITS
        ) as server,
    ):
        threads = [
            threading.Thread(
                target=client_loop,
                args=(
                    server.base_url,
                    name,
                    [str(c) for c in seeded.cases_by_user[name]],
                    stop,
                    record,
                ),
            )
            for name in seeded.usernames
        ]
        threads.append(threading.Thread(target=probe_loop, args=(server.base_url, stop, record)))
        for t in threads:
            t.start()
        time.sleep(4)
        down_at = time.monotonic()
        proxy.partition()
        time.sleep(PARTITION)
        proxy.heal()
        up_at = time.monotonic()
        time.sleep(RECOVERY_BOUND + 4)
        stop.set()
        for t in threads:
            t.join(timeout=30)
        log = server.log_path.read_text()

    answers = record.answers
    requests = [a for a in answers if a.kind != "readyz"]
    probes = [a for a in answers if a.kind == "readyz"]
    before = [a for a in requests if a.start + a.seconds < down_at]
    healthy_slowest = max((a.seconds for a in before), default=0.0)
    # Started while the network was silent and bound to end before it healed.
    during = [a for a in requests if down_at <= a.start < up_at - BOUND - CLIENT_SLACK]
    overlapping = [a for a in requests if a.start < up_at and a.start + a.seconds > down_at]
    probes_during = [a for a in probes if down_at <= a.start < up_at - READY_BOUND]
    late = [a for a in requests if a.start > up_at + RECOVERY_BOUND]
    late_probes = [a for a in probes if a.start > up_at + RECOVERY_BOUND]
    slowest = max((a.seconds for a in overlapping), default=0.0)
    slowest_by_kind = {
        kind: max((a.seconds for a in overlapping if a.kind == kind), default=0.0)
        for kind in ("login", "read")
    }
    print(
        f"\nbefore: {len(before)} answers, slowest {healthy_slowest:.2f}s; "
        f"partition: {len(overlapping)} requests {sorted({a.status for a in overlapping})}, "
        f"slowest {slowest:.2f}s (login {slowest_by_kind['login']:.2f}s, "
        f"read {slowest_by_kind['read']:.2f}s); "
        f"/readyz {len(probes_during)} probes {sorted({a.status for a in probes_during})}, "
        f"slowest {max((a.seconds for a in probes_during), default=0):.2f}s; "
        f"after +{RECOVERY_BOUND:g}s: {len(late)} requests {sorted({a.status for a in late})}"
    )
    for a in answers:
        if a.seconds > 3.5:
            print("slow", a.kind, round(a.start - down_at, 2), round(a.seconds, 2), a.status)
    assert before, "no request answered before the partition"
    assert during, "no request reached the app during the partition"
    assert all(a.status == 503 and (a.retry_after or "").isdigit() for a in during), sorted(
        {(a.kind, a.status) for a in during}
    )
    assert {a.status for a in overlapping} <= {200, 503}, sorted({a.status for a in overlapping})
    assert all(a.retry_after for a in overlapping if a.status == 503)
    for kind, seconds in slowest_by_kind.items():
        # The request's own work (a login's password hash takes seconds on a loaded 2-core
        # machine) comes on top of the wait for the database.
        own_work = max([CLIENT_SLACK] + [a.seconds for a in before if a.kind == kind])
        assert seconds < BOUND + own_work, (kind, seconds, own_work)
    assert probes_during and all(a.status == 503 for a in probes_during)
    # Every probe from the partition on (the very first ones, on cold workers, may not).
    assert max(a.seconds for a in probes if a.start >= down_at) < READY_BOUND
    assert late and all(a.status == 200 for a in late), sorted({a.status for a in late})
    assert late_probes and all(a.status == 200 for a in late_probes)
    assert "Traceback" not in log
    assert "database_wait_deadline_exceeded" in log  # the watchdog, not luck, ended the waits
