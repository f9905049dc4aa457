"""`passage backup` and `passage restore`: logical backups with a manifest, and a checked restore.

PostgreSQL (production):
- backup: `pg_dumpall --globals-only --no-role-passwords` (roles and grants: the append-only
  audit trail and the least-privilege app role live there) plus `pg_dump -Fc` of the
  database, taken in one exported snapshot so the manifest's row counts, migration head and
  key ids describe exactly what the dump holds;
- restore: checksums first, then `pg_restore --exit-on-error --single-transaction` into a
  fresh (or empty) database, row counts compared with the manifest, the erasure journal
  replayed, every audit chain verified, and a sample of data keys unwrapped and sealed fields
  opened with the key ring given to the restore.

SQLite (evaluation only): a consistent copy through the sqlite3 backup API.

A backup never contains key files, and refuses an output directory inside the key directory
(or a key directory inside the output directory): a dump plus the key ring is the full data.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import shutil
import sqlite3
import subprocess
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, ValidationError
from sqlalchemy import Connection, Engine, create_engine, func, select, table, text
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.pool import NullPool

import app.db.models  # noqa: F401  (every wrapped-key kind registered)
from app.audit.service import VerifyReport, verify_chains
from app.crypto import wrapped
from app.crypto.errors import DataKeyShreddedError, SealedValueIntegrityError, UnknownKeyError
from app.crypto.models import DataKey
from app.crypto.service import KeyService
from app.crypto.wrapped import PLAIN_KID
from app.db.engine import make_engine
from app.db.rls import system_session
from app.operations.erasure_journal import (
    JournalContents,
    JournalError,
    ReplayReport,
    check_location,
    replay,
)
from app.victims.fields import VICTIM_FIELDS
from app.victims.models import Victim

FORMAT = "passage-backup/1"
MANIFEST = "manifest.json"
GLOBALS_FILE = "globals.sql"
DUMP_FILE = "database.dump"
SQLITE_FILE = "database.sqlite3"
_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
# pg_dump/pg_restore run with this, so a role subject to the FORCE'd row-level security of
# cases and victims (the owner, a backup role) sees and writes every row.
_PGOPTIONS = "-c passage.scope=system"


class BackupError(Exception):
    """A backup or restore step failed or was refused; the message says which and why."""


class RestoreStepFailed(BackupError):
    """A step of the restore drill broke; the restored database must not be opened to users.

    The message names the step and the kind of error only: database errors can quote
    values, and a restore runs over everybody's records.
    """

    def __init__(self, step: str, cause: BaseException) -> None:
        super().__init__(f"restore failed at step '{step}': {type(cause).__name__}")
        self.step = step


class FileEntry(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    bytes: int
    sha256: str


class Manifest(BaseModel):
    """What a backup holds. Ids and counts only: no personal data, no key material."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    format: Literal["passage-backup/1"]
    created_at: datetime
    engine: Literal["postgresql", "sqlite"]
    database: str
    server_version: str
    tool_version: str
    migration_head: str | None
    #: KEK id -> number of data keys it wraps. The key files themselves are never here.
    key_ids_in_use: dict[str, int]
    row_counts: dict[str, int]
    files: list[FileEntry]


# -- guards ------------------------------------------------------------------------------------
def _inside(child: Path, parent: Path) -> bool:
    child, parent = child.resolve(), parent.resolve()
    return child == parent or child.is_relative_to(parent)


def check_separation(output_dir: Path, keys_dir: Path, journal: Path | None = None) -> None:
    """Backups and keys never share a directory tree; the journal lives outside backups."""
    if _inside(output_dir, keys_dir):
        raise BackupError(
            f"refusing to write a backup inside the key directory {keys_dir}: "
            "a dump and its keys must never share an archive"
        )
    if _inside(keys_dir, output_dir):
        raise BackupError(
            f"refusing to write a backup to {output_dir}: it contains the key directory "
            f"{keys_dir}; a dump and its keys must never share an archive"
        )
    if journal is not None:
        try:
            check_location(journal, keys_dir=None, backup_dirs=[output_dir])
        except JournalError as exc:
            raise BackupError(str(exc)) from exc


# -- helpers -----------------------------------------------------------------------------------
def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _entry(path: Path) -> FileEntry:
    return FileEntry(name=path.name, bytes=path.stat().st_size, sha256=_sha256(path))


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_manifest(directory: Path, manifest: Manifest) -> None:
    tmp = directory / (MANIFEST + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(manifest.model_dump_json(indent=2) + "\n")
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, directory / MANIFEST)
    _fsync(directory)


def _new_backup_dir(output_dir: Path, now: datetime) -> Path:
    output_dir.mkdir(parents=True, exist_ok=True)
    target = output_dir / f"passage-{now.astimezone(UTC):%Y%m%dT%H%M%SZ}"
    if target.exists():
        raise BackupError(f"{target} already exists; wait a second or choose another directory")
    target.mkdir(mode=0o700)
    return target


def libpq_connection(url: str, *, database: str | None = None) -> tuple[str, dict[str, str]]:
    """A libpq conninfo (no password) and the environment carrying the password and options.

    The password goes through PGPASSWORD, never the command line (visible in `ps`).
    """
    from psycopg.conninfo import make_conninfo

    parsed = make_url(url)
    params: dict[str, Any] = {
        "host": parsed.host,
        "port": parsed.port,
        "user": parsed.username,
        "dbname": database or parsed.database,
        "application_name": "passage-backup",
    }
    for key, value in parsed.query.items():
        params[key] = value if isinstance(value, str) else value[-1]
    conninfo = make_conninfo(**{k: v for k, v in params.items() if v is not None})
    env = {"PGOPTIONS": _PGOPTIONS, "PGCONNECT_TIMEOUT": "10"}
    if parsed.password:
        env["PGPASSWORD"] = parsed.password
    return conninfo, env


def _tool(name: str, pg_bin: Path | None) -> str:
    if pg_bin is not None:
        candidate = pg_bin / name
        if candidate.is_file():
            return str(candidate)
        raise BackupError(f"{name} not found in {pg_bin}")
    found = shutil.which(name)
    if found is None:
        raise BackupError(f"{name} not found on PATH (install the PostgreSQL client tools)")
    return found


def _run(argv: list[str], env: Mapping[str, str], what: str) -> str:
    result = subprocess.run(  # noqa: S603 - fixed argv, no shell
        argv, env={**os.environ, **env}, capture_output=True, text=True, check=False
    )
    if result.returncode != 0:
        raise BackupError(
            f"{what} failed (exit {result.returncode}): " + " | ".join(_safe_stderr(result.stderr))
        )
    return result.stdout


def _safe_stderr(stderr: str) -> list[str]:
    """The tool's last error lines, without DETAIL/CONTEXT lines: those can quote row data
    (a COPY line, a duplicate key value), which must not reach a log or a terminal."""
    lines = [
        line
        for line in stderr.strip().splitlines()
        if not any(tag in line for tag in ("DETAIL:", "CONTEXT:", "HINT:"))
    ]
    return lines[-5:]


def _user_tables(conn: Connection) -> list[str]:
    if conn.dialect.name == "postgresql":
        names = conn.scalars(
            text(
                "SELECT tablename FROM pg_tables WHERE schemaname = current_schema() "
                "ORDER BY tablename"
            )
        ).all()
    else:
        names = conn.scalars(
            text(
                "SELECT name FROM sqlite_master WHERE type = 'table' "
                "AND name NOT LIKE 'sqlite_%' ORDER BY name"
            )
        ).all()
    bad = [n for n in names if not _IDENT.fullmatch(n)]
    if bad:
        raise BackupError("unexpected table names in the database: " + ", ".join(bad))
    return list(names)


def _describe(conn: Connection) -> tuple[dict[str, int], str | None, dict[str, int]]:
    """Row counts per table, migration head and key ids in use, as this connection sees them."""
    tables = _user_tables(conn)
    counts = {t: int(conn.scalar(select(func.count()).select_from(table(t))) or 0) for t in tables}
    head = None
    if "alembic_version" in tables:
        heads = conn.scalars(text("SELECT version_num FROM alembic_version")).all()
        head = ",".join(sorted(heads)) or None
    kids: dict[str, int] = {}
    for kind in wrapped.kinds():  # victim data keys, exchange keys, any later kind
        if kind.table not in tables:
            continue
        column = kind.model.__table__.c.kek_kid
        rows = conn.execute(select(column, func.count()).group_by(column))
        for kid, n in rows:
            kids[str(kid)] = kids.get(str(kid), 0) + int(n)
    return counts, head, dict(sorted(kids.items()))


def _system_scope(conn: Connection) -> None:
    if conn.dialect.name == "postgresql":
        conn.execute(text("SELECT set_config('passage.scope', 'system', true)"))


# -- backup ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class BackupResult:
    directory: Path
    manifest: Manifest


def backup(
    database_url: str,
    output_dir: Path,
    *,
    keys_dir: Path,
    journal: Path | None = None,
    pg_bin: Path | None = None,
    now: datetime | None = None,
) -> BackupResult:
    """Write a timestamped backup directory under output_dir; the manifest is written last."""
    check_separation(output_dir, keys_dir, journal)
    moment = now or datetime.now(UTC)
    if database_url.startswith("sqlite"):
        return _backup_sqlite(database_url, output_dir, moment)
    return _backup_postgres(database_url, output_dir, moment, pg_bin)


def _backup_postgres(
    url: str, output_dir: Path, now: datetime, pg_bin: Path | None
) -> BackupResult:
    pg_dump, pg_dumpall = _tool("pg_dump", pg_bin), _tool("pg_dumpall", pg_bin)
    conninfo, env = libpq_connection(url)
    database = make_url(url).database or ""
    directory = _new_backup_dir(output_dir, now)
    try:
        _run(
            [
                pg_dumpall,
                "--globals-only",
                "--no-role-passwords",
                "--no-password",
                f"--dbname={conninfo}",
                f"--file={directory / GLOBALS_FILE}",
            ],
            env,
            "pg_dumpall --globals-only",
        )
        engine = _pg_engine(url)
        try:
            with engine.connect() as conn:
                conn = conn.execution_options(isolation_level="REPEATABLE READ")
                with conn.begin():
                    _system_scope(conn)
                    snapshot = str(conn.scalar(text("SELECT pg_export_snapshot()")))
                    server = str(conn.scalar(text("SHOW server_version")))
                    counts, head, kids = _describe(conn)
                    # The dump reads the very snapshot the counts were taken in.
                    _run(
                        [
                            pg_dump,
                            "--format=custom",
                            "--no-password",
                            "--enable-row-security",
                            f"--snapshot={snapshot}",
                            "--lock-wait-timeout=120000",
                            f"--dbname={conninfo}",
                            f"--file={directory / DUMP_FILE}",
                        ],
                        env,
                        "pg_dump",
                    )
        finally:
            engine.dispose()
        version = _run([pg_dump, "--version"], {}, "pg_dump --version").strip()
        files = [directory / GLOBALS_FILE, directory / DUMP_FILE]
        for path in files:
            os.chmod(path, 0o600)
            _fsync(path)
        manifest = Manifest(
            format=FORMAT,
            created_at=now,
            engine="postgresql",
            database=database,
            server_version=server,
            tool_version=version,
            migration_head=head,
            key_ids_in_use=kids,
            row_counts=counts,
            files=[_entry(p) for p in files],
        )
        _write_manifest(directory, manifest)
    except BaseException:
        shutil.rmtree(directory, ignore_errors=True)
        raise
    return BackupResult(directory, manifest)


def sqlite_path(url: str) -> Path:
    database = make_url(url).database
    if not database or database == ":memory:":
        raise BackupError("an in-memory SQLite database cannot be backed up")
    return Path(database)


def _backup_sqlite(url: str, output_dir: Path, now: datetime) -> BackupResult:
    source = sqlite_path(url)
    if not source.is_file():
        raise BackupError(f"no SQLite database at {source}")
    directory = _new_backup_dir(output_dir, now)
    target = directory / SQLITE_FILE
    try:
        src = sqlite3.connect(source)
        dst = sqlite3.connect(target)
        try:
            # One step (pages=-1): the whole copy is read in a single read transaction, so it
            # is consistent even while the app writes (WAL mode).
            src.backup(dst, pages=-1)
        finally:
            dst.close()
            src.close()
        os.chmod(target, 0o600)
        _fsync(target)
        _sqlite_integrity(target)
        engine = make_engine(f"sqlite:///{target}")
        try:
            with engine.connect() as conn:
                counts, head, kids = _describe(conn)
        finally:
            engine.dispose()
        manifest = Manifest(
            format=FORMAT,
            created_at=now,
            engine="sqlite",
            database=source.name,
            server_version=sqlite3.sqlite_version,
            tool_version=f"sqlite3 backup API {sqlite3.sqlite_version}",
            migration_head=head,
            key_ids_in_use=kids,
            row_counts=counts,
            files=[_entry(target)],
        )
        _write_manifest(directory, manifest)
    except BaseException:
        shutil.rmtree(directory, ignore_errors=True)
        raise
    return BackupResult(directory, manifest)


def _sqlite_integrity(path: Path) -> None:
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        result = conn.execute("PRAGMA integrity_check").fetchone()
    finally:
        conn.close()
    if not result or result[0] != "ok":
        raise BackupError(f"{path.name} failed PRAGMA integrity_check")


# -- reading a backup --------------------------------------------------------------------------
def read_manifest(directory: Path) -> Manifest:
    path = directory / MANIFEST
    if not path.is_file():
        raise BackupError(f"{directory} has no {MANIFEST}: not a backup, or an unfinished one")
    try:
        return Manifest.model_validate_json(path.read_text())
    except ValidationError as exc:
        raise BackupError(f"{path}: invalid manifest ({exc.error_count()} problems)") from exc


def verify_backup(directory: Path) -> Manifest:
    """Check every file against the manifest's size and SHA-256 before anything is restored."""
    manifest = read_manifest(directory)
    for entry in manifest.files:
        path = directory / entry.name
        if not path.is_file():
            raise BackupError(f"{entry.name} is missing from {directory}")
        if path.stat().st_size != entry.bytes or _sha256(path) != entry.sha256:
            raise BackupError(f"{entry.name} does not match its manifest checksum")
    return manifest


# -- restore -----------------------------------------------------------------------------------
@dataclass
class RestoreReport:
    manifest: Manifest
    target: str
    row_counts: dict[str, int] = field(default_factory=dict)
    count_mismatches: dict[str, tuple[int, int]] = field(default_factory=dict)
    migration_head: str | None = None
    globals_errors: int | None = None
    journal: ReplayReport | None = None
    audit: VerifyReport | None = None
    sampled_keys: int = 0
    sampled_fields: int = 0
    sample_failures: int = 0
    #: KEK ids that wrapped keys in the restored database refer to but the key ring lacks.
    missing_kids: dict[str, int] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return (
            not self.missing_kids
            and not self.count_mismatches
            and self.migration_head == self.manifest.migration_head
            and self.audit is not None
            and self.audit.ok
            and self.sample_failures == 0
        )

    def lines(self) -> list[str]:
        out = [
            f"restored {self.manifest.engine} backup of {self.manifest.created_at:%Y-%m-%d %H:%M:%S}Z into {self.target}"
        ]
        if self.globals_errors is not None:
            out.append(
                f"globals applied ({self.globals_errors} statements refused, e.g. roles that already exist)"
            )
        if self.count_mismatches:
            for table, (want, got) in sorted(self.count_mismatches.items()):
                out.append(f"ROW COUNT MISMATCH {table}: manifest {want}, restored {got}")
        else:
            out.append(f"row counts match the manifest ({len(self.row_counts)} tables)")
        if self.migration_head != self.manifest.migration_head:
            out.append(
                f"MIGRATION HEAD {self.migration_head} differs from the manifest's {self.manifest.migration_head}"
            )
        else:
            out.append(f"migration head {self.migration_head}")
        out.append(self.journal.summary() if self.journal else "erasure journal NOT replayed")
        if self.audit is not None:
            out.append(
                f"audit: {self.audit.chains} chains, {self.audit.events} events, {len(self.audit.broken)} broken"
            )
            out += [
                f"BROKEN {b.chain_key} at event {b.seq}: {b.problem}" for b in self.audit.broken
            ]
        out += [
            f"MISSING KEY {kid}: {n} wrapped keys need it (restore its key file)"
            for kid, n in sorted(self.missing_kids.items())
        ]
        out.append(
            f"keys: unwrapped {self.sampled_keys} sampled data keys, opened {self.sampled_fields} "
            f"sealed fields, {self.sample_failures} failures"
        )
        return out


def restore(
    backup_dir: Path,
    target_url: str,
    *,
    keys: KeyService,
    journal: JournalContents | None,
    force: bool = False,
    apply_globals: bool = False,
    pg_bin: Path | None = None,
    sample: int = 20,
) -> RestoreReport:
    """Restore a backup, replay the erasure journal, verify the audit trail and the keys.

    `journal` None means the caller explicitly chose not to replay (the CLI refuses that
    unless asked); an empty journal is a JournalContents with no entries.
    """
    manifest = verify_backup(backup_dir)
    target_engine = make_url(target_url).get_backend_name()
    if target_engine != manifest.engine:
        raise BackupError(f"a {manifest.engine} backup cannot be restored into {target_engine}")
    report = RestoreReport(manifest=manifest, target=_safe_target(target_url))
    with _step("restore the database"):
        if manifest.engine == "postgresql":
            report.globals_errors = _restore_postgres(
                backup_dir, target_url, force=force, apply_globals=apply_globals, pg_bin=pg_bin
            )
            engine = _pg_engine(target_url)
        else:
            _restore_sqlite(backup_dir, target_url, force=force)
            engine = make_engine(target_url)
    try:
        with _step("compare row counts"), engine.connect() as conn, conn.begin():
            _system_scope(conn)
            report.row_counts, report.migration_head, in_use = _describe(conn)
        for table, want in manifest.row_counts.items():
            got = report.row_counts.get(table, -1)
            if got != want:
                report.count_mismatches[table] = (want, got)
        factory = sessionmaker(bind=engine, expire_on_commit=False)
        if journal is not None:
            with (
                _step("replay the erasure journal"),
                system_session(factory()) as session,
                session.begin(),
            ):
                report.journal = replay(session, keys, journal)
        with _step("verify the audit chains"), system_session(factory()) as session:
            report.audit = verify_chains(session)
        with _step("check the key ids"):
            usable = set(keys.keyring.usable_kids())
            report.missing_kids = {
                kid: n for kid, n in in_use.items() if kid != PLAIN_KID and kid not in usable
            }
            with system_session(factory()) as session:
                _sample_keys(session, keys, sample, report)
    finally:
        engine.dispose()
    return report


@contextlib.contextmanager
def _step(name: str) -> Iterator[None]:
    try:
        yield
    except BackupError:
        raise
    except Exception as exc:
        raise RestoreStepFailed(name, exc) from exc


def _safe_target(url: str) -> str:
    return make_url(url).render_as_string(hide_password=True)


_COUNT_RELATIONS = text(
    "SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
    "WHERE n.nspname NOT IN ('pg_catalog', 'information_schema') "
    "AND n.nspname NOT LIKE 'pg_toast%' AND n.nspname NOT LIKE 'pg_temp%'"
)
_COUNT_FUNCTIONS = text(
    "SELECT count(*) FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace "
    "WHERE n.nspname NOT IN ('pg_catalog', 'information_schema') "
    "AND n.nspname NOT LIKE 'pg_toast%' AND n.nspname NOT LIKE 'pg_temp%'"
)


def _database_is_empty(conn: Connection) -> bool:
    """No table, sequence, view or function outside the system schemas."""
    return not conn.scalar(_COUNT_RELATIONS) and not conn.scalar(_COUNT_FUNCTIONS)


def _pg_engine(url: str | URL, **kwargs: Any) -> Engine:
    return create_engine(
        url, poolclass=NullPool, connect_args={"prepare_threshold": None}, **kwargs
    )


def _create_database_if_missing(target_url: str) -> bool:
    """Create the target through the server's `postgres` database. True if it was created.

    Needs CREATEDB; without it (or without access to `postgres`) the DBA creates the database
    beforehand and the restore goes on into it.
    """
    url = make_url(target_url)
    name = url.database or ""
    admin = _pg_engine(url.set(database="postgres"), isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            found = conn.scalar(
                text("SELECT count(*) FROM pg_database WHERE datname = :name"), {"name": name}
            )
            if found:
                return False
            if not _IDENT.fullmatch(name):
                raise BackupError(f"refusing to create a database named {name!r}; create it first")
            conn.execute(text(f'CREATE DATABASE "{name}"'))
            return True
    except OperationalError:
        return False  # no access to the maintenance database: the target must exist
    finally:
        admin.dispose()


def _prepare_postgres_target(target_url: str, *, force: bool) -> bool:
    """Make sure the target exists and is empty. Returns True when it must be cleaned first."""
    if _create_database_if_missing(target_url):
        return False
    engine = _pg_engine(target_url)
    try:
        with engine.connect() as conn:
            empty = _database_is_empty(conn)
    except OperationalError as exc:
        raise BackupError(
            f"cannot connect to {_safe_target(target_url)} (does it exist, may this role create it?)"
        ) from exc
    finally:
        engine.dispose()
    if empty:
        return False
    if not force:
        raise BackupError(
            f"the target database {make_url(target_url).database} is not empty; restore into a "
            "fresh database, or pass --force to replace its contents (one transaction: all or "
            "nothing)"
        )
    return True


def _restore_postgres(
    backup_dir: Path, target_url: str, *, force: bool, apply_globals: bool, pg_bin: Path | None
) -> int | None:
    pg_restore = _tool("pg_restore", pg_bin)
    globals_errors = None
    if apply_globals:
        psql = _tool("psql", pg_bin)
        conninfo, env = libpq_connection(target_url, database="postgres")
        result = subprocess.run(  # noqa: S603 - fixed argv, no shell
            [
                psql,
                "-X",
                "-q",
                "--no-password",
                f"--dbname={conninfo}",
                "-f",
                str(backup_dir / GLOBALS_FILE),
            ],
            env={**os.environ, **env},
            capture_output=True,
            text=True,
            check=False,
        )
        if result.returncode not in (0, 3):
            raise BackupError(f"psql could not apply {GLOBALS_FILE} (exit {result.returncode})")
        globals_errors = sum(1 for line in result.stderr.splitlines() if "ERROR:" in line)
    clean = _prepare_postgres_target(target_url, force=force)
    conninfo, env = libpq_connection(target_url)
    argv = [
        pg_restore,
        "--exit-on-error",
        "--single-transaction",
        "--no-password",
        "--enable-row-security",
        f"--dbname={conninfo}",
    ]
    if clean:
        argv += ["--clean", "--if-exists"]
    _run([*argv, str(backup_dir / DUMP_FILE)], env, "pg_restore")
    return globals_errors


def _restore_sqlite(backup_dir: Path, target_url: str, *, force: bool) -> None:
    source = backup_dir / SQLITE_FILE
    _sqlite_integrity(source)
    target = sqlite_path(target_url)
    if target.exists() and target.stat().st_size > 0:
        conn = sqlite3.connect(target)
        try:
            tables = conn.execute(
                "SELECT count(*) FROM sqlite_master WHERE type = 'table'"
            ).fetchone()[0]
        finally:
            conn.close()
        if tables and not force:
            raise BackupError(
                f"the target database {target.name} is not empty; restore into a new file, "
                "or pass --force to replace it"
            )
    target.parent.mkdir(parents=True, exist_ok=True)
    src = sqlite3.connect(f"file:{source}?mode=ro", uri=True)
    dst = sqlite3.connect(target)
    try:
        src.backup(dst, pages=-1)
    finally:
        dst.close()
        src.close()
    os.chmod(target, 0o600)


def _sample_keys(session: Session, keys: KeyService, sample: int, report: RestoreReport) -> None:
    """Prove the key ring opens this backup: unwrap a sample of data keys, open their fields.

    Nothing opened is printed or logged; only counts are kept.
    """
    victim_ids = session.scalars(select(DataKey.victim_id).order_by(DataKey.id).limit(sample)).all()
    for victim_id in victim_ids:
        try:
            codec = keys.codec_for(session, victim_id)
            report.sampled_keys += 1
            victim = session.get(Victim, victim_id)
            if victim is None:
                continue
            for sealed in VICTIM_FIELDS:
                blob = getattr(victim, sealed.name)
                if blob is not None:
                    codec.open("victims", sealed.name, victim.id, blob)
                    report.sampled_fields += 1
        except (SealedValueIntegrityError, UnknownKeyError, DataKeyShreddedError):
            report.sample_failures += 1
