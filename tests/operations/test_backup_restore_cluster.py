"""Production-shaped drills on throwaway PostgreSQL clusters (never the shared server).

- The backup runs as the database owner, a NON-superuser subject to the FORCE'd row-level
  security of cases and victims, as `passage_owner` does in production.
- Restore 1: into a database a DBA created for the owner, restored by the owner itself.
- Restore 2: disaster recovery into a brand-new cluster: globals.sql recreates the roles,
  then the dump is restored with its ownership, grants, triggers and policies.
Each cluster is made with initdb in a temporary directory on a free port and stopped at
the end.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from sqlalchemy import select, text
from sqlalchemy.exc import DBAPIError

from app.audit.service import verify_chains
from app.crypto.keyring import FileKeyRing
from app.crypto.service import KeyService
from app.db.rls import system_session
from app.operations.backup import backup, restore
from app.operations.erasure_journal import read_journal
from app.victims.models import Victim
from tests.conftest import DbEnv, Live, _migrate, copy_keys
from tests.operations.support import (
    administrator,
    caseworker,
    erase,
    owner_engine,
    register,
    row_counts,
)
from tests.operations.test_backup_restore import assert_opens, assert_shredded, drain, sessions

PG_BIN = Path(os.environ.get("PASSAGE_TEST_PG_BIN", "/usr/lib/postgresql/15/bin"))

pytestmark = [pytest.mark.postgres_only, pytest.mark.slow]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _as_postgres(argv: list[str]) -> list[str]:
    if os.geteuid() != 0:
        return argv
    return ["runuser", "-u", "postgres", "--", *argv]


@dataclass
class Cluster:
    port: int
    directory: Path

    def url(self, user: str = "postgres", database: str = "postgres") -> str:
        return f"postgresql+psycopg://{user}@127.0.0.1:{self.port}/{database}"

    def sql(self, *statements: str, database: str = "postgres") -> None:
        engine = owner_engine(self.url(database=database))
        try:
            with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
                for statement in statements:
                    conn.execute(text(statement))
        finally:
            engine.dispose()


@pytest.fixture
def clusters() -> Iterator[list[Cluster]]:
    if not (PG_BIN / "initdb").is_file():
        pytest.skip(f"no initdb in {PG_BIN}")
    if os.geteuid() == 0 and shutil.which("runuser") is None:
        pytest.skip("running as root without runuser")
    made: list[Cluster] = []
    root = Path(tempfile.mkdtemp(prefix="passage-pg-"))
    os.chmod(root, 0o755)
    if os.geteuid() == 0:
        shutil.chown(root, "postgres")

    def start() -> Cluster:
        directory = root / f"c{len(made)}"
        port = _free_port()
        subprocess.run(
            _as_postgres(
                [
                    str(PG_BIN / "initdb"),
                    "-D",
                    str(directory),
                    "-A",
                    "trust",
                    "-U",
                    "postgres",
                    "--no-sync",
                    "-E",
                    "UTF8",
                ]
            ),
            check=True,
            capture_output=True,
        )
        subprocess.run(
            _as_postgres(
                [
                    str(PG_BIN / "pg_ctl"),
                    "-D",
                    str(directory),
                    "-w",
                    "-l",
                    str(directory / "server.log"),
                    "-o",
                    f"-p {port} -k {root} -c listen_addresses=127.0.0.1 -c fsync=off",
                    "start",
                ]
            ),
            check=True,
            capture_output=True,
        )
        cluster = Cluster(port, directory)
        made.append(cluster)
        return cluster

    try:
        start()
        start()
        yield made
    finally:
        for cluster in made:
            subprocess.run(
                _as_postgres(
                    [str(PG_BIN / "pg_ctl"), "-D", str(cluster.directory), "-m", "fast", "stop"]
                ),
                check=False,
                capture_output=True,
            )
        shutil.rmtree(root, ignore_errors=True)


def test_owner_backup_and_restores_into_an_owner_database_and_a_new_cluster(
    clusters: list[Cluster], keys_dir: Path, password_hash: str, tmp_path: Path
) -> None:
    source, new_cluster = clusters
    source.sql(
        "CREATE ROLE passage_owner LOGIN NOSUPERUSER NOCREATEDB NOBYPASSRLS",
        "CREATE ROLE passage_app LOGIN NOSUPERUSER NOBYPASSRLS",
        "CREATE DATABASE passage OWNER passage_owner",
        "CREATE DATABASE passage_restored OWNER passage_owner",  # the DBA's step
    )
    owner_url = source.url("passage_owner", "passage")
    _migrate(owner_url, "passage_app")
    work = tmp_path
    live = Live(
        DbEnv("postgresql", owner_url, source.url("passage_app", "passage"), work),
        copy_keys(keys_dir, work / "keys"),
        password_hash,
    )
    try:
        actor, admin = caseworker(live), administrator(live)
        kept = [register(live, actor, f"Owner{i}") for i in range(2)]
        before = register(live, actor, "GoneBefore")
        after = register(live, actor, "GoneAfter")
        # Journaled before each erasure commits (the drain finds nothing left to do).
        journal = live.settings.erasure_journal
        assert journal is not None
        erase(live, admin, before.victim_id)
        assert drain(live, journal) == 0
        everything = row_counts(source.url(database="passage"))  # superuser: sees every row

        # The owner is no superuser and cases/victims FORCE row-level security on it.
        result = backup(owner_url, work / "backups", keys_dir=live.keys_dir)
        assert result.manifest.row_counts == everything
        assert result.manifest.row_counts["cases"] == 4

        erase(live, admin, after.victim_id)
        assert drain(live, journal) == 0
        keys = KeyService(FileKeyRing(live.keys_dir))

        # 1. The owner restores into the database the DBA created for it.
        restored_url = source.url("passage_owner", "passage_restored")
        first = restore(result.directory, restored_url, keys=keys, journal=read_journal(journal))
        assert first.ok, first.lines()
        assert first.row_counts == everything
        assert first.journal is not None and first.journal.shredded_ids == [after.victim_id]

        # 2. Disaster recovery into a new cluster: roles from globals.sql, then the dump.
        dr_url = new_cluster.url("postgres", f"passage_{uuid.uuid4().hex[:6]}")
        second = restore(
            result.directory, dr_url, keys=keys, journal=read_journal(journal), apply_globals=True
        )
        assert second.ok, second.lines()
        assert second.globals_errors is not None and second.globals_errors >= 1  # role postgres
        assert second.row_counts == everything
        engine = owner_engine(dr_url)
        try:
            with engine.connect() as conn:
                owners = set(
                    conn.scalars(
                        text(
                            "SELECT DISTINCT tableowner FROM pg_tables WHERE schemaname = 'public'"
                        )
                    )
                )
                assert owners == {"passage_owner"}
            with system_session(sessions(engine)()) as session:
                assert_shredded(session, keys, after.victim_id)
                assert_shredded(session, keys, before.victim_id)
                for r in kept:
                    assert_opens(session, keys, r)
                assert verify_chains(session).ok
        finally:
            engine.dispose()
        app = owner_engine(dr_url.replace("postgres@", "passage_app@", 1))
        try:
            with app.connect() as conn:
                assert conn.scalar(text("SELECT count(*) FROM victims")) == 0  # RLS: no scope
                conn.execute(text("SELECT set_config('passage.scope', 'system', true)"))
                assert len(conn.execute(select(Victim.id)).all()) == 4
                with pytest.raises(DBAPIError, match="permission denied"):
                    conn.execute(text("UPDATE audit_events SET action = 'x'"))
        finally:
            app.dispose()
    finally:
        live.close()
