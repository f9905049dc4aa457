"""Backup and restore drills on a real database with real keys.

PostgreSQL: pg_dumpall --globals-only + pg_dump -Fc, restored with pg_restore
--single-transaction into a fresh database. SQLite: a consistent copy through the backup API.
Both: the erasure journal is replayed after the restore, so a victim erased after the backup
was taken is shredded again.
"""

from __future__ import annotations

import hashlib
import os
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from alembic.config import Config
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, func, select, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session, sessionmaker
from typer.testing import CliRunner

from app.audit.models import AuditEvent
from app.audit.service import verify_chains
from app.cases import service
from app.cases.models import Case, CaseNote
from app.cases.schemas import NoteIn
from app.config import REPO_ROOT
from app.crypto.errors import DataKeyShreddedError
from app.crypto.keyring import FileKeyRing
from app.crypto.models import BlindIndexEntry, DataKey
from app.crypto.service import KeyService
from app.db.rls import system_session
from app.operations.backup import (
    DUMP_FILE,
    GLOBALS_FILE,
    MANIFEST,
    SQLITE_FILE,
    BackupError,
    backup,
    restore,
    verify_backup,
)
from app.operations.erasure_journal import drain_outbox, read_journal
from app.victims.models import Victim
from tests.conftest import APP_ROLE, DbEnv, Live, _drop_pg_database, _migrate, copy_keys
from tests.operations.support import (
    Registered,
    administrator,
    caseworker,
    erase,
    owner_engine,
    register,
    row_counts,
)


def code_head() -> str:
    head = ScriptDirectory.from_config(Config(str(REPO_ROOT / "alembic.ini"))).get_current_head()
    assert head is not None
    return head


def drain(live: Live, journal: Path) -> int:
    with live.session() as session, session.begin():
        return drain_outbox(session, journal)


def sessions(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(bind=engine, expire_on_commit=False)


def assert_shredded(session: Session, keys: KeyService, victim_id: uuid.UUID) -> None:
    assert session.scalar(select(func.count()).where(DataKey.victim_id == victim_id)) == 0
    assert session.scalar(select(func.count()).where(BlindIndexEntry.victim_id == victim_id)) == 0
    victim = session.get(Victim, victim_id)
    assert victim is not None and victim.erased_at is not None
    assert victim.family_name is not None  # the ciphertext is still there, unreadable
    with pytest.raises(DataKeyShreddedError):
        keys.codec_for(session, victim_id)


def assert_opens(session: Session, keys: KeyService, r: Registered) -> None:
    codec = keys.codec_for(session, r.victim_id)
    victim = session.get(Victim, r.victim_id)
    case = session.get(Case, r.case_id)
    assert victim is not None and case is not None
    assert codec.open("victims", "family_name", victim.id, victim.family_name) == r.family_name
    assert codec.open("victims", "phone", victim.id, victim.phone) == "+33 6 12 34 56 78"
    assert codec.open("cases", "labour_sector", case.id, case.labour_sector) == "hospitality"


def key_material(keys_dir: Path) -> list[bytes]:
    return [p.read_bytes().strip() for p in keys_dir.iterdir() if p.is_file() and p.stat().st_size]


def assert_no_key_material(directory: Path, keys_dir: Path) -> None:
    secrets = key_material(keys_dir)
    assert secrets
    for path in directory.iterdir():
        data = path.read_bytes()
        for secret in secrets:
            assert secret not in data, f"key material found in {path.name}"


def load_world(live: Live) -> tuple[list[Registered], Registered, Registered]:
    """Three kept victims (one with a note), one erased before the backup, one after."""
    actor = caseworker(live)
    kept = [register(live, actor, f"Kept{i}") for i in range(3)]
    with live.session() as session, session.begin():
        service.add_note(
            session, live.ctx, actor, kept[0].case_id, NoteIn(kind="note", body="met at shelter")
        )
    before = register(live, actor, "ErasedBefore")
    after = register(live, actor, "ErasedAfter")
    return kept, before, after


# -- refusals: a dump and its keys never share an archive ------------------------------------------
def test_backup_refuses_an_output_directory_inside_the_key_directory(tmp_path: Path) -> None:
    keys = tmp_path / "keys"
    keys.mkdir()
    url = f"sqlite:///{tmp_path / 'never-read.db'}"
    with pytest.raises(BackupError, match="inside the key directory"):
        backup(url, keys / "backups", keys_dir=keys)
    with pytest.raises(BackupError, match="inside the key directory"):
        backup(url, keys, keys_dir=keys)
    (tmp_path / "sneaky").symlink_to(keys)
    with pytest.raises(BackupError, match="inside the key directory"):
        backup(url, tmp_path / "sneaky" / "backups", keys_dir=keys)
    assert sorted(p.name for p in keys.iterdir()) == []


def test_backup_refuses_an_output_directory_containing_the_key_directory(tmp_path: Path) -> None:
    keys = tmp_path / "var" / "keys"
    keys.mkdir(parents=True)
    url = f"sqlite:///{tmp_path / 'never-read.db'}"
    with pytest.raises(BackupError, match="contains the key directory"):
        backup(url, tmp_path / "var", keys_dir=keys)
    with pytest.raises(BackupError, match="contains the key directory"):
        backup(url, tmp_path, keys_dir=keys)


def test_backup_refuses_to_hold_the_erasure_journal(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'never-read.db'}"
    with pytest.raises(BackupError, match="outside the database and its backups"):
        backup(
            url,
            tmp_path / "backups",
            keys_dir=tmp_path / "keys",
            journal=tmp_path / "backups" / "erasures.log",
        )


# -- PostgreSQL ----------------------------------------------------------------------------------
@pytest.fixture
def restore_target(live: Live) -> Iterator[str]:
    """A database name that does not exist yet, on the test server; dropped afterwards."""
    name = f"passage_restore_{uuid.uuid4().hex[:8]}"
    url = make_url(live.env.owner_url).set(database=name).render_as_string(hide_password=False)
    yield url
    _drop_pg_database(os.environ["TEST_DATABASE_URL"], name)


@pytest.mark.postgres_only
def test_postgres_restore_drill(live: Live, tmp_path: Path, restore_target: str) -> None:
    kept, before, after = load_world(live)
    admin = administrator(live)
    journal = live.settings.erasure_journal
    assert journal is not None
    erase(live, admin, before.victim_id)
    assert drain(live, journal) == 0  # journaled before it committed
    source = row_counts(live.env.owner_url)

    result = backup(
        live.env.owner_url, tmp_path / "backups", keys_dir=live.keys_dir, journal=journal
    )

    # The manifest describes exactly what was dumped: counts, head, key ids (ids only).
    manifest = result.manifest
    assert sorted(p.name for p in result.directory.iterdir()) == sorted(
        [DUMP_FILE, GLOBALS_FILE, MANIFEST]
    )
    assert manifest.row_counts == source
    assert manifest.migration_head == code_head()
    assert manifest.key_ids_in_use == {live.ctx.keys.keyring.active_kid: 4}
    for entry in manifest.files:
        data = (result.directory / entry.name).read_bytes()
        assert (entry.bytes, entry.sha256) == (len(data), hashlib.sha256(data).hexdigest())
    assert_no_key_material(result.directory, live.keys_dir)
    globals_sql = (result.directory / GLOBALS_FILE).read_text()
    assert f"CREATE ROLE {APP_ROLE}" in globals_sql
    assert "SCRAM-SHA-256$" not in globals_sql and "PASSWORD 'md5" not in globals_sql
    assert "Kept0" not in (result.directory / MANIFEST).read_text()

    # The backup predates this erasure: only the journal remembers it.
    erase(live, admin, after.victim_id)
    assert drain(live, journal) == 0  # journaled before it committed

    # A new process: the key ring is read again from the escrowed directory.
    keys = KeyService(FileKeyRing(live.keys_dir))
    report = restore(result.directory, restore_target, keys=keys, journal=read_journal(journal))

    assert report.ok, report.lines()
    assert report.row_counts == source  # as dumped, before the journal replay
    assert report.count_mismatches == {}
    assert report.migration_head == code_head()
    assert report.journal is not None
    assert (report.journal.shredded_again, report.journal.already_erased) == (1, 1)
    assert report.journal.shredded_ids == [after.victim_id]
    assert report.audit is not None and report.audit.ok
    assert (report.sampled_keys, report.sample_failures) == (3, 0)
    assert report.sampled_fields >= 3 * 5

    engine = owner_engine(restore_target)
    try:
        with system_session(sessions(engine)()) as session:
            assert_shredded(session, keys, after.victim_id)
            assert_shredded(session, keys, before.victim_id)
            for r in kept:
                assert_opens(session, keys, r)
            note = session.scalars(
                select(CaseNote).where(CaseNote.case_id == kept[0].case_id)
            ).one()
            codec = keys.codec_for(session, kept[0].victim_id)
            assert codec.open("case_notes", "body", note.id, note.body) == "met at shelter"
            replayed = session.scalars(
                select(AuditEvent.chain_key).where(AuditEvent.action == "victim_erasure_replayed")
            ).all()
            assert sorted(replayed) == sorted(
                [f"case:{after.case_id}", f"victim:{after.victim_id}"]
            )
            assert verify_chains(session).ok
        # Triggers, row-level security and grants came back with the dump.
        with engine.connect() as conn, pytest.raises(DBAPIError, match="append-only"):
            conn.execute(text("UPDATE audit_events SET action = 'x'"))
        app_url = make_url(restore_target).set(username=APP_ROLE, password=None)
        app_engine = owner_engine(app_url.render_as_string(hide_password=False))
        try:
            with app_engine.connect() as conn:
                assert conn.scalar(text("SELECT count(*) FROM cases")) == 0  # no scope, no rows
                assert conn.scalar(text("SELECT count(*) FROM audit_events")) > 0
                with pytest.raises(DBAPIError, match="permission denied"):
                    conn.execute(text("DELETE FROM audit_events"))
        finally:
            app_engine.dispose()
    finally:
        engine.dispose()

    # Replaying twice changes nothing.
    with system_session(sessions(owner_engine(restore_target))()) as session, session.begin():
        from app.operations.erasure_journal import replay

        again = replay(session, keys, read_journal(journal))
    assert (again.shredded_again, again.already_erased) == (0, 2)

    # The target is no longer empty: refused, unless --force (one transaction).
    with pytest.raises(BackupError, match="not empty"):
        restore(result.directory, restore_target, keys=keys, journal=read_journal(journal))
    forced = restore(
        result.directory, restore_target, keys=keys, journal=read_journal(journal), force=True
    )
    assert forced.ok, forced.lines()
    assert forced.journal is not None and forced.journal.shredded_ids == [after.victim_id]


@pytest.mark.postgres_only
def test_a_tampered_dump_is_refused_before_anything_is_restored(
    live: Live, tmp_path: Path, restore_target: str
) -> None:
    register(live, caseworker(live), "Tamper")
    result = backup(live.env.owner_url, tmp_path / "backups", keys_dir=live.keys_dir)
    dump = result.directory / DUMP_FILE
    data = bytearray(dump.read_bytes())
    data[len(data) // 2] ^= 0xFF
    dump.write_bytes(bytes(data))
    with pytest.raises(BackupError, match="does not match its manifest checksum"):
        restore(result.directory, restore_target, keys=live.ctx.keys, journal=None)
    admin = create_admin_engine()
    try:
        with admin.connect() as conn:
            name = make_url(restore_target).database
            exists = conn.scalar(
                text("SELECT count(*) FROM pg_database WHERE datname = :n"), {"n": name}
            )
        assert exists == 0
    finally:
        admin.dispose()


def create_admin_engine() -> Engine:
    return owner_engine(os.environ["TEST_DATABASE_URL"])


# -- SQLite ---------------------------------------------------------------------------------------
@pytest.fixture
def sqlite_live(tmp_path: Path, keys_dir: Path, password_hash: str) -> Iterator[Live]:
    """An embedded database of its own, whatever engine the suite runs on."""
    url = f"sqlite:///{tmp_path / 'source.db'}"
    _migrate(url, None)
    instance = Live(
        DbEnv("sqlite", url, url, tmp_path), copy_keys(keys_dir, tmp_path / "keys"), password_hash
    )
    yield instance
    instance.close()


def test_sqlite_restore_drill(sqlite_live: Live, tmp_path: Path) -> None:
    live = sqlite_live
    kept, before, after = load_world(live)
    admin = administrator(live)
    journal = live.settings.erasure_journal
    assert journal is not None
    erase(live, admin, before.victim_id)
    drain(live, journal)
    source = row_counts(live.env.owner_url)

    result = backup(
        live.env.owner_url, tmp_path / "backups", keys_dir=live.keys_dir, journal=journal
    )
    assert sorted(p.name for p in result.directory.iterdir()) == sorted([MANIFEST, SQLITE_FILE])
    assert result.manifest.engine == "sqlite"
    assert result.manifest.row_counts == source
    assert result.manifest.migration_head == code_head()
    assert result.manifest.key_ids_in_use == {live.ctx.keys.keyring.active_kid: 4}
    assert_no_key_material(result.directory, live.keys_dir)

    erase(live, admin, after.victim_id)
    drain(live, journal)

    target = f"sqlite:///{tmp_path / 'restored' / 'passage.db'}"
    keys = KeyService(FileKeyRing(live.keys_dir))
    report = restore(result.directory, target, keys=keys, journal=read_journal(journal))
    assert report.ok, report.lines()
    assert report.row_counts == source
    assert report.journal is not None and report.journal.shredded_ids == [after.victim_id]
    assert (report.sampled_keys, report.sample_failures) == (3, 0)

    engine = owner_engine(target)
    try:
        with sessions(engine)() as session:
            assert_shredded(session, keys, after.victim_id)
            assert_shredded(session, keys, before.victim_id)
            for r in kept:
                assert_opens(session, keys, r)
            assert verify_chains(session).ok
    finally:
        engine.dispose()

    with pytest.raises(BackupError, match="not empty"):
        restore(result.directory, target, keys=keys, journal=read_journal(journal))
    assert restore(
        result.directory, target, keys=keys, journal=read_journal(journal), force=True
    ).ok


def test_sqlite_copy_is_consistent_while_the_app_writes(sqlite_live: Live, tmp_path: Path) -> None:
    live = sqlite_live
    actor = caseworker(live)
    register(live, actor, "First")
    stop = threading.Event()
    written: list[int] = []

    def writer() -> None:
        while not stop.is_set():
            register(live, actor, f"Busy{len(written)}")
            written.append(1)

    thread = threading.Thread(target=writer)
    thread.start()
    try:
        results = [
            backup(live.env.owner_url, tmp_path / f"backups{i}", keys_dir=live.keys_dir)
            for i in range(3)
        ]
    finally:
        stop.set()
        thread.join()
    assert written, "the writer never ran"
    for result in results:
        verify_backup(result.directory)
        copy = owner_engine(f"sqlite:///{result.directory / SQLITE_FILE}")
        try:
            with sessions(copy)() as session:
                cases = session.scalar(select(func.count()).select_from(Case))
                victims = session.scalar(select(func.count()).select_from(Victim))
                data_keys = session.scalar(select(func.count()).select_from(DataKey))
                assert cases == victims == data_keys == result.manifest.row_counts["cases"]
                assert verify_chains(session).ok  # every registration is whole, with its audit
        finally:
            copy.dispose()


def test_a_tampered_or_unfinished_backup_is_refused(sqlite_live: Live, tmp_path: Path) -> None:
    live = sqlite_live
    register(live, caseworker(live), "Tamper")
    result = backup(live.env.owner_url, tmp_path / "backups", keys_dir=live.keys_dir)
    copy = result.directory / SQLITE_FILE
    data = bytearray(copy.read_bytes())
    data[-100] ^= 0xFF
    copy.write_bytes(bytes(data))
    target = tmp_path / "restored.db"
    with pytest.raises(BackupError, match="does not match its manifest checksum"):
        restore(result.directory, f"sqlite:///{target}", keys=live.ctx.keys, journal=None)
    assert not target.exists()
    (result.directory / MANIFEST).unlink()
    with pytest.raises(BackupError, match=r"no manifest\.json"):
        verify_backup(result.directory)


def test_a_backup_cannot_be_restored_into_the_other_engine(
    sqlite_live: Live, tmp_path: Path
) -> None:
    result = backup(sqlite_live.env.owner_url, tmp_path / "backups", keys_dir=sqlite_live.keys_dir)
    with pytest.raises(BackupError, match="cannot be restored into postgresql"):
        restore(
            result.directory,
            "postgresql+psycopg://nobody@127.0.0.1:1/none",
            keys=sqlite_live.ctx.keys,
            journal=None,
        )


# -- the commands --------------------------------------------------------------------------------
def test_commands_backup_restore_and_journal(
    sqlite_live: Live, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import typer

    from app.operations.commands import register as register_commands

    monkeypatch.delenv("PASSAGE_ERASURE_JOURNAL", raising=False)
    live = sqlite_live
    cli = typer.Typer()
    # No journal configured (the default path under var/ is switched off): the commands
    # that need one refuse until --journal names it.
    unconfigured = live.settings.model_copy(update={"erasure_journal": None})
    register_commands(cli, settings_factory=lambda: unconfigured)
    runner = CliRunner()
    victim = register(live, caseworker(live), "Cli")
    journal = tmp_path / "journal" / "erasures.log"

    made = runner.invoke(cli, ["backup", "--output-dir", str(tmp_path / "backups")])
    assert made.exit_code == 0, made.output
    assert "sha256" in made.output and live.ctx.keys.keyring.active_kid in made.output
    (backup_dir,) = (tmp_path / "backups").iterdir()

    refused = runner.invoke(cli, ["backup", "--output-dir", str(live.keys_dir / "b")])
    assert refused.exit_code == 2 and "inside the key directory" in refused.output

    live.ctx.settings = unconfigured  # the erasure waits in the outbox for the drain
    erase(live, administrator(live), victim.victim_id)
    drained = runner.invoke(cli, ["erasure-journal", "drain", "--journal", str(journal)])
    assert drained.exit_code == 0 and "journaled 1 erasures" in drained.output
    status = runner.invoke(cli, ["erasure-journal", "status", "--journal", str(journal)])
    assert "1 entries for 1 victims" in status.output and "pending: 0" in status.output

    target = f"sqlite:///{tmp_path / 'restored.db'}"
    no_journal = runner.invoke(cli, ["restore", str(backup_dir), "--target-url", target])
    assert (
        no_journal.exit_code == 2 and "refusing to restore without replaying" in no_journal.output
    )

    restored = runner.invoke(
        cli, ["restore", str(backup_dir), "--target-url", target, "--journal", str(journal)]
    )
    assert restored.exit_code == 0, restored.output
    assert "1 shredded again" in restored.output and "restore verified" in restored.output
    assert "Cli" not in restored.output

    again = runner.invoke(
        cli, ["restore", str(backup_dir), "--target-url", target, "--journal", str(journal)]
    )
    assert again.exit_code == 2 and "not empty" in again.output

    checked = runner.invoke(cli, ["retention", "check"])
    assert checked.exit_code == 0 and "closed_support_completed" in checked.output
    apply_without_journal = runner.invoke(cli, ["retention", "apply"])
    assert apply_without_journal.exit_code == 2
    dry = runner.invoke(cli, ["retention", "apply", "--dry-run"])
    assert dry.exit_code == 0 and "total would erase: 0" in dry.output


@pytest.mark.postgres_only
def test_a_failed_restore_leaves_the_target_as_it_was(
    live: Live, tmp_path: Path, restore_target: str
) -> None:
    register(live, caseworker(live), "Atomic")
    result = backup(live.env.owner_url, tmp_path / "backups", keys_dir=live.keys_dir)
    admin = create_admin_engine()
    name = make_url(restore_target).database
    try:
        with admin.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
    finally:
        admin.dispose()
    target = owner_engine(restore_target)
    try:
        with target.begin() as conn:
            # Something --clean cannot drop: a view of ours depending on a table of the dump.
            conn.execute(text("CREATE TABLE cases (note text)"))
            conn.execute(text("INSERT INTO cases VALUES ('kept')"))
            conn.execute(text("CREATE VIEW keep_me AS SELECT note FROM cases"))
        with pytest.raises(BackupError, match="pg_restore failed") as failed:
            restore(result.directory, restore_target, keys=live.ctx.keys, journal=None, force=True)
        assert "Atomic" not in str(failed.value)
        with target.connect() as conn:  # --single-transaction: nothing was half-restored
            assert conn.scalar(text("SELECT note FROM keep_me")) == "kept"
            tables = set(
                conn.scalars(text("SELECT tablename FROM pg_tables WHERE schemaname = 'public'"))
            )
            assert tables == {"cases"}
    finally:
        target.dispose()


def test_tool_errors_never_quote_row_data() -> None:
    from app.operations.backup import _safe_stderr

    stderr = (
        'pg_restore: error: COPY failed for table "users": ERROR:  duplicate key value\n'
        "DETAIL:  Key (username)=(elodie.ndiaye) already exists.\n"
        'CONTEXT:  COPY users, line 1: "0193...\telodie.ndiaye\tÉlodie N\'Diaye"\n'
    )
    lines = _safe_stderr(stderr)
    assert lines == [
        'pg_restore: error: COPY failed for table "users": ERROR:  duplicate key value'
    ]
