"""R14 database outage: PostgreSQL gone for 30 s under load, then back.

A throwaway cluster (initdb in a temporary directory, its own port; the shared server is
never touched), two uvicorn workers, six clients. While the database is down every answer
must be a clean 503 (never a 500) within a bounded time; within 10 s of the database
coming back requests succeed again; and nothing half-written survives (the crash-test
invariants hold).
"""

from __future__ import annotations

import os
import threading
import time

import pytest

from app.operations.liveserver import Cluster, create_database, running_server, seed
from tests.conftest import copy_keys
from tests.operations.test_reliability_support import (
    NO_LIMITS,
    Outcomes,
    check_invariants,
    reliability,
    transition_loop,
)

pytestmark = [reliability, pytest.mark.postgres_only]

OUTAGE = float(os.environ.get("PASSAGE_OUTAGE_SECONDS", "30"))
RECOVERY_BOUND = 10.0
ANSWER_BOUND = 8.0  # connect_timeout is 5 s; nothing may hang beyond this
CLIENTS = 6


def test_database_outage_gives_clean_503s_and_recovers(keys_dir, tmp_path) -> None:
    cluster = Cluster.create()
    cluster.start()
    try:
        _, app_url = create_database(cluster.admin_url, "passage")
        keys = copy_keys(keys_dir, tmp_path / "keys")
        seeded = seed(app_url, keys, users=CLIENTS, cases_per_user=3)
        outcomes = Outcomes()
        stop = threading.Event()
        with running_server(
            app_url, keys, workers=2, log_dir=tmp_path, extra_env=NO_LIMITS
        ) as server:
            threads = [
                threading.Thread(
                    target=transition_loop,
                    args=(
                        server.base_url,
                        name,
                        [str(c) for c in seeded.cases_by_user[name]],
                        stop,
                        outcomes,
                    ),
                )
                for name in seeded.usernames
            ]
            for t in threads:
                t.start()
            time.sleep(5)
            down_at = time.monotonic()
            cluster.stop("immediate")
            time.sleep(OUTAGE)
            cluster.start()
            up_at = time.monotonic()
            time.sleep(RECOVERY_BOUND + 8)
            stop.set()
            for t in threads:
                t.join(timeout=60)
            log = server.log_path.read_text()

        during = [(s, d) for start, s, d in outcomes.statuses if down_at + 1 < start < up_at - 1]
        after = [(start, s) for start, s, _ in outcomes.statuses if start > up_at]
        first_ok = min((start for start, s in after if s < 500), default=None)
        late = [s for start, s, _ in outcomes.statuses if start > up_at + RECOVERY_BOUND]
        print(
            f"\nduring outage: {len(during)} answers {sorted({s for s, _ in during})}, "
            f"slowest {max((d for _, d in during), default=0):.2f}s; "
            f"first success {None if first_ok is None else round(first_ok - up_at, 2)}s after "
            f"restart; after +10s: {sorted(set(late))}"
        )
        assert during, "no request reached the app during the outage"
        assert {s for s, _ in during} == {503}, sorted({s for s, _ in during})
        assert max(d for _, d in during) < ANSWER_BOUND
        assert first_ok is not None and first_ok - up_at < RECOVERY_BOUND
        assert late and all(s < 500 for s in late), sorted(set(late))
        assert "Traceback" not in log
        check_invariants(app_url, keys, outcomes)
    finally:
        cluster.destroy()
