"""`passage exchange dispatch`: deliver the transnational outbox (run it from a timer,
e.g. every minute; deliveries are idempotent by package id, so overlapping runs are safe)."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Annotated

import typer

from app.config import Settings, get_settings


def register(cli: typer.Typer, settings_factory: Callable[[], Settings] = get_settings) -> None:
    exchange_cli = typer.Typer(
        help="Transnational exchange: deliver queued messages to partners.", no_args_is_help=True
    )
    cli.add_typer(exchange_cli, name="exchange")

    @exchange_cli.command("dispatch")
    def dispatch_command(
        limit: Annotated[int, typer.Option(help="At most this many messages per run.")] = 100,
    ) -> None:
        """Deliver due messages, record signed receipts, apply consent withdrawals."""
        from app.context import build_context
        from app.db.session import Database
        from app.transnational.dispatcher import dispatch

        settings = settings_factory()
        database = Database(settings)
        try:
            report = dispatch(build_context(settings), database.sessionmaker, limit=limit)
        finally:
            database.dispose()
        summary = {
            "delivered": report.delivered,
            "refused": report.refused,
            "retrying": report.retrying,
            "failed": report.failed,
            "cancelled": report.cancelled,
            "withdrawals": report.withdrawals,
            "problems": len(report.problems),  # codes are in the audit trail and the log
        }
        typer.echo(json.dumps(summary))
        if report.failed:
            raise typer.Exit(1)
