"""The restore drill as an operator runs it: `passage backup`, more work, erasures, then one
`passage restore` command that restores, replays the erasure journal, verifies the audit
chains and checks every key id, and fails loudly (non-zero, the step named) otherwise.

Before 2026-12 `passage restore` crashed after pg_restore had committed (a model not
imported on the CLI path), and an erasure committed but not yet drained to the journal came
back after a restore: 2 of 3 erased victims were readable again in an outside test.
"""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.engine import make_url

from app.auth.actor import Actor
from app.cases import service
from app.cases.models import Case
from app.config import Settings
from app.context import build_context
from app.crypto.errors import DataKeyShreddedError
from app.db.rls import system_session
from app.db.session import Database
from app.operations.liveserver import login, make_keys, registration_payload, running_server, seed
from tests.conftest import _drop_pg_database, copy_keys
from tests.operations.test_reliability_support import NO_LIMITS, reliability

pytestmark = [reliability, pytest.mark.postgres_only]

PASSAGE = str(Path(sys.executable).parent / "passage")
OPERATOR = Actor(user_id=None, role="admin", agency_id=None, username="restore-drill")


def _passage(env: dict[str, str], *argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [PASSAGE, *argv], env=env, capture_output=True, text=True, timeout=600, check=False
    )


def _erase(settings: Settings, victim_id: uuid.UUID) -> None:
    """The real erasure path (journaled before it commits), committed."""
    ctx = build_context(settings)
    database = Database(settings)
    try:
        with system_session(database.sessionmaker()) as session, session.begin():
            service.erase_victim(
                session,
                ctx,
                OPERATOR,
                victim_id,
                legal_basis="GDPR Art. 17",
                reason_code="subject_request",
            )
    finally:
        database.dispose()


def _victims(settings: Settings, case_ids: list[uuid.UUID]) -> dict[uuid.UUID, uuid.UUID]:
    database = Database(settings)
    try:
        with system_session(database.sessionmaker()) as session:
            rows = session.execute(select(Case.id, Case.victim_id).where(Case.id.in_(case_ids)))
            return {case_id: victim_id for case_id, victim_id in rows}
    finally:
        database.dispose()


def test_backup_more_work_erasures_then_one_restore_command(fresh_db, keys_dir, tmp_path) -> None:
    keys = copy_keys(keys_dir, tmp_path / "keys")
    journal = tmp_path / "journal" / "erasures.log"
    settings = Settings(
        environment="test",
        database_url=fresh_db.app_url,
        migration_database_url=fresh_db.owner_url,
        keys_dir=keys,
        erasure_journal=journal,
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("PASSAGE_")}
    env.update(
        {
            "PASSAGE_ENVIRONMENT": "test",
            "PASSAGE_DATABASE_URL": fresh_db.app_url,
            "PASSAGE_MIGRATION_DATABASE_URL": fresh_db.owner_url,
            "PASSAGE_KEYS_DIR": str(keys),
            "PASSAGE_ERASURE_JOURNAL": str(journal),
        }
    )
    seeded = seed(fresh_db.app_url, keys, users=1, cases_per_user=8)
    victims = _victims(settings, seeded.case_ids)
    erased_before_backup, erased_drained, erased_just_now, *kept = seeded.case_ids
    _erase(settings, victims[erased_before_backup])

    made = _passage(env, "backup", "--output-dir", str(tmp_path / "backups"))
    assert made.returncode == 0, made.stderr
    (backup_dir,) = (tmp_path / "backups").iterdir()

    # More work after the backup: registrations acknowledged by real workers, two erasures
    # (one drained by the periodic job, one committed a moment before the restore).
    with running_server(
        fresh_db.app_url, keys, workers=2, log_dir=tmp_path, extra_env=NO_LIMITS
    ) as server:
        client = login(server.base_url, seeded.usernames[0])
        later = [client.post("/api/v1/cases", json=registration_payload(n)) for n in range(3)]
        assert [r.status_code for r in later] == [201, 201, 201]
    _erase(settings, victims[erased_drained])
    assert _passage(env, "erasure-journal", "drain").returncode == 0
    _erase(settings, victims[erased_just_now])

    name = f"passage_drill_{uuid.uuid4().hex[:8]}"
    owner_target = make_url(fresh_db.owner_url).set(database=name)
    app_target = make_url(fresh_db.app_url).set(database=name)
    restore_argv = (
        "restore",
        str(backup_dir),
        "--target-url",
        owner_target.render_as_string(hide_password=False),
    )
    try:
        # A restore with keys from another installation: it restores, then fails loudly.
        foreign = make_keys(tmp_path / "foreign-keys")
        refused = _passage({**env, "PASSAGE_KEYS_DIR": str(foreign)}, *restore_argv)
        assert refused.returncode == 1, refused.stdout + refused.stderr
        assert "MISSING KEY" in refused.stdout and "restore verified" not in refused.stdout
        _drop_pg_database(os.environ["TEST_DATABASE_URL"], name)

        restored = _passage(env, *restore_argv)
        print("\n" + restored.stdout)
        assert restored.returncode == 0, restored.stdout + restored.stderr
        assert "restore verified" in restored.stdout
        assert "0 broken" in restored.stdout

        restored_settings = settings.model_copy(
            update={"database_url": app_target.render_as_string(hide_password=False)}
        )
        ctx = build_context(restored_settings)
        database = Database(restored_settings)
        try:
            with system_session(database.sessionmaker()) as session:
                readable = {}
                for case_id in seeded.case_ids:
                    try:
                        ctx.keys.codec_for(session, victims[case_id])
                        readable[case_id] = True
                    except DataKeyShreddedError:
                        readable[case_id] = False
        finally:
            database.dispose()
        erased = [erased_before_backup, erased_drained, erased_just_now]
        print(
            f"erased victims readable after restore: {sum(readable[c] for c in erased)} of 3; "
            f"kept cases readable: {sum(readable[c] for c in kept)} of {len(kept)}"
        )
        assert [readable[c] for c in erased] == [False, False, False]
        assert all(readable[c] for c in kept)
        # And through real workers on the restored database: kept cases open with their names.
        with running_server(
            app_target.render_as_string(hide_password=False),
            keys,
            workers=2,
            log_dir=tmp_path,
            extra_env=NO_LIMITS,
        ) as server:
            client = login(server.base_url, seeded.usernames[0])
            for case_id in kept:
                response = client.get(f"/api/v1/cases/{case_id}")
                assert response.status_code == 200 and response.json()["victim"]["given_name"]
            for case_id in erased:
                assert client.get(f"/api/v1/cases/{case_id}").json()["victim"] == {}
    finally:
        _drop_pg_database(os.environ["TEST_DATABASE_URL"], name)
