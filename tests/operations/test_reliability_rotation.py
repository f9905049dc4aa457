"""R13 key rotation while serving, with `passage keys rotate` and `keys retire` as operators
run them (separate processes), two uvicorn workers registering and reading, then a restart.

Before 2026-12 a registration right after a rotation stored its data key under the old key
id while the new KEK wrapped it: unreadable for good (6 of 592 in an outside test). Here
every acknowledged registration must read back after rotate, retire and a restart.
"""

from __future__ import annotations

import os
import random
import subprocess
import sys
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from app.config import Settings
from app.crypto.keyring import FileKeyRing
from app.crypto.rotation import retire, rotate
from app.crypto.service import KeyService
from app.db.rls import system_session
from app.db.session import Database
from app.operations.liveserver import (
    Server,
    login,
    registration_payload,
    running_server,
    seed,
    start_server,
)
from tests.conftest import copy_keys
from tests.operations.test_reliability_support import NO_LIMITS, reliability

pytestmark = [reliability, pytest.mark.postgres_only]

PASSAGE = str(Path(sys.executable).parent / "passage")


def _passage(app_url: str, keys: Path, *argv: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PASSAGE_")}
    env.update(
        {
            "PASSAGE_ENVIRONMENT": "test",
            "PASSAGE_DATABASE_URL": app_url,
            "PASSAGE_KEYS_DIR": str(keys),
        }
    )
    return subprocess.run(
        [PASSAGE, *argv], env=env, capture_output=True, text=True, timeout=300, check=False
    )


@dataclass
class Acknowledged:
    """Registrations the server answered 201 to: (case id, given name)."""

    cases: list[tuple[str, str]] = field(default_factory=list)
    statuses: dict[int, int] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def count(self, status: int, problem: str | None = None) -> None:
        with self.lock:
            self.statuses[status] = self.statuses.get(status, 0) + 1
            if problem is not None and len(self.problems) < 20:
                self.problems.append(problem)


def _read_back(server: Server, username: str, cases: list[tuple[str, str]]) -> list[str]:
    """Every acknowledged case, read by a new session: the ids that did not read back."""
    client = login(server.base_url, username, timeout=30)
    failed = []
    for case_id, given in cases:
        response = client.get(f"/api/v1/cases/{case_id}")
        if response.status_code != 200 or response.json()["victim"].get("given_name") != given:
            failed.append(case_id)
    client.close()
    return failed


def test_rotate_and_retire_while_registering_and_reading_then_restart(
    fresh_db, keys_dir, tmp_path
) -> None:
    keys = copy_keys(keys_dir, tmp_path / "keys")
    seeded = seed(fresh_db.app_url, keys, users=4, cases_per_user=10)
    old_kid = FileKeyRing(keys).active_kid
    acked = Acknowledged()
    stop = threading.Event()
    reader_names, writer_names = seeded.usernames[:2], seeded.usernames[2:]
    with running_server(
        fresh_db.app_url, keys, workers=2, log_dir=tmp_path, extra_env=NO_LIMITS
    ) as server:

        def write(username: str) -> None:
            client = login(server.base_url, username, timeout=30)
            n = 0
            while not stop.is_set():
                n += 1
                payload = registration_payload(n)
                given = f"{username}-{n}"
                payload["victim"]["given_name"] = given
                try:
                    response = client.post("/api/v1/cases", json=payload)
                except httpx.TransportError as exc:
                    acked.count(0, type(exc).__name__)
                    continue
                if response.status_code == 201:
                    with acked.lock:
                        acked.cases.append((response.json()["id"], given))
                acked.count(response.status_code, None if response.is_success else response.text)
            client.close()

        def read(username: str) -> None:
            rng = random.Random(username)
            client = login(server.base_url, username, timeout=30)
            while not stop.is_set():
                with acked.lock:
                    pool = [c for c, _ in acked.cases] or [str(seeded.case_ids[0])]
                case_id = rng.choice(pool + [str(c) for c in seeded.case_ids])
                response = client.get(f"/api/v1/cases/{case_id}")
                acked.count(response.status_code, None if response.is_success else response.text)
            client.close()

        threads = [threading.Thread(target=write, args=(u,)) for u in writer_names]
        threads += [threading.Thread(target=read, args=(u,)) for u in reader_names]
        for t in threads:
            t.start()
        time.sleep(2)
        rotated = _passage(fresh_db.app_url, keys, "keys", "rotate", "--batch-size", "10")
        time.sleep(2)
        # Retire while the writers still write: it waits out late writers, then checks.
        retired = _passage(fresh_db.app_url, keys, "keys", "retire", old_kid)
        time.sleep(1)
        stop.set()
        for t in threads:
            t.join(timeout=60)
    assert rotated.returncode == 0, rotated.stderr
    assert retired.returncode == 0, retired.stderr
    assert not (keys / f"kek-{old_kid}.key").exists()

    # A restart: new workers, a ring read from disk, nothing cached.
    server = start_server(fresh_db.app_url, keys, workers=2, log_dir=tmp_path, extra_env=NO_LIMITS)
    try:
        unreadable = _read_back(server, reader_names[0], acked.cases)
        seeded_client = login(server.base_url, reader_names[1], timeout=30)
        seeded_unreadable = [
            c for c in seeded.case_ids if seeded_client.get(f"/api/v1/cases/{c}").status_code != 200
        ]
        seeded_client.close()
    finally:
        server.stop()
    status = _passage(fresh_db.app_url, keys, "keys", "status")
    print(
        f"\n{rotated.stdout.strip()}; {retired.stdout.strip()}; "
        f"{len(acked.cases)} registrations acknowledged during the run, answers {acked.statuses}; "
        f"unreadable after restart: {len(unreadable) + len(seeded_unreadable)}"
    )
    assert status.returncode == 0, status.stderr
    states = [line.split()[1] for line in status.stdout.splitlines()]
    assert states.count("active") == 1 and states.count("retired") == 1
    assert len(acked.cases) > 10
    assert unreadable == [] and seeded_unreadable == []
    assert set(acked.statuses) == {200, 201}, (acked.statuses, acked.problems[:3])


class RotationMachine(RuleBasedStateMachine):
    """Any interleaving of register, read, rotate, retire and restart, against real workers,
    leaves every acknowledged record readable."""

    app_url: str
    keys: Path
    log_dir: Path
    username: str

    def __init__(self) -> None:
        super().__init__()
        self.server: Server | None = None
        self.client: httpx.Client | None = None
        self.acked: list[tuple[str, str]] = []
        self.n = 0
        settings_ = Settings(environment="test", database_url=self.app_url, keys_dir=self.keys)
        self.database = Database(settings_)
        self.ops = KeyService(FileKeyRing(self.keys))  # the operator's process

    def _sessions(self):
        return system_session(self.database.sessionmaker())

    def _start(self) -> None:
        self.server = start_server(
            self.app_url, self.keys, workers=2, log_dir=self.log_dir, extra_env=NO_LIMITS
        )
        self.client = login(self.server.base_url, self.username, timeout=30)

    @initialize()
    def boot(self) -> None:
        self._start()

    @rule()
    def register(self) -> None:
        assert self.client is not None
        self.n += 1
        payload = registration_payload(self.n)
        given = f"m{uuid.uuid4().hex[:10]}"
        payload["victim"]["given_name"] = given
        response = self.client.post("/api/v1/cases", json=payload)
        assert response.status_code == 201, response.text
        self.acked.append((response.json()["id"], given))

    @rule(pick=st.integers(min_value=0))
    def read(self, pick: int) -> None:
        if not self.acked:
            return
        assert self.client is not None
        case_id, given = self.acked[pick % len(self.acked)]
        response = self.client.get(f"/api/v1/cases/{case_id}")
        assert response.status_code == 200, response.text
        assert response.json()["victim"]["given_name"] == given

    @rule()
    def rotate(self) -> None:
        rotate(self._sessions, self.ops, batch_size=3)

    @rule()
    def retire_oldest(self) -> None:
        ring = self.ops.keyring
        ring.reload()
        usable = [r.kid for r in ring.records() if not r.retired and r.kid != ring.active_kid]
        if usable:
            retire(self._sessions, self.ops, usable[0])

    @rule()
    def restart(self) -> None:
        self.teardown()
        self._start()

    @invariant()
    def one_active_key(self) -> None:
        ring = FileKeyRing(self.keys)
        assert ring.active_kid in ring.usable_kids()

    def teardown(self) -> None:
        if self.client is not None:
            self.client.close()
            self.client = None
        if self.server is not None:
            server, self.server = self.server, None
            try:
                assert _read_back(server, self.username, self.acked) == []
            finally:
                server.stop()


def test_any_interleaving_keeps_every_acknowledged_record_readable(
    fresh_db, keys_dir, tmp_path
) -> None:
    keys = copy_keys(keys_dir, tmp_path / "keys")
    seeded = seed(fresh_db.app_url, keys, users=1, cases_per_user=2)
    machine = type(
        "BoundRotationMachine",
        (RotationMachine,),
        {
            "app_url": fresh_db.app_url,
            "keys": keys,
            "log_dir": tmp_path,
            "username": seeded.usernames[0],
        },
    )
    runner = settings(
        max_examples=int(os.environ.get("PASSAGE_ROTATION_EXAMPLES", "3")),
        stateful_step_count=10,
        deadline=None,
        suppress_health_check=list(HealthCheck),
        derandomize=True,
    )(machine).TestCase
    runner().runTest()
