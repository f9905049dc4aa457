"""`passage` command line: init, migrate, serve, demo data, users, keys, audit."""

from __future__ import annotations

import getpass
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from sqlalchemy import select

# Every model, before any command runs: a query that touches one table must be able to
# resolve the foreign keys of all (tests/operations/test_cli_commands.py runs each command).
import app.db.models  # noqa: F401
from app.config import DEMO_KEYS_MARKER, REPO_ROOT, get_settings
from app.operations.commands import register as register_operations_commands
from app.transnational.commands import register as register_exchange_commands

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from app.context import AppContext

cli = typer.Typer(help="Passage referral mechanism administration.", no_args_is_help=True)
keys_cli = typer.Typer(
    help="Key-encryption keys: status, rotation, retirement.", no_args_is_help=True
)
audit_cli = typer.Typer(help="Audit trail checks.", no_args_is_help=True)
cli.add_typer(keys_cli, name="keys")
cli.add_typer(audit_cli, name="audit")


def run_migrations(url: str | None = None) -> None:
    from alembic import command
    from alembic.config import Config

    config = Config(str(REPO_ROOT / "alembic.ini"))
    if url:
        config.set_main_option("sqlalchemy.url", url)
    command.upgrade(config, "head")


def _context() -> AppContext:
    from app.context import build_context

    return build_context(get_settings())


def _session() -> Session:
    from app.db.rls import system_session
    from app.db.session import Database

    return system_session(Database(get_settings()).sessionmaker())


@cli.command()
def init(
    demo: Annotated[
        bool, typer.Option(help="Mark keys as demo keys (refused in production).")
    ] = False,
) -> None:
    """Create the key directory (if missing) and migrate the database to head."""
    from app.crypto.keyring import MANIFEST, FileKeyRing

    settings = get_settings()
    if not (settings.keys_dir / MANIFEST).exists():
        FileKeyRing.initialise(settings.keys_dir)
        if demo:
            (settings.keys_dir / DEMO_KEYS_MARKER).write_text(
                "keys created for demonstration only\n"
            )
        typer.echo(f"created keys in {settings.keys_dir} (0600)")
    else:
        from app.crypto.keyring import SIGNING_KEY, create_signing_key

        if not (settings.keys_dir / SIGNING_KEY).exists():
            create_signing_key(settings.keys_dir / SIGNING_KEY)
        typer.echo(f"keys already present in {settings.keys_dir}")
    if settings.is_sqlite:
        Path(settings.database_url.removeprefix("sqlite:///")).parent.mkdir(
            parents=True, exist_ok=True
        )
    run_migrations()
    typer.echo("database migrated to head")


@cli.command()
def migrate() -> None:
    """Run database migrations to head (a one-shot step before the app starts)."""
    run_migrations()
    typer.echo("database migrated to head")


@cli.command()
def serve(
    host: str = "127.0.0.1",
    port: int = 8000,
    workers: int = 1,
    reload: bool = False,
) -> None:
    """Serve the application with uvicorn."""
    import os
    import shutil
    import tempfile

    import uvicorn

    from app.operations.metrics import MULTIPROC_ENV, prepare_multiprocess_dir

    # Each worker is a process with its own counters; with a shared directory (inherited
    # by every worker) /metrics adds them up. Emptied now, before any worker writes to it.
    own_dir = None
    if workers > 1 and not os.environ.get(MULTIPROC_ENV):
        own_dir = os.environ[MULTIPROC_ENV] = tempfile.mkdtemp(prefix="passage-metrics-")
    prepare_multiprocess_dir()
    try:
        uvicorn.run(
            "app.main:create_app",
            factory=True,
            host=host,
            port=port,
            workers=workers,
            reload=reload,
            proxy_headers=True,
            server_header=False,
            access_log=True,
        )
    finally:
        if own_dir:
            shutil.rmtree(own_dir, ignore_errors=True)


@cli.command("demo-data")
def demo_data(
    cases: Annotated[int, typer.Option(help="How many synthetic cases to create.")] = 50,
    seed: int = 2026,
) -> None:
    """Load demo agencies, users and synthetic cases (fictional people)."""
    from app.demo import load_demo_data

    ctx = _context()
    with _session() as session, session.begin():
        summary = load_demo_data(session, ctx, cases=cases, seed=seed)
    typer.echo(summary)


@cli.command("create-user")
def create_user(
    username: str,
    role: str,
    agency: Annotated[str, typer.Option(help="Agency name")],
    display_name: str = "",
) -> None:
    """Create a user; the password is read from the terminal (or PASSAGE_NEW_PASSWORD)."""
    import os

    from app.agencies.models import Agency
    from app.auth.models import User
    from app.auth.passwords import hash_password, password_problems

    ctx = _context()
    if role not in ctx.policy.roles:
        raise typer.BadParameter(f"unknown role; choose one of {', '.join(ctx.policy.roles)}")
    password = os.environ.get("PASSAGE_NEW_PASSWORD") or getpass.getpass("Password: ")
    problems = password_problems(password, username=username)
    if problems:
        typer.echo("password refused: " + "; ".join(problems), err=True)
        raise typer.Exit(2)
    with _session() as session, session.begin():
        found = session.scalars(select(Agency).where(Agency.name == agency)).one_or_none()
        if found is None:
            typer.echo(f"no agency named {agency!r}", err=True)
            raise typer.Exit(2)
        if found.type not in ctx.policy.role(role).agency_types:
            typer.echo(f"role {role} cannot belong to a {found.type} agency", err=True)
            raise typer.Exit(2)
        session.add(
            User(
                username=username.casefold(),
                display_name=display_name or username,
                agency_id=found.id,
                role=role,
                password_hash=hash_password(password),
            )
        )
    typer.echo(f"user {username} created")


@keys_cli.command("status")
def keys_status() -> None:
    """Show key-encryption keys and how many wrapped keys of each kind each one wraps."""
    from app.crypto.wrapped import PLAIN_KID

    ctx = _context()
    with _session() as session:
        by_kind = ctx.keys.keys_in_use_by_kind(session)
    for rec in ctx.keys.keyring.records():
        if rec.retired:
            state = "retired"
        elif rec.kid == ctx.keys.keyring.active_kid:
            state = "active"
        else:
            state = "retiring" if rec.retiring else "usable"
        wraps = ", ".join(f"{counts.get(rec.kid, 0)} {kind}" for kind, counts in by_kind.items())
        typer.echo(f"{rec.kid}  {state:8}  created {rec.created_at}  wraps {wraps}")
    unknown = {
        kid
        for counts in by_kind.values()
        for kid in counts
        if kid != PLAIN_KID and kid not in ctx.keys.keyring.usable_kids()
    }
    for kid in sorted(unknown):
        typer.echo(f"{kid}  MISSING  wrapped keys refer to a key that is not in the ring", err=True)
    if unknown:
        raise typer.Exit(1)


@keys_cli.command("rotate")
def keys_rotate(batch_size: int = 500) -> None:
    """Add a key-encryption key and re-wrap every wrapped key under it (fields untouched).

    What an earlier, interrupted rotation left under older keys is finished first.
    """
    from app.crypto.rotation import RotationIncomplete, rotate

    ctx = _context()
    try:
        result = rotate(_session, ctx.keys, batch_size=batch_size)
    except RotationIncomplete as exc:
        typer.echo(f"rotation incomplete: {exc}", err=True)
        raise typer.Exit(1) from exc
    if result.resumed:
        typer.echo("finished an earlier rotation that had not completed")
    done = ", ".join(f"{n} {kind}" for kind, n in sorted(result.rewrapped.items())) or "nothing"
    typer.echo(f"new active key {result.active_kid}; re-wrapped {done}")
    if result.relabelled:
        fixed = ", ".join(f"{n} {kind}" for kind, n in sorted(result.relabelled.items()))
        typer.echo(f"repaired key labels of {fixed}")


@keys_cli.command("retire")
def keys_retire(kid: str) -> None:
    """Retire an old key and destroy its file (refused while anything is wrapped by it).

    Waits for requests that wrapped a key under it before the rotation, re-wraps what they
    committed, then checks every kind of wrapped key again.
    """
    from app.crypto.errors import KeyFileError, UnknownKeyError
    from app.crypto.rotation import RotationIncomplete, retire

    ctx = _context()
    try:
        result = retire(_session, ctx.keys, kid)
    except (RotationIncomplete, KeyFileError, UnknownKeyError) as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(2) from exc
    late = sum(result.rewrapped.values())
    typer.echo(f"key {kid} retired and destroyed ({late} late wrapped keys re-wrapped first)")


@audit_cli.command("verify")
def audit_verify() -> None:
    """Recompute every audit hash chain and report the first broken link of each."""
    from app.audit.service import verify_chains

    with _session() as session:
        report = verify_chains(session)
    typer.echo(f"checked {report.chains} chains, {report.events} events")
    for link in report.broken:
        typer.echo(f"BROKEN {link.chain_key} at event {link.seq}: {link.problem}")
    if not report.ok:
        raise typer.Exit(1)
    typer.echo("all chains verify")


@cli.command()
def deadlines(
    agency: Annotated[str | None, typer.Option(help="Only this agency (name).")] = None,
    fail_on_overdue: bool = False,
) -> None:
    """List overdue and soon-due cases per agency (also the periodic job hook)."""
    from app.agencies.models import Agency
    from app.cases.transitions import overdue_report
    from app.db.base import utcnow

    ctx = _context()
    now = utcnow()
    with _session() as session:
        agencies = {a.id: a for a in session.scalars(select(Agency))}
        ids = [a.id for a in agencies.values() if a.name == agency] if agency else None
        if agency and not ids:
            typer.echo(f"no agency named {agency!r}", err=True)
            raise typer.Exit(2)
        rows = overdue_report(session, ctx, now, agency_ids=ids)
    current = None
    overdue = 0
    for case, deadline, status in sorted(
        rows, key=lambda r: (agencies[r[0].owning_agency_id].name, r[2] != "overdue", r[1].due_at)
    ):
        name = agencies[case.owning_agency_id].name
        if name != current:
            typer.echo(f"\n{name}")
            current = name
        overdue += status == "overdue"
        typer.echo(
            f"  {status:9} {deadline.due_at:%Y-%m-%d %H:%M} {case.reference}  {deadline.kind}  ({case.stage})"
        )
    typer.echo(f"\n{overdue} overdue, {len(rows) - overdue} due soon")
    if fail_on_overdue and overdue:
        raise typer.Exit(1)


# backup, restore, retention and erasure-journal commands (app/operations/commands.py)
register_operations_commands(cli)
register_exchange_commands(cli)


def main() -> None:
    try:
        cli()
    except KeyboardInterrupt:
        sys.exit(130)
