"""Every `passage` command runs in a fresh interpreter, as an operator runs it.

`passage restore` once crashed after pg_restore had committed because the CLI path had not
imported every model (an unresolved foreign key), so the journal replay, the audit check and
the key check never ran. Each command here is a new process on a database with real cases,
an erasure and the test's own key directory.
"""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
import typer.main
from sqlalchemy import create_engine, select
from sqlalchemy.engine import make_url

from app.agencies.models import Agency
from app.cli import cli
from app.operations.liveserver import seed
from tests.conftest import _drop_pg_database, copy_keys

PASSAGE = str(Path(sys.executable).parent / "passage")
#: Not run here: `serve` blocks (the reliability suite serves real workers).
NOT_RUN = {("serve",)}


def _all_commands() -> set[tuple[str, ...]]:
    found: set[tuple[str, ...]] = set()

    def walk(command, prefix: tuple[str, ...]) -> None:
        subcommands = getattr(command, "commands", None)
        if subcommands is None:
            found.add(prefix)
            return
        for name, sub in subcommands.items():
            walk(sub, (*prefix, name))

    walk(typer.main.get_command(cli), ())
    return found


def _agency_name(db, agency_id: uuid.UUID) -> str:
    engine = create_engine(db.owner_url)
    try:
        with engine.connect() as conn:
            return str(conn.scalar(select(Agency.name).where(Agency.id == agency_id)))
    finally:
        engine.dispose()


@pytest.mark.postgres_only
def test_every_command_runs_in_a_fresh_interpreter(fresh_db, keys_dir, tmp_path) -> None:
    keys = copy_keys(keys_dir, tmp_path / "keys")
    journal = tmp_path / "journal" / "erasures.log"
    seeded = seed(fresh_db.app_url, keys, users=1, cases_per_user=3)
    env = {
        **os.environ,
        "PASSAGE_ENVIRONMENT": "test",
        "PASSAGE_DATABASE_URL": fresh_db.app_url,
        "PASSAGE_MIGRATION_DATABASE_URL": fresh_db.owner_url,
        "PASSAGE_KEYS_DIR": str(keys),
        "PASSAGE_ERASURE_JOURNAL": str(journal),
        "PASSAGE_NEW_PASSWORD": "a long enough passphrase for the cli 2026",
    }
    if fresh_db.is_postgres:
        restored_name = f"passage_cli_restore_{uuid.uuid4().hex[:8]}"
        target = (
            make_url(fresh_db.owner_url)
            .set(database=restored_name)
            .render_as_string(hide_password=False)
        )
    else:
        target = f"sqlite:///{tmp_path / 'restored.db'}"

    def run(*argv: str) -> str:
        done = subprocess.run(
            [PASSAGE, *argv], env=env, capture_output=True, text=True, timeout=300, check=False
        )
        assert done.returncode == 0, (argv, done.stdout, done.stderr)
        assert "Traceback" not in done.stderr, (argv, done.stderr)
        return done.stdout

    ran: set[tuple[str, ...]] = set()

    def command(*argv: str) -> str:
        words = tuple(a for a in argv if not a.startswith("-"))
        for size in range(len(words), 0, -1):
            if words[:size] in _all_commands():
                ran.add(words[:size])
                break
        return run(*argv)

    try:
        command("init")
        command("migrate")
        old_kid = command("keys", "status").split()[0]
        assert "3 victim_data_keys" in command("keys", "status")
        assert "re-wrapped 3 victim_data_keys" in command("keys", "rotate")
        command("keys", "retire", old_kid)
        assert "retired" in command("keys", "status")
        command("audit", "verify")
        command("deadlines")
        command("retention", "check")
        command("retention", "apply", "--dry-run")
        command("demo-data", "--cases", "2")
        command(
            "create-user",
            "cli.caseworker",
            "ngo_caseworker",
            "--agency",
            _agency_name(fresh_db, seeded.agency_id),
        )
        command("exchange", "dispatch")
        command("erasure-journal", "drain")
        command("erasure-journal", "status")
        backups = tmp_path / "backups"
        command("backup", "--output-dir", str(backups))
        (backup_dir,) = backups.iterdir()
        command("erasure-journal", "replay")
        restored = command("restore", str(backup_dir), "--target-url", target)
        assert "restore verified" in restored
    finally:
        if fresh_db.is_postgres:
            _drop_pg_database(os.environ["TEST_DATABASE_URL"], restored_name)

    assert ran == _all_commands() - NOT_RUN
