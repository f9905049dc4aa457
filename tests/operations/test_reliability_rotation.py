"""R13 key rotation while serving: `passage keys rotate` in another process, clients reading.

Two uvicorn workers serve case reads (every read unwraps the victim's data key and opens
the sealed fields). Meanwhile this test process does what `passage keys rotate` does: adds
a KEK to the shared key directory, makes it active, and re-wraps every data key in small
batches. The workers only knew the old KEK when they started; they must learn the new one
(reload on an unknown key id) so that no read fails: 0 decryption errors.
"""

from __future__ import annotations

import random
import threading
import time

import httpx
import pytest

from app.operations.liveserver import login, running_server, seed
from tests.conftest import copy_keys
from tests.operations.test_reliability_support import NO_LIMITS, reliability

pytestmark = [reliability, pytest.mark.postgres_only]

READERS = 6


def _rotate(app_url: str, keys_dir, batch_size: int) -> tuple[str, int, int]:
    """What `passage keys rotate` does, from this (separate) process."""
    from app.config import Settings
    from app.context import build_context
    from app.db.rls import system_session
    from app.db.session import Database

    settings = Settings(environment="test", database_url=app_url, keys_dir=keys_dir)
    ctx = build_context(settings)
    database = Database(settings)
    kid = ctx.keys.keyring.add_key()
    total = batches = 0
    try:
        while True:
            with system_session(database.sessionmaker()) as session, session.begin():
                done = ctx.keys.rewrap(session, batch_size=batch_size)
            total, batches = total + done, batches + 1
            if done == 0:
                return kid, total, batches
            time.sleep(0.2)  # leave the readers room between batches
    finally:
        database.dispose()


def test_rotation_while_serving_causes_no_decryption_error(fresh_db, keys_dir, tmp_path) -> None:
    keys = copy_keys(keys_dir, tmp_path / "keys")
    seeded = seed(fresh_db.app_url, keys, users=READERS, cases_per_user=20)
    statuses: dict[int, int] = {}
    errors: list[str] = []
    lock = threading.Lock()
    stop = threading.Event()
    with running_server(
        fresh_db.app_url, keys, workers=2, log_dir=tmp_path, extra_env=NO_LIMITS
    ) as server:

        def read(username: str) -> None:
            rng = random.Random(username)
            cases = [str(c) for c in seeded.case_ids]
            client = login(server.base_url, username)
            while not stop.is_set():
                try:
                    response = client.get(f"/api/v1/cases/{rng.choice(cases)}")
                except httpx.TransportError as exc:
                    errors.append(type(exc).__name__)
                    continue
                with lock:
                    statuses[response.status_code] = statuses.get(response.status_code, 0) + 1
                if response.status_code != 200 and len(errors) < 20:
                    errors.append(response.text[:200])
            client.close()

        # Every reader may read every case: they all belong to the same agency.
        threads = [threading.Thread(target=read, args=(u,)) for u in seeded.usernames]
        for t in threads:
            t.start()
        time.sleep(2)
        kid, rewrapped, batches = _rotate(fresh_db.app_url, keys, batch_size=10)
        time.sleep(3)
        stop.set()
        for t in threads:
            t.join(timeout=30)
    print(f"\nnew KEK {kid}: {rewrapped} data keys in {batches} batches; answers {statuses}")
    assert rewrapped == len(seeded.case_ids)
    assert statuses.get(200, 0) > 100
    assert set(statuses) == {200}, (statuses, errors[:3])
    assert not errors
