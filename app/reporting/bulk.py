"""Fast batch inserts for derived and synthetic data (the reporting store, demo data).

On PostgreSQL rows are streamed with ``COPY ... FROM STDIN`` on the session's own
connection, inside its transaction. ``COPY FROM`` is not allowed on a table with row-level
security, so such tables (``cases``, ``victims``, the ``reporting`` store) are copied into a
temporary table first and moved with one ``INSERT ... SELECT``, which the row-level
security policies check as for any insert. Elsewhere (SQLite, small batches) it is a plain
``session.execute(insert(table), rows)``.

:class:`BackgroundCopier` runs the copies on a writer thread, in order, while the caller
builds the next batch (the database works on the other core); it touches nothing but the
session's PostgreSQL connection, which the caller must leave alone until :meth:`close`.

Values are written as given: aware datetimes, dates, UUIDs, bytes, booleans; JSON columns
are serialised here. Nothing in this module reads, logs or transforms a sealed value.
"""

from __future__ import annotations

import json
import queue
import threading
from collections.abc import Mapping, Sequence
from typing import Any, cast

from sqlalchemy import JSON, Table, insert, text
from sqlalchemy.orm import Session

_COPY_MIN_ROWS = 200
_RLS_CACHE = "passage.bulk.rls"
Rows = Sequence[Mapping[str, Any]]


def _qualified(table: Table) -> str:
    return f'"{table.schema}"."{table.name}"' if table.schema else f'"{table.name}"'


def _has_row_security(session: Session, table: Table) -> bool:
    cache: dict[str, bool] = session.info.setdefault(_RLS_CACHE, {})
    name = _qualified(table)
    if name not in cache:
        cache[name] = bool(
            session.execute(
                text("SELECT relrowsecurity FROM pg_class WHERE oid = CAST(:t AS regclass)"),
                {"t": name},
            ).scalar()
        )
    return cache[name]


def _copy(
    raw: Any,
    table: Table,
    rows: Rows | Sequence[Sequence[Any]],
    secured: bool,
    *,
    ready: bool = False,
) -> None:
    columns = [c.name for c in table.columns]
    as_json = {c.name for c in table.columns if isinstance(c.type, JSON)}
    column_list = ", ".join(f'"{c}"' for c in columns)
    target = _qualified(table)
    with raw.cursor() as cursor:
        destination = target
        if secured:
            destination = f'"_bulk_{table.name}"'
            cursor.execute(
                f"CREATE TEMP TABLE IF NOT EXISTS {destination} "
                f"(LIKE {target} INCLUDING DEFAULTS) ON COMMIT DROP"
            )
            cursor.execute(f"TRUNCATE {destination}")
        with cursor.copy(f"COPY {destination} ({column_list}) FROM STDIN") as copy:
            if ready:  # tuples in column order, JSON already serialised
                for values in rows:
                    copy.write_row(values)
            else:
                for row in rows:
                    mapping = cast(Mapping[str, Any], row)
                    copy.write_row(
                        [
                            json.dumps(mapping[c])
                            if c in as_json and mapping[c] is not None
                            else mapping[c]
                            for c in columns
                        ]
                    )
        if secured:
            cursor.execute(
                f"INSERT INTO {target} ({column_list}) "  # noqa: S608 (names from table metadata)
                f"SELECT {column_list} FROM {destination}"
            )


def _uses_copy(session: Session, rows: Rows) -> bool:
    return session.get_bind().dialect.name == "postgresql" and len(rows) >= _COPY_MIN_ROWS


def insert_rows(
    session: Session,
    table: Table,
    rows: Rows,
    *,
    execution_options: Mapping[str, Any] | None = None,
) -> None:
    """Insert ``rows`` (dicts holding every column of ``table``) in the session's transaction."""
    if not rows:
        return
    if not _uses_copy(session, rows):
        session.execute(insert(table), list(rows), execution_options=dict(execution_options or {}))
        return
    raw = session.connection().connection.driver_connection
    _copy(raw, table, rows, _has_row_security(session, table))


class BackgroundCopier:
    """Ordered inserts on a writer thread (PostgreSQL); synchronous elsewhere."""

    def __init__(self, session: Session, tables: Sequence[Table], *, depth: int = 3) -> None:
        self.session = session
        self.threaded = session.get_bind().dialect.name == "postgresql"
        self.error: BaseException | None = None
        self._queue: queue.Queue[tuple[Table, Any, bool] | None] = queue.Queue(maxsize=depth)
        self._thread: threading.Thread | None = None
        if self.threaded:
            self._raw = session.connection().connection.driver_connection
            self._secured = {t.name: _has_row_security(session, t) for t in tables}
            self._thread = threading.Thread(target=self._drain, name="bulk-copy", daemon=True)
            self._thread.start()

    def _drain(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                return
            if self.error is not None:
                continue
            table, rows, ready = item
            try:
                _copy(self._raw, table, rows, self._secured[table.name], ready=ready)
            except BaseException as exc:  # re-raised by close() in the caller's thread
                self.error = exc

    def put(self, table: Table, rows: Any, *, preformatted: bool = False) -> None:
        """Queue ``rows`` (dicts; or COPY-ready tuples if ``preformatted``, PostgreSQL only)."""
        if not rows:
            return
        if self.error is not None:
            raise self.error
        if self.threaded:
            self._queue.put((table, rows, preformatted))
            return
        if preformatted:
            raise ValueError("pre-formatted rows need PostgreSQL")
        insert_rows(self.session, table, rows)

    def close(self) -> None:
        if self._thread is not None:
            self._queue.put(None)
            self._thread.join()
            self._thread = None
        if self.error is not None:
            raise self.error
