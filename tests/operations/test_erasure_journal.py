"""Erasure journal: append-only file outside the database, fed by an outbox, replayed idempotently."""

from __future__ import annotations

import dataclasses
import os
import stat
import uuid
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import func, select

from app.audit.models import AuditEvent
from app.audit.service import verify_chains
from app.cases import service
from app.cases.models import OutboxMessage
from app.crypto.errors import DataKeyShreddedError
from app.crypto.models import BlindIndexEntry, DataKey
from app.operations.erasure_journal import (
    HEADER,
    TOPIC,
    JournalContents,
    JournalEntry,
    JournalError,
    append_entries,
    check_location,
    drain_outbox,
    enqueue_erasure,
    read_journal,
    read_journals,
    replay,
)
from app.victims.models import Victim
from tests.operations.support import administrator, caseworker, erase, register

WHEN = datetime(2026, 11, 24, 10, 15, 3, 123456, tzinfo=UTC)


def test_lines_are_appended_fsynced_private_and_read_back(tmp_path: Path) -> None:
    journal = tmp_path / "journal" / "erasures.log"
    first = JournalEntry(uuid.uuid4(), WHEN, "subject_request")
    second = JournalEntry(uuid.uuid4(), WHEN, "retention_expired")
    append_entries(journal, [first])
    append_entries(journal, [second])

    text = journal.read_text()
    assert text.startswith(HEADER)
    assert text.splitlines()[1:] == [
        f"{first.victim_id}\t2026-11-24T10:15:03.123456Z\tsubject_request",
        f"{second.victim_id}\t2026-11-24T10:15:03.123456Z\tretention_expired",
    ]
    assert stat.S_IMODE(journal.stat().st_mode) == 0o600
    contents = read_journal(journal)
    assert contents.entries == [first, second] and contents.malformed_lines == []


def test_a_torn_last_line_never_swallows_the_next_entry(tmp_path: Path) -> None:
    journal = tmp_path / "erasures.log"
    kept = JournalEntry(uuid.uuid4(), WHEN, "subject_request")
    append_entries(journal, [kept])
    with open(journal, "a") as handle:  # a crash in the middle of a write
        handle.write(str(uuid.uuid4())[:20])
    later = JournalEntry(uuid.uuid4(), WHEN, "subject_request")
    append_entries(journal, [later])

    contents = read_journal(journal)
    assert contents.entries == [kept, later]
    assert contents.malformed_lines == [3]


def test_only_codes_and_ids_can_be_journaled() -> None:
    for reason in ("Subject Request", "name: Élodie N'Diaye", "", "x" * 101, "a\tb"):
        with pytest.raises(JournalError):
            JournalEntry(uuid.uuid4(), WHEN, reason)
    with pytest.raises(JournalError):
        JournalEntry(uuid.uuid4(), datetime(2026, 1, 1), "subject_request")


def test_a_missing_journal_is_an_error_not_an_empty_list(tmp_path: Path) -> None:
    with pytest.raises(JournalError, match="does not exist"):
        read_journal(tmp_path / "nowhere.log")


def test_the_journal_is_refused_inside_a_backup_or_key_directory(tmp_path: Path) -> None:
    backups, keys = tmp_path / "backups", tmp_path / "keys"
    with pytest.raises(JournalError, match="backup directory"):
        check_location(backups / "erasures.log", keys_dir=keys, backup_dirs=[backups])
    with pytest.raises(JournalError, match="key directory"):
        check_location(keys / "erasures.log", keys_dir=keys, backup_dirs=[backups])
    check_location(tmp_path / "journal" / "erasures.log", keys_dir=keys, backup_dirs=[backups])


def test_enqueue_is_idempotent_within_a_transaction(session) -> None:
    victim_id = uuid.uuid4()
    assert enqueue_erasure(session, victim_id, reason_code="subject_request") is not None
    assert enqueue_erasure(session, victim_id, reason_code="subject_request") is None
    session.flush()
    assert enqueue_erasure(session, victim_id, reason_code="subject_request") is None
    rows = session.scalars(select(OutboxMessage).where(OutboxMessage.topic == TOPIC)).all()
    assert [r.payload["victim_id"] for r in rows] == [str(victim_id)]
    assert set(rows[0].payload) == {"victim_id", "erased_at", "reason_code"}


def test_a_rolled_back_enqueue_is_enqueued_again(session) -> None:
    victim_id = uuid.uuid4()
    attempt = session.begin_nested()
    enqueue_erasure(session, victim_id, reason_code="subject_request")
    session.flush()
    attempt.rollback()
    assert enqueue_erasure(session, victim_id, reason_code="subject_request") is not None


def test_drain_writes_then_marks_and_a_lost_commit_only_duplicates(live, tmp_path: Path) -> None:
    journal = tmp_path / "erasures.log"
    actor, admin = caseworker(live), administrator(live)
    victims = [register(live, actor, f"Drain{i}") for i in range(3)]
    # Erasures made where no journal is configured wait in the outbox for the drain.
    unjournaled = dataclasses.replace(
        live.ctx, settings=live.settings.model_copy(update={"erasure_journal": None})
    )
    for v in victims[:2]:
        with live.session() as session, session.begin():
            service.erase_victim(
                session,
                unjournaled,
                admin,
                v.victim_id,
                legal_basis="GDPR Art. 17",
                reason_code="subject_request",
            )

    # A drain whose commit is lost (crash after the fsync): the lines stay, the rows too.
    with live.session() as session:
        assert drain_outbox(session, journal) == 2
        session.rollback()
    with live.session() as session, session.begin():
        assert drain_outbox(session, journal) == 2
    with live.session() as session, session.begin():
        assert drain_outbox(session, journal) == 0
        pending = session.scalar(
            select(func.count()).where(
                OutboxMessage.topic == TOPIC, OutboxMessage.processed_at.is_(None)
            )
        )
        assert pending == 0

    contents = read_journal(journal)
    assert len(contents.entries) == 4  # at least once: duplicated, never lost
    assert contents.victim_ids() == {v.victim_id for v in victims[:2]}
    assert {e.reason_code for e in contents.entries} == {"subject_request"}
    # Nothing about the person reaches the file.
    assert "Drain" not in journal.read_text()


def test_replay_reshreds_only_what_came_back_and_is_idempotent(live, tmp_path: Path) -> None:
    actor, admin = caseworker(live), administrator(live)
    erased = register(live, actor, "Erased")
    came_back = register(live, actor, "CameBack")  # as after a restore predating its erasure
    untouched = register(live, actor, "Untouched")
    erase(live, admin, erased.victim_id)
    contents = JournalContents(
        entries=[
            JournalEntry(erased.victim_id, WHEN, "subject_request"),
            JournalEntry(came_back.victim_id, WHEN, "retention_expired"),
            JournalEntry(came_back.victim_id, WHEN.replace(year=2027), "retention_expired"),
            JournalEntry(uuid.uuid4(), WHEN, "subject_request"),  # registered after the backup
        ],
        malformed_lines=[7],
    )

    with live.session() as session, session.begin():
        report = replay(session, live.ctx.keys, contents)
    assert (report.victims, report.shredded_again, report.already_erased, report.not_present) == (
        3,
        1,
        1,
        1,
    )
    assert report.malformed_lines == 1 and report.shredded_ids == [came_back.victim_id]

    with live.session() as session:
        for table in (DataKey, BlindIndexEntry):
            count = select(func.count()).where(table.victim_id == came_back.victim_id)
            assert session.scalar(count) == 0
        victim = session.get(Victim, came_back.victim_id)
        assert victim is not None and victim.erased_at == WHEN  # the original erasure time
        with pytest.raises(DataKeyShreddedError):
            live.ctx.keys.codec_for(session, came_back.victim_id)
        # Everyone else still opens.
        codec = live.ctx.keys.codec_for(session, untouched.victim_id)
        other = session.get(Victim, untouched.victim_id)
        assert other is not None
        assert codec.open("victims", "family_name", other.id, other.family_name) == "Untouched"
        events = session.scalars(
            select(AuditEvent).where(
                AuditEvent.victim_id == came_back.victim_id,
                AuditEvent.action == "victim_erasure_replayed",
            )
        ).all()
        assert {e.chain_key for e in events} == {
            f"case:{came_back.case_id}",
            f"victim:{came_back.victim_id}",
        }
        assert all(e.details["reason_code"] == "retention_expired" for e in events)
        assert verify_chains(session).ok
        audit_total = session.scalar(select(func.count()).select_from(AuditEvent))

    with live.session() as session, session.begin():
        again = replay(session, live.ctx.keys, contents)
    assert again.shredded_again == 0 and again.already_erased == 2
    with live.session() as session:
        assert session.scalar(select(func.count()).select_from(AuditEvent)) == audit_total


def test_erase_victim_itself_enqueues_the_journal_line(live) -> None:
    actor, admin = caseworker(live), administrator(live)
    victim = register(live, actor, "Hooked")
    with live.session() as session, session.begin():
        service.erase_victim(
            session,
            live.ctx,
            admin,
            victim.victim_id,
            legal_basis="GDPR Art. 17",
            reason_code="subject_request",
        )
    with live.session() as session:
        rows = session.scalars(select(OutboxMessage).where(OutboxMessage.topic == TOPIC)).all()
    assert [r.payload["victim_id"] for r in rows] == [str(victim.victim_id)]


def test_journal_file_is_created_with_owner_only_permissions_even_with_a_loose_umask(
    tmp_path: Path,
) -> None:
    old = os.umask(0o000)
    try:
        append_entries(tmp_path / "erasures.log", [])
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "erasures.log").stat().st_mode) == 0o600


def test_an_erasure_is_on_disk_in_the_journal_before_it_is_acknowledged(live) -> None:
    actor = caseworker(live)
    admin_user, _ = live.user("admin", "coordinator_office")
    victim = register(live, actor, "WriteAhead")
    journal = live.settings.erasure_journal
    assert journal is not None
    before = read_journal(journal).entries if journal.exists() else []
    answer = live.api(admin_user).post(
        f"/api/v1/victims/{victim.victim_id}/erasure",
        json={"legal_basis": "GDPR Art. 17", "reason_code": "subject_request"},
    )
    assert answer.status_code == 200, answer.text
    # No drain ran: the line was appended and fsynced before the transaction committed,
    # and its outbox row was marked processed in that same transaction.
    after = read_journal(journal).entries
    assert [e.victim_id for e in after[len(before) :]] == [victim.victim_id]
    with live.session() as session:
        rows = session.scalars(select(OutboxMessage).where(OutboxMessage.topic == TOPIC)).all()
        assert [r.processed_at is not None for r in rows] == [True]


def test_an_erasure_whose_journal_cannot_be_written_is_not_made(live, tmp_path: Path) -> None:
    actor = caseworker(live)
    admin_user, _ = live.user("admin", "coordinator_office")
    victim = register(live, actor, "Unjournaled")
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("a file where the journal's directory should be\n")
    live.ctx.settings = live.settings.model_copy(
        update={"erasure_journal": blocker / "erasures.log"}
    )
    answer = live.api(admin_user).post(
        f"/api/v1/victims/{victim.victim_id}/erasure",
        json={"legal_basis": "GDPR Art. 17", "reason_code": "subject_request"},
    )
    assert answer.status_code == 503, answer.text
    assert int(answer.headers["Retry-After"]) > 0
    assert "nothing was erased" in answer.json()["error"]["message"]
    assert "Unjournaled" not in answer.text and str(blocker) not in answer.text
    with live.session() as session:
        assert session.scalar(select(func.count()).where(DataKey.victim_id == victim.victim_id))
        assert session.get(Victim, victim.victim_id).erased_at is None
        erased_events = session.scalar(
            select(func.count()).where(
                AuditEvent.victim_id == victim.victim_id, AuditEvent.action == "victim_erased"
            )
        )
        assert erased_events == 0


def test_every_nodes_journal_in_the_directory_is_read(tmp_path: Path) -> None:
    """Each app node appends to its own file; restore and replay read them all."""
    first = JournalEntry(uuid.uuid4(), WHEN, "subject_request")
    second = JournalEntry(uuid.uuid4(), WHEN, "retention_expired")
    append_entries(tmp_path / "journal" / "erasures-node-a.log", [first])
    append_entries(tmp_path / "journal" / "erasures-node-b.log", [second])
    (tmp_path / "journal" / "notes.txt").write_text("not a journal\n")
    for location in (tmp_path / "journal", tmp_path / "journal" / "erasures-node-a.log"):
        contents = read_journals(location)
        assert contents.victim_ids() == {first.victim_id, second.victim_id}
    with pytest.raises(JournalError, match="does not exist"):
        read_journals(tmp_path / "nowhere" / "erasures.log")
