"""PostgreSQL: racing transitions, and an audit table the app role cannot rewrite."""

from __future__ import annotations

import threading
import uuid

import pytest
from sqlalchemy import create_engine, func, select, text
from sqlalchemy.exc import DBAPIError

from app.audit.models import AuditEvent
from app.audit.service import verify_chains
from app.auth.service import actor_for
from app.cases import service as cases
from app.cases import transitions as tx
from app.cases.models import Case
from app.cases.schemas import RegistrationIn
from app.cases.workflow import Event
from app.errors import GuardRefused, StaleVersion
from tests.builders import registration
from tests.conftest import World

pytestmark = pytest.mark.postgres_only

TRIALS = 200


def _setup(live, n_cases: int):
    with live.session() as s, s.begin():
        world = World(s, live.password_hash)
        ngo = world.agency("ngo")
        worker = actor_for(world.user("ngo_caseworker", ngo), ngo)
        ids = []
        for _ in range(n_cases):
            payload = registration()
            payload["case"]["indicators"] = ["debt_bondage"]
            ids.append(
                cases.register(s, live.ctx, worker, RegistrationIn.model_validate(payload)).id
            )
    return worker, ids


def test_duel_exactly_one_of_two_racing_transitions_wins(live) -> None:
    worker, ids = _setup(live, TRIALS)
    outcomes: list[tuple[str, str]] = []
    lock = threading.Lock()

    def attempt(case_id: uuid.UUID, barrier: threading.Barrier) -> None:
        with live.session() as s:
            barrier.wait()
            try:
                with s.begin():
                    tx.transition(
                        s, live.ctx, worker, case_id, tx.TransitionInput(Event.record_screening), 1
                    )
                result = "ok"
            except StaleVersion:
                result = "stale"
            except GuardRefused:
                result = "refused"
        with lock:
            outcomes.append((str(case_id), result))

    for case_id in ids:
        barrier = threading.Barrier(2)
        threads = [threading.Thread(target=attempt, args=(case_id, barrier)) for _ in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()

    per_case: dict[str, list[str]] = {}
    for case_id, result in outcomes:
        per_case.setdefault(case_id, []).append(result)
    assert len(per_case) == TRIALS
    for results in per_case.values():
        assert sorted(results) == ["ok", "stale"], results

    with live.session() as s:
        versions = set(s.scalars(select(Case.version).where(Case.id.in_(ids))))
        assert versions == {2}  # no lost update, no double apply
        transitions = s.scalar(
            select(func.count()).select_from(AuditEvent).where(AuditEvent.action == "transition")
        )
        assert transitions == TRIALS  # audit events == successful transitions
        assert verify_chains(s).ok


def test_app_role_cannot_rewrite_audit_and_owner_tampering_is_found(live) -> None:
    _setup(live, 1)
    # The app connects as the least-privilege role: UPDATE, DELETE, TRUNCATE all refused.
    for statement in (
        "UPDATE audit_events SET action = 'nothing' WHERE seq = 1",
        "DELETE FROM audit_events WHERE seq = 1",
        "TRUNCATE audit_events",
    ):
        with live.database.engine.connect() as conn:
            with pytest.raises(DBAPIError) as info:
                conn.execute(text(statement))
            assert (
                "permission denied" in str(info.value).lower()
                or "append-only" in str(info.value).lower()
            )
    with live.database.engine.connect() as conn:
        owner = conn.execute(
            text("SELECT tableowner FROM pg_tables WHERE tablename = 'audit_events'")
        ).scalar()
        me = conn.execute(text("SELECT current_user")).scalar()
        assert owner != me

    # Even the owner is stopped by the triggers; a superuser who disables them is caught.
    owner_engine = create_engine(live.env.owner_url)
    with owner_engine.begin() as conn:
        with pytest.raises(DBAPIError, match="append-only"), conn.begin_nested():
            conn.execute(text("UPDATE audit_events SET action = 'x' WHERE seq = 1"))
        conn.execute(text("ALTER TABLE audit_events DISABLE TRIGGER audit_events_no_update_delete"))
        conn.execute(
            text(
                "UPDATE audit_events SET details = '{\"stage\": \"closed\"}' WHERE seq = 1 AND action = 'case_registered'"
            )
        )
        conn.execute(text("ALTER TABLE audit_events ENABLE TRIGGER audit_events_no_update_delete"))
    owner_engine.dispose()
    with live.session() as s:
        report = verify_chains(s)
    assert not report.ok
    broken = report.broken[0]
    assert broken.seq == 1 and "does not match its hash" in broken.problem


def test_audit_verify_command_reports_the_first_broken_link(live, monkeypatch) -> None:
    from typer.testing import CliRunner

    from app.cli import cli

    _setup(live, 2)
    for key, value in {
        "PASSAGE_DATABASE_URL": live.env.app_url,
        "PASSAGE_KEYS_DIR": str(live.keys_dir),
        "PASSAGE_ENVIRONMENT": "test",
    }.items():
        monkeypatch.setenv(key, value)
    from app.config import get_settings

    get_settings.cache_clear()
    runner = CliRunner()
    ok = runner.invoke(cli, ["audit", "verify"])
    assert ok.exit_code == 0, ok.output
    assert "all chains verify" in ok.output
    owner_engine = create_engine(live.env.owner_url)
    with owner_engine.begin() as conn:
        conn.execute(text("ALTER TABLE audit_events DISABLE TRIGGER audit_events_no_update_delete"))
        # Remove the last event of one case chain: the chain head still remembers it.
        conn.execute(
            text(
                "DELETE FROM audit_events WHERE ctid IN (SELECT ctid FROM audit_events WHERE chain_key LIKE 'case:%' LIMIT 1)"
            )
        )
        conn.execute(text("ALTER TABLE audit_events ENABLE TRIGGER audit_events_no_update_delete"))
    owner_engine.dispose()
    bad = runner.invoke(cli, ["audit", "verify"])
    get_settings.cache_clear()
    assert bad.exit_code == 1
    assert "BROKEN" in bad.output and "truncated" in bad.output
