"""Coordinator dashboards at national scale. Prints figures; asserts nothing.

Creates a fresh PostgreSQL database, migrates it as the owner (as tests/conftest.py does),
loads N synthetic cases with the bulk demo path (``app.demo.load_demo_data``; about 15 audit
events per case) as a system job, builds the reporting store from the audit timeline, then
times what a coordinator's screens compute, connected as the least-privilege app role with
row-level security in the national scope:

* the full dashboard: indicators, stage funnel, RG -> identification distribution and
  trend, overdue deadlines by agency (each starts with the incremental store refresh);
* the same with filters and with a breakdown by nationality;
* the dashboard right after 100 cases changed (incremental refresh of 100 cases);
* each export (NRM tables, Eurostat tables, CTDC k-anonymous records; CSV);
* a drill-down page (50 references behind a figure) and a case timeline.

Targets (the issue): dashboard < 1 s and drill-down < 200 ms at 100,000 cases, on this
2-core machine. Each figure is the median of ``--repeat`` runs (max shown too).

    .venv/bin/python bench/coordinator.py                      # 100,000 cases (~several minutes)
    .venv/bin/python bench/coordinator.py --cases 2000         # smoke run, well under a minute
    .venv/bin/python bench/coordinator.py --database-url postgresql+psycopg://postgres@127.0.0.1:5432/test
"""

from __future__ import annotations

import argparse
import os
import platform
import secrets
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, func, select, text
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from app.audit import service as audit  # noqa: E402
from app.audit.models import AuditEvent  # noqa: E402
from app.auth.actor import Actor  # noqa: E402
from app.auth.models import User  # noqa: E402
from app.cases.models import Case  # noqa: E402
from app.config import Settings  # noqa: E402
from app.context import AppContext, build_context  # noqa: E402
from app.crypto.keyring import FileKeyRing  # noqa: E402
from app.db import rls  # noqa: E402
from app.db.session import Database  # noqa: E402
from app.demo import load_demo_data  # noqa: E402
from app.reporting import exports  # noqa: E402
from app.reporting.indicators import dashboard as dashboard_data  # noqa: E402
from app.reporting.indicators import (  # noqa: E402
    decision_trend,
    drill_down,
    funnel,
    indicators,
    make_filters,
    overdue_by_agency,
)
from app.reporting.store import refresh  # noqa: E402

DEFAULT_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
DASHBOARD_TARGET = 1.0
DRILL_TARGET = 0.200


def migrate(owner_url: str, app_role: str | None) -> None:
    """Same as tests/conftest.py `_migrate`."""
    from alembic import command
    from alembic.config import Config

    config = Config(str(REPO / "alembic.ini"))
    config.set_main_option("sqlalchemy.url", owner_url)
    config.attributes["app_role"] = app_role
    command.upgrade(config, "head")


def admin_engine(url: str) -> Any:
    return create_engine(url, isolation_level="AUTOCOMMIT")


def ensure_role(url: str, role: str) -> None:
    if not role.replace("_", "").isalnum():
        raise SystemExit("--app-role must be a plain identifier")
    engine = admin_engine(url)
    with engine.connect() as conn:
        if not conn.execute(text("SELECT 1 FROM pg_roles WHERE rolname = :r"), {"r": role}).first():
            conn.execute(text(f"CREATE ROLE {role} LOGIN NOSUPERUSER NOBYPASSRLS"))
    engine.dispose()


def timed(fn: Callable[[], object], repeat: int) -> tuple[float, float]:
    runs = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        runs.append(time.perf_counter() - start)
    return statistics.median(runs), max(runs)


class Bench:
    def __init__(self, args: argparse.Namespace, workdir: Path) -> None:
        self.args = args
        self.reused = bool(args.reuse)
        self.name = args.reuse or f"passage_bench_coord_{secrets.token_hex(4)}"
        admin = make_url(args.database_url)
        self.owner_url = admin.set(database=self.name).render_as_string(hide_password=False)
        self.app_url = self.owner_url
        if args.app_role:
            ensure_role(args.database_url, args.app_role)
            self.app_url = admin.set(
                database=self.name, username=args.app_role, password=None
            ).render_as_string(hide_password=False)
        engine = admin_engine(args.database_url)
        with engine.connect() as conn:
            if not self.reused:
                conn.execute(text(f'CREATE DATABASE "{self.name}"'))
            self.server = str(conn.execute(text("SHOW server_version")).scalar_one()).split()[0]
        engine.dispose()
        if not self.reused:
            migrate(self.owner_url, args.app_role or None)
        keys = workdir / "keys"
        if args.keep or self.reused:  # the kept database needs its keys for a later --reuse
            keys = Path(tempfile.gettempdir()) / f"{self.name}-keys"
        if not self.reused:
            FileKeyRing.initialise(keys)
        self.settings = Settings(
            environment="test",
            database_url=self.app_url,
            migration_database_url=self.owner_url,
            keys_dir=keys,
            log_level="WARNING",
        )
        self.ctx: AppContext = build_context(self.settings)
        self.database = Database(self.settings)

    def drop(self) -> None:
        self.database.dispose()
        engine = admin_engine(self.args.database_url)
        with engine.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)'))
        engine.dispose()

    def analyze(self) -> None:
        """Planner statistics, as autovacuum keeps them in production (it may be off here).

        Run as the owner: ANALYZE by the least-privilege app role skips tables it does not
        own, which left the reporting tables without statistics (and with bad plans).
        """
        engine = admin_engine(self.owner_url)
        with engine.connect() as conn:
            conn.execute(text("VACUUM ANALYZE"))
        engine.dispose()

    def system(self) -> Session:
        return rls.system_session(self.database.sessionmaker())

    def coordinator_session(self, actor: Actor) -> Session:
        """A request's session: the coordinator's national scope (row-level security)."""
        session = self.database.sessionmaker()
        session.begin()
        rls.apply_actor(session, actor, self.ctx.policy)
        return session


def row(label: str, seconds: float, worst: float | None = None, target: float | None = None) -> str:
    text_ = f"  {label:<58} {seconds * 1000:9.1f} ms"
    if worst is not None:
        text_ += f"   (max {worst * 1000:7.1f} ms)"
    if target is not None:
        verdict = "meets" if seconds < target else "MISSES"
        text_ += f"   {verdict} target < {target * 1000:.0f} ms"
    return text_


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cases", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=2026)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--database-url", default=os.environ.get("BENCH_DATABASE_URL", DEFAULT_URL))
    parser.add_argument("--app-role", default="passage_app")
    parser.add_argument("--keep", action="store_true", help="keep the database at the end")
    parser.add_argument(
        "--reuse",
        metavar="DATABASE",
        help="time again on a database kept by --keep (skips the load; implies --keep)",
    )
    args = parser.parse_args(argv)
    if not args.database_url.startswith("postgresql"):
        raise SystemExit("the coordinator benchmark runs on PostgreSQL (--database-url)")
    return args


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)
    workdir = Path(tempfile.mkdtemp(prefix="passage-bench-"))
    bench = None
    try:
        bench = Bench(args, workdir)
        run(bench, args)
    finally:
        if bench is not None and not (args.keep or args.reuse):
            bench.drop()
        elif bench is not None:
            print(
                f"\nkept database {bench.name} (keys in /tmp); time again with --reuse {bench.name}"
            )
        shutil.rmtree(workdir, ignore_errors=True)


def run(bench: Bench, args: argparse.Namespace) -> None:
    ctx = bench.ctx
    print(
        f"Passage coordinator benchmark: {args.cases:,} cases, PostgreSQL {bench.server}, "
        f"Python {platform.python_version()}, {os.cpu_count()} CPU(s)"
    )
    print(f"app role: {args.app_role or '(owner)'}; figures: median of {args.repeat} runs\n")

    # -- load ------------------------------------------------------------------------------
    if not bench.reused:
        start = time.perf_counter()
        with bench.system() as session, session.begin():
            load_demo_data(
                session, ctx, cases=args.cases, seed=args.seed, bulk=True, refresh_reporting=False
            )
        load_seconds = time.perf_counter() - start
    with bench.system() as session:
        events = session.scalar(select(func.count()).select_from(AuditEvent)) or 0
        cases = session.scalar(select(func.count()).select_from(Case)) or 0
    print("Load (bulk demo path, one transaction)")
    print(f"  {cases:,} cases, {events:,} audit events ({events / max(cases, 1):.1f} per case)")
    if not bench.reused:
        print(
            f"  {load_seconds:.1f} s = {cases / load_seconds:,.0f} cases/s, "
            f"{events / load_seconds:,.0f} events/s   (target >= 1,000 cases/s)"
        )
        start = time.perf_counter()
        with bench.system() as session, session.begin():
            report = refresh(session, ctx, full=True)
        build = time.perf_counter() - start
        print(
            f"  reporting store built from the timeline: {report.cases:,} cases, "
            f"{report.episodes:,} episodes in {build:.1f} s (one-off; then incremental)"
        )
    print()
    bench.analyze()
    with bench.system() as session:
        user = session.scalars(select(User).where(User.username == "coordinator.marc")).one()
        actor = Actor(
            user_id=user.id,
            role="coordinator",
            agency_id=user.agency_id,
            agency_type="coordinator_office",
            username=user.username,
        )
        some_case = session.scalars(select(Case.id).limit(1)).one()

    def in_request(fn: Callable[[Session], object]) -> Callable[[], object]:
        def call() -> object:
            session = bench.coordinator_session(actor)
            try:
                result = fn(session)
                session.commit()  # one transaction per request, as the app does
                return result
            finally:
                session.close()

        return call

    everything = make_filters(ctx)

    def dashboard(filters: Any) -> Callable[[Session], object]:
        def compute(session: Session) -> object:
            return dashboard_data(session, ctx, filters)  # what /coordinator/dashboard computes

        return compute

    print("Dashboards (coordinator request: national scope, row-level security)")
    for label, fn in (
        ("full dashboard, all cases", dashboard(everything)),
        ("full dashboard, 2026, UK profile, women", dashboard(make_filters(ctx, period="2026", country_profile="uk", sex="female"))),
        ("full dashboard, event basis, last quarter", dashboard(make_filters(ctx, period="2026-Q3", basis="event"))),
        ("indicators by nationality (breakdown)", lambda s: indicators(s, ctx, everything, group_by="nationality")),
        ("  of which: indicators only", lambda s: indicators(s, ctx, everything)),
        ("  of which: stage funnel", lambda s: funnel(s, ctx, everything)),
        ("  of which: decision distribution and trend", lambda s: decision_trend(s, ctx, everything)),
        ("  of which: overdue by agency", lambda s: overdue_by_agency(s, ctx, everything)),
        ("  of which: store refresh check (nothing changed)", lambda s: refresh(s, ctx)),
    ):  # fmt: skip
        median, worst = timed(in_request(fn), args.repeat)
        target = DASHBOARD_TARGET if label.startswith(("full", "indicators by")) else None
        print(row(label, median, worst, target))

    # -- incremental refresh after activity --------------------------------------------------
    def touch_and_dashboard() -> object:
        with bench.system() as session, session.begin():
            ids = session.scalars(select(Case.id).order_by(func.random()).limit(100)).all()
            system = Actor.system("bench")
            for case_id in ids:
                audit.record(
                    session, system, "fields_read", case_id=case_id, details={"purpose": "bench"}
                )
        start = time.perf_counter()
        in_request(dashboard(everything))()
        return time.perf_counter() - start

    samples = [float(touch_and_dashboard()) for _ in range(args.repeat)]  # type: ignore[arg-type]
    print(
        row(
            "full dashboard after 100 cases changed",
            statistics.median(samples),
            max(samples),
            DASHBOARD_TARGET,
        )
    )
    print()

    # -- exports -----------------------------------------------------------------------------
    print("Exports (CSV, audited; k = 5 for tables, 11 for records)")
    for kind in exports.KINDS:
        median, worst = timed(
            in_request(
                lambda s, kind=kind: exports.build_export(s, ctx, actor, kind, "csv", everything)
            ),
            args.repeat,
        )
        print(row(kind, median, worst))
    print()

    # -- drill-down --------------------------------------------------------------------------
    print("Drill-down")
    from app.audit.service import case_timeline
    from app.cases.service import load_case

    for label, fn in (
        ("references behind 'RG decision late' (page of 50)", lambda s: drill_down(s, ctx, everything, indicator="rg_late")),
        ("references awaiting identification > 365 days", lambda s: drill_down(s, ctx, everything, indicator="id_pending_over_365")),
        ("references with an overdue deadline (page 3)", lambda s: drill_down(s, ctx, everything, overdue_kind="any", offset=100)),
        ("one case's timeline (coordinator view)", lambda s: case_timeline(s, load_case(s, ctx, actor, some_case).id)),
    ):  # fmt: skip
        median, worst = timed(in_request(fn), args.repeat)
        print(row(label, median, worst, DRILL_TARGET))


if __name__ == "__main__":
    main()
