"""Erasure journal: victim ids that were crypto-shredded, kept outside the database.

A restore brings back whatever the backup held, including data keys that were destroyed
after the backup was taken. The journal is the memory that survives a restore: one line per
erasure, replayed after every restore (and after a point-in-time recovery) so an erased
victim never comes back. Lines hold a victim id, a time and a reason code, never a value
about the person.

An erasure is acknowledged only once its line is on disk outside the database:

1. `enqueue_erasure` adds an outbox row (topic `erasure.journal`) in the erasure's own
   transaction and, when the journal is configured, remembers the line for this session.
2. Just before that transaction commits (a `before_commit` listener), the line is appended
   to the journal and fsynced, and the outbox row is marked processed in the same
   transaction. If the journal cannot be written, the commit does not happen: nothing is
   erased and the request answers 503. If the commit fails after the fsync, the journal
   holds a line for an erasure that was requested and authorised but not committed; a
   replay then erases that victim, which is what was asked (erasing beats resurrecting).
3. `drain_outbox` (the `passage erasure-journal drain` job, also run by `passage backup`
   and `passage retention apply`) appends the rows of erasures made without a configured
   journal (embedded evaluation set-ups) and marks them processed. A crash between the
   append and the commit repeats lines; it never loses one.

So the journal is at-least-once, and `replay` is idempotent: a victim that is already
erased (no data key, no blind-index row) is skipped, an unknown id (registered after the
backup) is counted and skipped.

File format (UTF-8, append-only, `#` starts a comment):

    # passage erasure journal v1: victim_id<TAB>erased_at<TAB>reason_code
    0193f7d2-...<TAB>2026-11-24T10:15:03Z<TAB>subject_request
"""

from __future__ import annotations

import fcntl
import os
import re
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import event, exists, func, select
from sqlalchemy.orm import Session

from app.audit import service as audit
from app.auth.actor import Actor
from app.cases.models import Case, OutboxMessage
from app.crypto.models import BlindIndexEntry, DataKey
from app.db.base import utcnow
from app.errors import ServiceUnavailable
from app.victims.models import Victim

if TYPE_CHECKING:
    from app.config import Settings
    from app.crypto.service import KeyService

TOPIC = "erasure.journal"
HEADER = "# passage erasure journal v1: victim_id<TAB>erased_at<TAB>reason_code\n"
ENV_VAR = "PASSAGE_ERASURE_JOURNAL"
REPLAY_ACTOR = Actor.system("erasure_replay")
_ENQUEUED = "passage.erasure_journal.enqueued"
_WRITE_AHEAD = "passage.erasure_journal.write_ahead"
_REASON = re.compile(r"^[a-z0-9_]{1,100}$")


class JournalError(Exception):
    """The journal cannot be written or read safely; the message names the file."""


@dataclass(frozen=True)
class JournalEntry:
    victim_id: uuid.UUID
    erased_at: datetime
    reason_code: str

    def __post_init__(self) -> None:
        if not _REASON.fullmatch(self.reason_code):
            raise JournalError("a reason code is lower-case letters, digits and underscores")
        if self.erased_at.tzinfo is None:
            raise JournalError("erased_at must be timezone-aware")

    def line(self) -> str:
        stamp = self.erased_at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        return f"{self.victim_id}\t{stamp}\t{self.reason_code}\n"

    @classmethod
    def parse(cls, line: str) -> JournalEntry:
        parts = line.rstrip("\n").split("\t")
        if len(parts) != 3:
            raise ValueError("expected 3 tab-separated fields")
        victim_id = uuid.UUID(parts[0])
        erased_at = datetime.fromisoformat(parts[1].replace("Z", "+00:00"))
        if erased_at.tzinfo is None:
            raise ValueError("erased_at has no time zone")
        return cls(victim_id, erased_at, parts[2])


@dataclass(frozen=True)
class JournalContents:
    entries: list[JournalEntry]
    #: Line numbers that could not be parsed (a torn last write after a crash, or tampering).
    malformed_lines: list[int]

    def victim_ids(self) -> set[uuid.UUID]:
        return {e.victim_id for e in self.entries}


@dataclass
class ReplayReport:
    entries: int = 0
    victims: int = 0
    shredded_again: int = 0
    already_erased: int = 0
    not_present: int = 0
    malformed_lines: int = 0
    shredded_ids: list[uuid.UUID] = field(default_factory=list)

    def summary(self) -> str:
        return (
            f"erasure journal: {self.entries} entries for {self.victims} victims; "
            f"{self.shredded_again} shredded again, {self.already_erased} already erased, "
            f"{self.not_present} not in this database, {self.malformed_lines} malformed lines"
        )


# -- configuration ------------------------------------------------------------------------------
def configured_journal(settings: Settings) -> Path | None:
    """The journal path (`Settings.erasure_journal`, PASSAGE_ERASURE_JOURNAL); None if unset."""
    return settings.erasure_journal


def _inside(child: Path, parent: Path) -> bool:
    child, parent = child.resolve(), parent.resolve()
    return child == parent or child.is_relative_to(parent)


def check_location(
    journal: Path, *, keys_dir: Path | None, backup_dirs: Iterable[Path] = ()
) -> None:
    """The journal must survive what it protects against: never inside a backup or key dir."""
    for directory in backup_dirs:
        if _inside(journal, directory):
            raise JournalError(
                f"the erasure journal {journal} is inside the backup directory {directory}: "
                "it must be kept outside the database and its backups"
            )
    if keys_dir is not None and _inside(journal, keys_dir):
        raise JournalError(
            f"the erasure journal {journal} is inside the key directory {keys_dir}; keep it apart"
        )


# -- step 1: in the erasure transaction -----------------------------------------------------------
def enqueue_erasure(
    session: Session,
    victim_id: uuid.UUID,
    *,
    reason_code: str,
    erased_at: datetime | None = None,
    journal: Path | None = None,
) -> OutboxMessage | None:
    """Promise a journal line for this erasure, in the erasure's transaction (never commits).

    Idempotent within a transaction: if this session already holds (pending or flushed) a
    journal row for the victim, nothing is added; so a caller may call it after
    `erase_victim` whether or not that function enqueues the line itself. Rows of a
    rolled-back transaction are expunged from the session, so a retry enqueues again.
    """
    moment = erased_at or utcnow()
    JournalEntry(victim_id, moment, reason_code)  # validates the reason code
    enqueued: dict[uuid.UUID, OutboxMessage] = session.info.setdefault(_ENQUEUED, {})
    earlier = enqueued.get(victim_id)
    if earlier is not None and earlier in session:
        return None
    message = OutboxMessage(
        topic=TOPIC,
        payload={
            "victim_id": str(victim_id),
            "erased_at": moment.astimezone(UTC).isoformat(),
            "reason_code": reason_code,
        },
        created_at=moment,
    )
    session.add(message)
    enqueued[victim_id] = message
    if journal is not None:
        entry = JournalEntry(victim_id, moment, reason_code)
        session.info.setdefault(_WRITE_AHEAD, []).append((journal, entry, message))
    return message


def _write_ahead(session: Session) -> None:
    """Before the erasure commits: its journal line, appended and fsynced (see module doc)."""
    if session.in_nested_transaction():
        return  # a SAVEPOINT: only the real commit counts
    pending: list[tuple[Path, JournalEntry, OutboxMessage]] = session.info.pop(_WRITE_AHEAD, [])
    live = [(path, entry, row) for path, entry, row in pending if row in session]
    by_path: dict[Path, list[JournalEntry]] = {}
    for path, entry, _row in live:
        by_path.setdefault(path, []).append(entry)
    for path, entries in by_path.items():
        try:
            append_entries(path, entries)
        except JournalError as exc:
            # Raised before the commit: nothing is erased, and the request says so.
            raise ServiceUnavailable(
                "The erasure could not be recorded in the erasure journal, so nothing was "
                "erased. Try again in a minute; if it persists, tell the administrator.",
                retry_after=60,
            ) from exc
    now = utcnow()
    for _path, _entry, row in live:
        row.processed_at = now


def _forget_write_ahead(session: Session) -> None:
    if not session.in_nested_transaction():
        session.info.pop(_WRITE_AHEAD, None)


def _listen() -> None:
    for name, listener in (
        ("before_commit", _write_ahead),
        ("after_rollback", _forget_write_ahead),
    ):
        if not event.contains(Session, name, listener):
            event.listen(Session, name, listener)


_listen()


# -- step 2: the file ---------------------------------------------------------------------------
def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def ensure_journal(path: Path) -> None:
    """Create the journal (0600, with its header) if it does not exist yet."""
    if path.exists():
        return
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_APPEND, 0o600)
        except FileExistsError:
            return
        try:
            os.write(fd, HEADER.encode())
            os.fsync(fd)
        finally:
            os.close(fd)
        _fsync_dir(path.parent)
    except OSError as exc:
        raise JournalError(f"cannot create the erasure journal {path}: {exc.strerror}") from exc


def append_entries(path: Path, entries: Sequence[JournalEntry]) -> None:
    """Append lines and fsync before returning. Concurrent writers serialise on a file lock."""
    ensure_journal(path)
    if not entries:
        return
    data = "".join(entry.line() for entry in entries).encode()
    fd = os.open(path, os.O_WRONLY | os.O_APPEND)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        size = os.fstat(fd).st_size
        if size:
            # A torn last line (crash mid-write) must not swallow the next entry.
            with open(path, "rb") as reader:
                reader.seek(size - 1)
                if reader.read(1) != b"\n":
                    data = b"\n" + data
        written = 0
        while written < len(data):
            written += os.write(fd, data[written:])
        os.fsync(fd)
    except OSError as exc:
        raise JournalError(f"cannot append to the erasure journal {path}: {exc.strerror}") from exc
    finally:
        os.close(fd)  # closing releases the lock


def journal_files(location: Path) -> list[Path]:
    """Every node's journal: the `*.log` files in the journal's directory.

    Each app node appends to a file of its own (no two hosts append to one file: locks are
    unreliable on network file systems), so a restore reads them all. `location` is a
    journal file (its siblings are read too) or the directory itself.
    """
    directory = location if location.is_dir() else location.parent
    files = sorted(directory.glob("*.log")) if directory.is_dir() else []
    if location.is_file() and location not in files:
        files.append(location)
    return files


def read_journals(location: Path) -> JournalContents:
    """All nodes' journals merged (see `journal_files`); an error if there is none."""
    files = journal_files(location)
    if not files:
        raise JournalError(f"the erasure journal {location} does not exist")
    entries: list[JournalEntry] = []
    malformed: list[int] = []
    for path in files:
        contents = read_journal(path)
        entries += contents.entries
        malformed += contents.malformed_lines
    return JournalContents(entries, malformed)


def read_journal(path: Path) -> JournalContents:
    if not path.exists():
        raise JournalError(f"the erasure journal {path} does not exist")
    entries: list[JournalEntry] = []
    malformed: list[int] = []
    with open(path, encoding="utf-8", errors="replace") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip() or line.startswith("#"):
                continue
            try:
                entries.append(JournalEntry.parse(line))
            except (ValueError, JournalError):
                malformed.append(number)
    return JournalContents(entries, malformed)


# -- the drain job ------------------------------------------------------------------------------
def pending_count(session: Session) -> tuple[int, datetime | None]:
    """How many erasures wait for the journal, and since when (for alerting)."""
    stmt = select(func.count(), func.min(OutboxMessage.created_at)).where(
        OutboxMessage.topic == TOPIC, OutboxMessage.processed_at.is_(None)
    )
    count, oldest = session.execute(stmt).one()
    return int(count), oldest


def drain_outbox(session: Session, path: Path, *, batch_size: int = 500) -> int:
    """Append pending erasures to the journal (fsync'd), then mark them processed.

    The caller commits. If the commit fails after the fsync, the rows are journaled again
    next time: duplicates are harmless, a missing line is not.
    """
    rows = list(
        session.scalars(
            select(OutboxMessage)
            .where(OutboxMessage.topic == TOPIC, OutboxMessage.processed_at.is_(None))
            .order_by(OutboxMessage.created_at, OutboxMessage.id)
            .limit(batch_size)
            .with_for_update(skip_locked=True)
        )
    )
    entries = []
    for row in rows:
        payload = row.payload
        entries.append(
            JournalEntry(
                uuid.UUID(str(payload["victim_id"])),
                datetime.fromisoformat(str(payload["erased_at"])),
                str(payload["reason_code"]),
            )
        )
    append_entries(path, entries)
    now = utcnow()
    for row in rows:
        row.processed_at = now
    session.flush()
    return len(rows)


# -- replay after a restore ----------------------------------------------------------------------
def replay(session: Session, keys: KeyService, contents: JournalContents) -> ReplayReport:
    """Shred again every journaled victim that a restore brought back. Never commits.

    The session must see every row (system scope). Idempotent: already-erased victims and
    ids unknown to this database are skipped. Each re-shred is audited on the victim's chain
    and on each of its cases, with the original reason code and erasure time.
    """
    report = ReplayReport(
        entries=len(contents.entries), malformed_lines=len(contents.malformed_lines)
    )
    first: dict[uuid.UUID, JournalEntry] = {}
    for entry in contents.entries:
        known = first.get(entry.victim_id)
        if known is None or entry.erased_at < known.erased_at:
            first[entry.victim_id] = entry
    report.victims = len(first)
    for victim_id in sorted(first):
        entry = first[victim_id]
        victim = session.scalars(
            select(Victim).where(Victim.id == victim_id).with_for_update()
        ).one_or_none()
        if victim is None:
            report.not_present += 1
            continue
        holds_key = session.scalar(
            select(
                exists().where(DataKey.victim_id == victim_id)
                | exists().where(BlindIndexEntry.victim_id == victim_id)
            )
        )
        if victim.erased_at is not None and not holds_key:
            report.already_erased += 1
            continue
        keys.shred(session, victim_id)
        if victim.erased_at is None:
            victim.erased_at = entry.erased_at
        details = {
            "reason_code": entry.reason_code,
            "erased_at": entry.erased_at.astimezone(UTC).isoformat(),
            "source": "erasure_journal",
        }
        case_ids = list(session.scalars(select(Case.id).where(Case.victim_id == victim_id)))
        for case_id in case_ids:
            audit.record(
                session,
                REPLAY_ACTOR,
                "victim_erasure_replayed",
                case_id=case_id,
                victim_id=victim_id,
                details=details,
            )
        audit.record(
            session,
            REPLAY_ACTOR,
            "victim_erasure_replayed",
            victim_id=victim_id,
            details={**details, "cases": len(case_ids)},
        )
        report.shredded_again += 1
        report.shredded_ids.append(victim_id)
    session.flush()
    return report
