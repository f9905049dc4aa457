"""Command-line entry points for backups, restore, retention and the erasure journal.

`app/cli.py` calls `register(cli)`. Output holds counts, ids of keys and paths, never a
personal value. Exit codes: 0 ok, 1 a check failed (broken chain, count mismatch, overdue
journal), 2 refused (bad arguments, unsafe paths, non-empty target).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

# Every model before any command runs (a restore crashed on an unresolved foreign key).
import app.db.models  # noqa: F401
from app.config import Settings, get_settings

if TYPE_CHECKING:
    from sqlalchemy.orm import Session


def _session(settings: Settings) -> Session:
    from app.db.rls import system_session
    from app.db.session import Database

    return system_session(Database(settings).sessionmaker())


def _journal_path(settings: Settings, explicit: Path | None) -> Path | None:
    from app.operations.erasure_journal import configured_journal

    return explicit or configured_journal(settings)


def drain_journal(settings: Settings, journal: Path) -> int:
    """Drain every pending erasure into the journal, one committed batch at a time."""
    from app.db.rls import system_session
    from app.db.session import Database
    from app.operations.erasure_journal import check_location, drain_outbox, ensure_journal

    check_location(journal, keys_dir=settings.keys_dir)
    ensure_journal(journal)
    database = Database(settings)
    total = 0
    try:
        while True:
            with system_session(database.sessionmaker()) as session, session.begin():
                done = drain_outbox(session, journal)
            total += done
            if done == 0:
                return total
    finally:
        database.dispose()


def register(cli: typer.Typer, settings_factory: Callable[[], Settings] = get_settings) -> None:
    """Add `backup`, `restore`, `retention …` and `erasure-journal …` to the `passage` CLI."""
    retention_cli = typer.Typer(
        help="Retention schedule: check it, apply it.", no_args_is_help=True
    )
    journal_cli = typer.Typer(
        help="Erasure journal kept outside the database: drain, status, replay.",
        no_args_is_help=True,
    )
    cli.add_typer(retention_cli, name="retention")
    cli.add_typer(journal_cli, name="erasure-journal")

    @cli.command("backup")
    def backup_command(
        output_dir: Annotated[
            Path, typer.Option(help="Directory receiving a timestamped backup directory.")
        ],
        database_url: Annotated[
            str | None,
            typer.Option(
                envvar="PASSAGE_BACKUP_DATABASE_URL",
                help="Direct (not PgBouncer) owner or backup-role URL; default: the migration URL.",
                show_default=False,
            ),
        ] = None,
        pg_bin: Annotated[Path | None, typer.Option(help="Directory of pg_dump & co.")] = None,
    ) -> None:
        """Back up the database (PostgreSQL: globals + pg_dump -Fc; SQLite: a consistent copy)."""
        from app.operations.backup import BackupError, backup

        settings = settings_factory()
        try:
            result = backup(
                database_url or settings.owner_database_url,
                output_dir,
                keys_dir=settings.keys_dir,
                journal=_journal_path(settings, None),
                pg_bin=pg_bin,
            )
        except BackupError as exc:
            typer.echo(f"backup refused or failed: {exc}", err=True)
            raise typer.Exit(2) from exc
        manifest = result.manifest
        typer.echo(f"backup written to {result.directory}")
        for entry in manifest.files:
            typer.echo(f"  {entry.name}  {entry.bytes} bytes  sha256 {entry.sha256}")
        typer.echo(f"  migration head {manifest.migration_head}")
        typer.echo(
            "  key ids in use: "
            + (", ".join(f"{k} ({n})" for k, n in manifest.key_ids_in_use.items()) or "none")
        )
        typer.echo("Keep the key directory out of this backup's archive, bucket and custody.")

    @cli.command("restore")
    def restore_command(
        backup_dir: Annotated[
            Path, typer.Argument(help="A backup directory (with manifest.json).")
        ],
        target_url: Annotated[
            str,
            typer.Option(
                envvar="PASSAGE_RESTORE_DATABASE_URL",
                help="Database to restore into (owner role, direct). Created if missing.",
                show_default=False,
            ),
        ],
        force: Annotated[
            bool, typer.Option(help="Replace the contents of a non-empty target.")
        ] = False,
        globals_: Annotated[
            bool,
            typer.Option(
                "--globals", help="Apply globals.sql first (a NEW cluster only: roles, grants)."
            ),
        ] = False,
        journal: Annotated[
            Path | None,
            typer.Option(help="Journal file or directory (every node's *.log is read)."),
        ] = None,
        skip_journal_replay: Annotated[
            bool,
            typer.Option(help="Do not replay the journal (erased victims may come back!)."),
        ] = False,
        sample: Annotated[int, typer.Option(help="Data keys to unwrap as a key check.")] = 20,
        pg_bin: Annotated[Path | None, typer.Option(help="Directory of pg_restore & psql.")] = None,
    ) -> None:
        """Restore a backup, replay the erasure journal, verify the audit trail and keys."""
        from app.crypto.keyring import FileKeyRing
        from app.crypto.service import KeyService
        from app.operations.backup import BackupError, RestoreStepFailed, restore
        from app.operations.erasure_journal import JournalError, read_journals

        settings = settings_factory()
        path = _journal_path(settings, journal)
        contents = None
        if not skip_journal_replay:
            if path is None:
                typer.echo(
                    "no erasure journal configured (PASSAGE_ERASURE_JOURNAL or --journal); "
                    "refusing to restore without replaying it (--skip-journal-replay to override)",
                    err=True,
                )
                raise typer.Exit(2)
            try:
                contents = read_journals(path)
            except JournalError as exc:
                typer.echo(str(exc), err=True)
                raise typer.Exit(2) from exc
        keys = KeyService(FileKeyRing(settings.keys_dir))
        try:
            report = restore(
                backup_dir,
                target_url,
                keys=keys,
                journal=contents,
                force=force,
                apply_globals=globals_,
                pg_bin=pg_bin,
                sample=sample,
            )
        except RestoreStepFailed as exc:
            typer.echo(f"{exc}; do not open this database to users", err=True)
            raise typer.Exit(1) from exc
        except BackupError as exc:
            typer.echo(f"restore refused or failed: {exc}", err=True)
            raise typer.Exit(2) from exc
        for line in report.lines():
            typer.echo(line)
        if not report.ok:
            raise typer.Exit(1)
        typer.echo("restore verified")

    @retention_cli.command("check")
    def retention_check() -> None:
        """Validate policies/retention.toml and print the schedule."""
        from app.policies.retention import (
            POLICY_FILE,
            RetentionPolicyError,
            load_retention_policy,
        )

        settings = settings_factory()
        try:
            policy = load_retention_policy(settings.policies_dir / POLICY_FILE)
        except RetentionPolicyError as exc:
            typer.echo(str(exc), err=True)
            raise typer.Exit(2) from exc
        for rule in policy.rules:
            reason = f" / {rule.closure_reason}" if rule.closure_reason else ""
            typer.echo(f"{rule.name:36} {rule.stage}{reason}: {rule.describe()}")
        typer.echo(f"{'default':36} closed (other reasons): {policy.default.describe()}")
        typer.echo(
            "legal hold: proceedings "
            + ", ".join(policy.legal_hold.proceedings_status)
            + "; compensation claimed"
        )

    @retention_cli.command("apply")
    def retention_apply(
        dry_run: Annotated[bool, typer.Option(help="Report what would be erased.")] = False,
        journal: Annotated[
            Path | None, typer.Option(help="Erasure journal; default PASSAGE_ERASURE_JOURNAL.")
        ] = None,
    ) -> None:
        """Crypto-shred victims whose every case has expired (held cases are never touched)."""
        from app.context import build_context
        from app.db.rls import system_session
        from app.db.session import Database
        from app.operations import retention
        from app.policies.retention import POLICY_FILE, RetentionPolicyError, load_retention_policy

        settings = settings_factory()
        path = _journal_path(settings, journal)
        if path is None and not dry_run:
            typer.echo(
                "no erasure journal configured (PASSAGE_ERASURE_JOURNAL or --journal): "
                "erasures must be journaled",
                err=True,
            )
            raise typer.Exit(2)
        try:
            policy = load_retention_policy(settings.policies_dir / POLICY_FILE)
        except RetentionPolicyError as exc:
            typer.echo(str(exc), err=True)
            raise typer.Exit(2) from exc
        ctx = build_context(settings)
        database = Database(settings)
        try:
            report = retention.apply(
                lambda: system_session(database.sessionmaker()), ctx, policy, dry_run=dry_run
            )
        finally:
            database.dispose()
        if path is not None and not dry_run:
            # Each erasure was journaled before it committed; the drain adds any erasure
            # made earlier where no journal was configured.
            report.journaled = len(report.erased_ids) + drain_journal(settings, path)
        for line in report.lines():
            typer.echo(line)
        if report.not_journaled:
            raise typer.Exit(1)

    @journal_cli.command("drain")
    def journal_drain(
        journal: Annotated[
            Path | None, typer.Option(help="Default PASSAGE_ERASURE_JOURNAL.")
        ] = None,
    ) -> None:
        """Append pending erasures to the journal (fsync'd); run from a timer every few minutes."""
        from app.operations.erasure_journal import JournalError

        settings = settings_factory()
        path = _journal_path(settings, journal)
        if path is None:
            typer.echo("no erasure journal configured (PASSAGE_ERASURE_JOURNAL)", err=True)
            raise typer.Exit(2)
        try:
            done = drain_journal(settings, path)
        except JournalError as exc:
            typer.echo(str(exc), err=True)
            raise typer.Exit(2) from exc
        typer.echo(f"journaled {done} erasures")

    @journal_cli.command("status")
    def journal_status(
        journal: Annotated[
            Path | None, typer.Option(help="Journal file or directory (every *.log in it is read).")
        ] = None,
        max_pending_minutes: Annotated[
            int | None, typer.Option(help="Exit 1 if an erasure waits longer than this.")
        ] = None,
    ) -> None:
        """Pending erasures (not yet journaled) and the journal's size."""
        from app.db.base import utcnow
        from app.operations.erasure_journal import pending_count, read_journals

        settings = settings_factory()
        with _session(settings) as session:
            pending, oldest = pending_count(session)
        path = _journal_path(settings, journal)
        if path is not None and path.exists():
            contents = read_journals(path)
            typer.echo(
                f"journal {path}: {len(contents.entries)} entries for "
                f"{len(contents.victim_ids())} victims, {len(contents.malformed_lines)} malformed lines"
            )
        else:
            typer.echo("journal: not configured or not created yet")
        age = (utcnow() - oldest) if oldest is not None else timedelta(0)
        typer.echo(
            f"pending: {pending} erasures, oldest waiting {int(age.total_seconds() // 60)} min"
        )
        if max_pending_minutes is not None and age > timedelta(minutes=max_pending_minutes):
            raise typer.Exit(1)

    @journal_cli.command("replay")
    def journal_replay(
        journal: Annotated[
            Path | None, typer.Option(help="Journal file or directory (every *.log in it is read).")
        ] = None,
    ) -> None:
        """Re-shred journaled victims in the configured database (after a point-in-time recovery)."""
        from app.crypto.keyring import FileKeyRing
        from app.crypto.service import KeyService
        from app.operations.erasure_journal import JournalError, read_journals, replay

        settings = settings_factory()
        path = _journal_path(settings, journal)
        if path is None:
            typer.echo("no erasure journal configured (PASSAGE_ERASURE_JOURNAL)", err=True)
            raise typer.Exit(2)
        try:
            contents = read_journals(path)
        except JournalError as exc:
            typer.echo(str(exc), err=True)
            raise typer.Exit(2) from exc
        keys = KeyService(FileKeyRing(settings.keys_dir))
        with _session(settings) as session, session.begin():
            report = replay(session, keys, contents)
        typer.echo(report.summary())
