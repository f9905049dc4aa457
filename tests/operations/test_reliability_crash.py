"""R5 crash consistency: uvicorn workers killed with SIGKILL while clients make transitions.

Two real workers on a loopback port, a fresh PostgreSQL database (fsync on), eight clients
flipping their own cases between stages, and a worker killed every 1-2.5 s (uvicorn's
supervisor starts a new one; the next kill waits until both serve again), at least
MIN_KILLS times. Afterwards: every case's version matches its transition events, every
acknowledged (2xx) transition is in the database and in the audit chain, and every chain
verifies.
"""

from __future__ import annotations

import os
import random
import signal
import threading
import time

import pytest

from app.operations.liveserver import running_server, seed
from tests.conftest import copy_keys
from tests.operations.test_reliability_support import (
    NO_LIMITS,
    Outcomes,
    check_invariants,
    reliability,
    transition_loop,
)

pytestmark = [reliability, pytest.mark.postgres_only]

CLIENTS = 8
DURATION = float(os.environ.get("PASSAGE_CRASH_SECONDS", "25"))
MIN_KILLS = 5


def test_sigkilled_workers_lose_no_acknowledged_write(fresh_db, keys_dir, tmp_path) -> None:
    keys = copy_keys(keys_dir, tmp_path / "keys")
    seeded = seed(fresh_db.app_url, keys, users=CLIENTS, cases_per_user=3)
    outcomes = Outcomes()
    stop = threading.Event()
    kills = 0
    with running_server(
        fresh_db.app_url, keys, workers=2, log_dir=tmp_path, extra_env=NO_LIMITS
    ) as server:
        threads = [
            threading.Thread(
                target=transition_loop,
                args=(
                    server.base_url,
                    username,
                    [str(c) for c in seeded.cases_by_user[username]],
                    stop,
                    outcomes,
                ),
                kwargs={"read_ratio": 0.2},
            )
            for username in seeded.usernames
        ]
        for t in threads:
            t.start()
        rng = random.Random(5)
        began = time.monotonic()
        # At least DURATION and MIN_KILLS. A replacement worker takes seconds to import the
        # app on a busy machine: a kill waits until every worker serves again, so that the
        # clients keep making transitions (and some are cut mid-request) between kills.
        while time.monotonic() - began < DURATION or (
            kills < MIN_KILLS and time.monotonic() - began < 4 * DURATION
        ):
            time.sleep(rng.uniform(1.0, 2.5))
            workers = server.serving_worker_pids()
            if len(workers) == 2:
                os.kill(rng.choice(workers), signal.SIGKILL)
                kills += 1
        time.sleep(3)  # let the last replacement worker serve a little
        stop.set()
        for t in threads:
            t.join(timeout=60)
    server_errors = [s for _, s, _ in outcomes.statuses if s >= 500]
    print(
        f"\nkills={kills} acked={len(outcomes.acked)} transport_errors="
        f"{len(outcomes.transport_errors)} 5xx={len(server_errors)}"
    )
    assert kills >= MIN_KILLS
    assert len(outcomes.acked) >= 100, "too few transitions to prove anything"
    assert outcomes.transport_errors, "no request was cut by a kill: the test proved nothing"
    assert server_errors == []
    figures = check_invariants(fresh_db.app_url, keys, outcomes)
    print(figures)
