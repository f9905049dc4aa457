"""`Idempotency-Key` on the POSTs that create records (draft-ietf-httpapi-idempotency-key-header-07).

- Same user, same key, same request (method, path, JSON body) -> the first answer again
  (same status and body, `Idempotent-Replayed: true`), and nothing is created twice.
- Same key with another request -> 422 `idempotency_key_reused`.
- Same key while the first request still runs -> 409 `idempotency_in_flight` (Retry-After).
- Keys are scoped per user: the record is keyed by (user id, HMAC(key)); a key another
  user sends is simply a different key.
- Records expire after 24 hours; an expired key starts afresh.

What is stored: HMACs of the key and of the canonical request (never the body: it holds
personal data), the route, the created resource's id, and the answer's body only where it
holds nothing but ids and codes (notes, consents, participants, break-glass). Registration
answers contain the person's data, so a replay re-reads the case (GET, with the caller's
current access, audited as a read) and answers with the original status.

Atomicity: the key is claimed in its own short transaction (so a concurrent duplicate sees
it at once and gets 409), then the request runs; the record is marked completed by the
request's own unit of work, in the same transaction as the rows it creates (a session
`before_commit` hook). A request that fails or is rolled back releases its claim, and
whatever a dead worker had not committed is gone with its transaction. So an effect
without its completed record, or the reverse, cannot be committed.

A claim whose worker died is taken over at once, not after a fixed delay:

- PostgreSQL: the claiming request holds a transaction-level advisory lock
  (`pg_try_advisory_xact_lock`, two int4 from a hash of user id and key digest) on a
  connection of its own, in a transaction left open until the answer has been sent and the
  claim completed or released. A duplicate that gets the lock knows the holder is gone (its
  process died, the kernel closed its socket, the server rolled its transaction back and
  dropped the lock) and takes the claim over; one that does not get it answers 409 with
  `Retry-After: 1`. Transaction-level, so it works behind PgBouncer in transaction mode.
- SQLite (embedded, one machine): the claim records the claiming process (host, boot id,
  pid, start time). A claim whose process no longer runs is taken over at once; where that
  cannot be told (another host name, no /proc), the 30-second lease still bounds it.

Whoever takes over gets a new lease token; the previous holder, if it was alive after all
(its lock connection was cut), fails its completion update and rolls back
(`IdempotencyClaimLost`), so a record is never created twice.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import hmac
import json
import os
import re
import secrets
import socket
import sys
import threading
import uuid
import weakref
from collections.abc import Callable
from contextvars import ContextVar
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import anyio
from fastapi import FastAPI
from sqlalchemy import Connection, Engine, delete, event, select, text, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session
from sqlalchemy.pool import QueuePool
from starlette.concurrency import run_in_threadpool
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.db.base import utcnow
from app.db.engine import DatabaseLimits, make_engine
from app.db.session import Database
from app.errors import Conflict
from app.logging import get_logger
from app.operations import metrics
from app.operations.models import IdempotencyRecord
from app.operations.principal import RESOLVER

log = get_logger("passage.operations")

HEADER = "idempotency-key"
RETENTION = timedelta(hours=24)
# Longer than any request may run. Only consulted where the holder's death cannot be told
# (SQLite, claiming process on another host name or without /proc): then a claim whose
# worker died waits for it to lapse.
LEASE = timedelta(seconds=30)
# The holder is alive (its lock is held, its process runs): retry soon.
RETRY_AFTER = 1
_KEY_PATTERN = re.compile(r"^[\x21-\x7e]{1,255}$")


class IdempotencyClaimLost(Conflict):
    """Another request took over this key (our claim looked dead): our writes must not commit."""

    code = "idempotency_in_flight"


# -- which routes ------------------------------------------------------------------------------
def _id(name: str = "id") -> Callable[[Any], dict[str, Any]]:
    def render(obj: Any) -> dict[str, Any]:
        return {name: str(obj.id)}

    return render


@dataclass(frozen=True)
class IdempotentRoute:
    template: str
    model: type[Any]
    # The answer rebuilt from the created row (ids and codes only); None: re-read it.
    render: Callable[[Any], dict[str, Any]] | None
    reread: str | None = None  # GET path of the created resource, "{id}" substituted
    status: int = 201
    pattern: re.Pattern[str] = field(init=False, compare=False)

    def __post_init__(self) -> None:
        regex = re.sub(r"\\\{[a-z_]+\\\}", "[^/]+", re.escape(self.template))
        object.__setattr__(self, "pattern", re.compile(f"^{regex}$"))


def _routes() -> tuple[IdempotentRoute, ...]:
    from app.auth.break_glass import BreakGlassGrant
    from app.cases.models import Case, CaseNote, CaseParticipant, Consent

    return (
        IdempotentRoute("/api/v1/cases", Case, None, reread="/api/v1/cases/{id}"),
        IdempotentRoute(
            "/api/v1/cases/{case_id}/notes",
            CaseNote,
            lambda n: {"id": str(n.id), "kind": n.kind},
        ),
        IdempotentRoute(
            "/api/v1/cases/{case_id}/consents",
            Consent,
            lambda c: {"id": str(c.id), "purpose": c.purpose},
        ),
        IdempotentRoute(
            "/api/v1/cases/{case_id}/participants",
            CaseParticipant,
            lambda p: {
                "id": str(p.id),
                "agency_id": str(p.agency_id),
                "access_role": p.access_role,
            },
        ),
        IdempotentRoute(
            "/api/v1/cases/{case_id}/break-glass",
            BreakGlassGrant,
            lambda g: {"grant_id": str(g.id), "expires_at": g.expires_at.isoformat()},
        ),
    )


_ROUTES: tuple[IdempotentRoute, ...] | None = None


def routes() -> tuple[IdempotentRoute, ...]:
    global _ROUTES
    if _ROUTES is None:
        _ROUTES = _routes()
    return _ROUTES


def route_for(method: str, path: str) -> IdempotentRoute | None:
    if method != "POST":
        return None
    return next((r for r in routes() if r.pattern.match(path)), None)


# -- digests -----------------------------------------------------------------------------------
_SECRETS: weakref.WeakKeyDictionary[Any, bytes] = weakref.WeakKeyDictionary()


def _secret(app: Any) -> bytes:
    secret = _SECRETS.get(app)
    if secret is None:
        session_key: bytes = app.state.context.keys.session_key
        secret = hmac.new(session_key, b"passage:idempotency", hashlib.sha256).digest()
        _SECRETS[app] = secret
    return secret


def _mac(secret: bytes, *parts: bytes) -> bytes:
    return hmac.new(secret, b"\x1f".join(parts), hashlib.sha256).digest()


def canonical_body(body: bytes, content_type: str) -> bytes:
    """JSON bodies compare by meaning (key order, spacing); anything else byte for byte."""
    if content_type.startswith("application/json"):
        try:
            parsed = json.loads(body)
        except ValueError:
            return b"raw:" + body
        return b"json:" + json.dumps(parsed, sort_keys=True, separators=(",", ":")).encode()
    return b"raw:" + body


def parse_key(raw: str) -> str | None:
    """A bare token or a structured-field string ("..."); visible ASCII, 1-255 characters."""
    value = raw.strip()
    if len(value) >= 2 and value[0] == value[-1] == '"':
        value = value[1:-1]
    return value if _KEY_PATTERN.match(value) else None


# -- the store ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class Claimed:
    record_id: uuid.UUID
    token: str


@dataclass(frozen=True)
class Replay:
    status: int
    resource_id: uuid.UUID | None
    body: dict[str, Any] | None


@dataclass(frozen=True)
class InFlight:
    retry_after: int


@dataclass(frozen=True)
class Mismatch:
    pass


Outcome = Claimed | Replay | InFlight | Mismatch


def claim(
    sessionmaker: Callable[[], Session],
    *,
    user_id: uuid.UUID,
    key_digest: bytes,
    fingerprint: bytes,
    route: str,
    lock: bool | None = None,
) -> Outcome:
    """Claim (user, key) for this request, or say why not. Its own short transaction.

    `lock`: True when this request holds the key's advisory lock (PostgreSQL), so no other
    live request holds the claim; False when another request holds it (never claim then);
    None without advisory locks (SQLite): the recorded holder process and the lease decide.
    """
    now = utcnow()
    token = secrets.token_hex(16)
    with sessionmaker() as session, session.begin():
        if lock is not False and secrets.randbelow(50) == 0:  # keep the table small
            expired = select(IdempotencyRecord.id).where(IdempotencyRecord.expires_at < now)
            session.execute(
                delete(IdempotencyRecord).where(IdempotencyRecord.id.in_(expired.limit(200)))
            )
        lookup = (
            select(IdempotencyRecord)
            .where(
                IdempotencyRecord.user_id == user_id,
                IdempotencyRecord.key_digest == key_digest,
            )
            .with_for_update()
        )
        row = session.scalars(lookup).one_or_none()
        if lock is False and (row is None or row.expires_at <= now):
            return InFlight(retry_after=RETRY_AFTER)  # the lock holder is about to claim
        if row is None:
            row = IdempotencyRecord(
                user_id=user_id,
                key_digest=key_digest,
                fingerprint=fingerprint,
                route=route,
                state="in_flight",
                lease_token=token,
                lease_expires_at=now + LEASE,
                holder=process_identity(),
                created_at=now,
                expires_at=now + RETENTION,
            )
            try:
                with session.begin_nested():
                    session.add(row)
            except IntegrityError:
                # A concurrent request claimed it first (and has committed its claim).
                row = session.scalars(lookup).one()
            else:
                return Claimed(row.id, token)
        if row.expires_at <= now:
            _reset(row, fingerprint, route, token, now)
            return Claimed(row.id, token)
        if not hmac.compare_digest(row.fingerprint, fingerprint):
            return Mismatch()
        if row.state == "completed":
            return Replay(row.response_status or 200, row.resource_id, row.response_body)
        # Holding the lock proves its previous holder gone; without locks, ask the process.
        if not (lock or (lock is None and _lapsed_or_dead(row, now))):
            return InFlight(retry_after=RETRY_AFTER)
        # The worker holding the claim died: take it over.
        row.lease_token, row.lease_expires_at = token, now + LEASE
        row.holder = process_identity()
        return Claimed(row.id, token)


def _lapsed_or_dead(row: IdempotencyRecord, now: Any) -> bool:
    return row.lease_expires_at <= now or holder_is_dead(row.holder)


def _reset(row: IdempotencyRecord, fingerprint: bytes, route: str, token: str, now: Any) -> None:
    row.fingerprint, row.route, row.state = fingerprint, route, "in_flight"
    row.lease_token, row.lease_expires_at = token, now + LEASE
    row.holder = process_identity()
    row.created_at, row.expires_at = now, now + RETENTION
    row.response_status = row.resource_id = row.response_body = None


def release(sessionmaker: Callable[[], Session], claimed: Claimed) -> None:
    """The request did not complete: let the client retry with the same key."""
    with sessionmaker() as session, session.begin():
        session.execute(
            delete(IdempotencyRecord).where(
                IdempotencyRecord.id == claimed.record_id,
                IdempotencyRecord.lease_token == claimed.token,
                IdempotencyRecord.state == "in_flight",
            )
        )


# -- who holds a claim -------------------------------------------------------------------------
_HOSTNAME = socket.gethostname()[:64].replace("|", "_")


def _read(path: str) -> str | None:
    try:
        return Path(path).read_text()
    except OSError:
        return None


_BOOT_ID = (_read("/proc/sys/kernel/random/boot_id") or "").strip()
_HAS_PROC = _read("/proc/self/stat") is not None


def _proc_stat(pid: int) -> tuple[str, str] | None:
    """(state, start time in clock ticks since boot) of a running process, from /proc."""
    stat = _read(f"/proc/{pid}/stat")
    if stat is None:
        return None
    fields_ = stat.rsplit(")", 1)[1].split()  # after "pid (comm)": state is field 3
    return fields_[0], fields_[19]  # starttime is field 22


_IDENTITY: tuple[int, str] | None = None


def process_identity(pid: int | None = None) -> str:
    """A process (this one by default) as `host|boot id|pid|start time`: a pid alone may be
    reused."""
    global _IDENTITY
    if pid is not None:
        stat = _proc_stat(pid)
        return f"{_HOSTNAME}|{_BOOT_ID}|{pid}|{stat[1] if stat else ''}"
    pid = os.getpid()
    if _IDENTITY is None or _IDENTITY[0] != pid:  # computed again in a forked child
        _IDENTITY = (pid, process_identity(pid))
    return _IDENTITY[1]


def holder_is_dead(holder: str | None) -> bool:
    """True only if the process that claimed provably no longer runs on this machine.

    False when it runs or when that cannot be told (another host name: another machine or
    container; an older record without holder): the lease decides then.
    """
    parts = (holder or "").split("|")
    if len(parts) != 4 or parts[0] != _HOSTNAME or not parts[2].isdigit():
        return False
    _host, boot, pid_text, start = parts
    if boot and _BOOT_ID and boot != _BOOT_ID:
        return True  # this machine has rebooted since the claim
    pid = int(pid_text)
    if _HAS_PROC:
        stat = _proc_stat(pid)
        if stat is None:
            return True  # no such process
        state, started = stat
        return state in ("Z", "X") or (bool(start) and started != start)  # zombie, or reused
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except OSError:  # PermissionError: it exists under another user
        return False
    return False


# -- advisory locks (PostgreSQL) ---------------------------------------------------------------
_LOCK_NAMESPACE = b"passage:idempotency-lock\x1f"


def lock_key(user_id: uuid.UUID, key_digest: bytes) -> tuple[int, int]:
    """The (int4, int4) advisory lock of one idempotency record's identity."""
    digest = hashlib.sha256(_LOCK_NAMESPACE + user_id.bytes + key_digest).digest()
    return (
        int.from_bytes(digest[:4], "big", signed=True),
        int.from_bytes(digest[4:8], "big", signed=True),
    )


# Lock connections kept open while idle; the rest of the lock pool is overflow.
LOCK_POOL_IDLE = 2


def lock_pool_size(request_engine: Engine) -> tuple[int, int]:
    """(pool_size, max_overflow) of the lock pool: as many connections in all as the request
    pool may open (its pool_size + max_overflow; unbounded if it is), of which
    LOCK_POOL_IDLE stay open while idle. Each idempotent request holds one lock connection
    while it waits for and uses a request connection, so the lock pool never runs out before
    the request pool does."""
    pool = request_engine.pool
    if not isinstance(pool, QueuePool):
        return LOCK_POOL_IDLE, -1
    size, overflow = pool.size(), pool._max_overflow
    if overflow < 0:
        return min(LOCK_POOL_IDLE, size), -1
    total = max(size + overflow, 1)
    idle = min(LOCK_POOL_IDLE, total)
    return idle, total - idle


class ClaimLocks:
    """Connections that hold claim locks, in a pool of their own.

    Separate from the request pool, so that requests holding a lock never wait for a
    request connection held by requests waiting for a lock connection (no pool deadlock),
    and so that no request connection goes back to the pool with a lock on it.
    """

    def __init__(self, engine: Engine, limits: DatabaseLimits | None = None) -> None:
        # Bounded as the request pool (connect, keepalives, pool and watchdog timeouts), and
        # idle_in_transaction_session_timeout bounds how long a live but stuck request may
        # keep its lock: after that, a retry takes the claim over and the stuck request
        # cannot complete it any more.
        pool_size, max_overflow = lock_pool_size(engine)
        self.engine = make_engine(
            engine.url.render_as_string(hide_password=False),
            pool_size=pool_size,
            max_overflow=max_overflow,
            limits=limits or DatabaseLimits(),
        )

    def try_hold(self, key: tuple[int, int]) -> Connection | None:
        """The lock in a transaction left open on a dedicated connection, or None if taken."""
        connection = self.engine.connect()
        try:
            held = connection.execute(
                text("SELECT pg_try_advisory_xact_lock(:a, :b)"), {"a": key[0], "b": key[1]}
            ).scalar_one()
        except BaseException:
            _end(connection)
            raise
        if held:
            return connection
        _end(connection)
        return None


def _end(connection: Connection) -> None:
    """End the lock's transaction (which releases the lock); if that fails, the connection
    is discarded, never pooled again: closing it makes the server drop the lock."""
    try:
        connection.rollback()
        connection.close()
    except Exception as exc:
        log.warning("idempotency_unlock_failed", exc_type=type(exc).__name__)
        with contextlib.suppress(Exception):
            connection.invalidate()
        with contextlib.suppress(Exception):
            connection.close()


_LOCKS: weakref.WeakKeyDictionary[Any, ClaimLocks] = weakref.WeakKeyDictionary()
_LOCKS_GUARD = threading.Lock()


def claim_locks(database: Database, limits: DatabaseLimits | None = None) -> ClaimLocks | None:
    """The lock pool of the app's database (one per worker), None if not PostgreSQL."""
    if database.engine.dialect.name != "postgresql":
        return None
    with _LOCKS_GUARD:
        locks = _LOCKS.get(database)
        if locks is None:
            locks = _LOCKS[database] = ClaimLocks(database.engine, limits)
            # Closed with the request pool by Database.dispose() (app shutdown), or when
            # the database object is collected if nothing disposes it.
            database.add_companion(locks.engine)
            weakref.finalize(database, locks.engine.dispose)
    return locks


@dataclass
class Hold:
    """What keeps a claim alive while its request runs: on PostgreSQL the open transaction
    holding the key's advisory lock; on SQLite nothing (the process itself)."""

    connection: Connection | None = None

    def end(self) -> None:
        connection, self.connection = self.connection, None
        if connection is not None:
            _end(connection)


def acquire(
    database: Any,
    *,
    user_id: uuid.UUID,
    key_digest: bytes,
    fingerprint: bytes,
    route: str,
    limits: DatabaseLimits | None = None,
) -> tuple[Outcome, Hold]:
    """Lock (PostgreSQL) and claim. The hold is returned ended unless the outcome is
    `Claimed`; then the caller ends it once the request is over (completed or released)."""
    hold = Hold()
    lock: bool | None = None
    locks = claim_locks(database, limits)
    if locks is not None:
        hold.connection = locks.try_hold(lock_key(user_id, key_digest))
        lock = hold.connection is not None
    try:
        outcome = claim(
            database.sessionmaker,
            user_id=user_id,
            key_digest=key_digest,
            fingerprint=fingerprint,
            route=route,
            lock=lock,
        )
    except BaseException:
        hold.end()
        raise
    if not isinstance(outcome, Claimed):
        hold.end()
    return outcome, hold


# -- completing inside the request's transaction ----------------------------------------------
@dataclass
class Tracking:
    claimed: Claimed
    route: IdempotentRoute
    session: weakref.ReferenceType[Session] | None = None
    resource: Any = None
    pending: bool = False
    completed: bool = False


_TRACKING: ContextVar[Tracking | None] = ContextVar("passage_idempotency", default=None)


def _before_flush(session: Session, _context: object, _instances: object) -> None:
    tracking = _TRACKING.get()
    if tracking is None or tracking.resource is not None:
        return
    for obj in session.new:
        if isinstance(obj, tracking.route.model):
            tracking.resource, tracking.session = obj, weakref.ref(session)
            return


def _before_commit(session: Session) -> None:
    tracking = _TRACKING.get()
    if (
        tracking is None
        or tracking.resource is None
        or tracking.completed
        or tracking.session is None
        or tracking.session() is not session
        or session.in_nested_transaction()  # a SAVEPOINT: only the real commit counts
        or sys.exc_info()[0] is not None  # a denial being committed, not a success
    ):
        return
    route = tracking.route
    result = session.execute(
        update(IdempotencyRecord)
        .where(
            IdempotencyRecord.id == tracking.claimed.record_id,
            IdempotencyRecord.lease_token == tracking.claimed.token,
            IdempotencyRecord.state == "in_flight",
        )
        .values(
            state="completed",
            resource_id=tracking.resource.id,
            response_status=route.status,
            response_body=route.render(tracking.resource) if route.render else None,
        )
        .execution_options(synchronize_session=False)
    )
    if getattr(result, "rowcount", 0) != 1:
        raise IdempotencyClaimLost(
            "Another request with this Idempotency-Key took over; nothing was saved."
        )
    tracking.pending = True


def _after_commit(session: Session) -> None:
    tracking = _TRACKING.get()
    if (
        not session.in_nested_transaction()
        and tracking is not None
        and tracking.pending
        and tracking.session is not None
        and tracking.session() is session
    ):
        tracking.pending, tracking.completed = False, True


def _after_rollback(session: Session) -> None:
    tracking = _TRACKING.get()
    if session.in_nested_transaction():
        return  # a SAVEPOINT rolled back (e.g. a retried insert): the transaction goes on
    if tracking is not None and tracking.session is not None and tracking.session() is session:
        tracking.pending = False


def _listen() -> None:
    for name, listener in (
        ("before_flush", _before_flush),
        ("before_commit", _before_commit),
        ("after_commit", _after_commit),
        ("after_rollback", _after_rollback),
    ):
        if not event.contains(Session, name, listener):
            event.listen(Session, name, listener)


# -- the middleware ----------------------------------------------------------------------------
async def _answer(send: Send, status: int, body: bytes, headers: list[tuple[bytes, bytes]]) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [*headers, (b"content-length", str(len(body)).encode())],
        }
    )
    await send({"type": "http.response.body", "body": body})


async def _error(
    send: Send, status: int, code: str, message: str, *extra: tuple[bytes, bytes]
) -> None:
    body = json.dumps({"error": {"code": code, "message": message}}).encode()
    await _answer(send, status, body, [(b"content-type", b"application/json"), *extra])


async def _read_body(receive: Receive) -> bytes:
    chunks = []
    while True:
        message = await receive()
        if message["type"] == "http.request":
            chunks.append(message.get("body", b""))
            if not message.get("more_body", False):
                return b"".join(chunks)
        elif message["type"] == "http.disconnect":
            raise ClientGone


class ClientGone(Exception):
    pass


def _database_error(exc: BaseException) -> bool:
    from sqlalchemy.exc import DBAPIError, OperationalError
    from sqlalchemy.exc import TimeoutError as PoolTimeout

    return isinstance(exc, OperationalError | PoolTimeout) or (
        isinstance(exc, DBAPIError) and exc.connection_invalidated
    )


class IdempotencyMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "POST":
            await self.app(scope, receive, send)
            return
        raw_key = next((v for k, v in scope["headers"] if k == b"idempotency-key"), None)
        route = route_for(scope["method"], scope["path"]) if raw_key is not None else None
        if raw_key is None or route is None:
            await self.app(scope, receive, send)  # other POSTs: the header is ignored
            return
        metrics.request_scope_route(scope, route.template)
        key = parse_key(raw_key.decode("latin-1"))
        if key is None:
            metrics.IDEMPOTENCY.labels("invalid_key").inc()
            await _error(
                send,
                400,
                "invalid_idempotency_key",
                "Idempotency-Key must be 1 to 255 visible ASCII characters.",
            )
            return
        user_id = await RESOLVER.user_id(scope)
        if user_id is None:  # not signed in: the endpoint answers 401 and creates nothing
            await self.app(scope, receive, send)
            return
        try:
            body = await _read_body(receive)
        except ClientGone:
            return
        app = scope["app"]
        secret = _secret(app)
        content_type = next((v for k, v in scope["headers"] if k == b"content-type"), b"")
        fingerprint = _mac(
            secret,
            b"POST",
            scope["path"].encode(),
            canonical_body(body, content_type.decode("latin-1").lower()),
        )
        database = app.state.database
        try:
            # Shielded: a cancelled request must not leave a lock connection behind.
            with anyio.CancelScope(shield=True):
                outcome, hold = await run_in_threadpool(
                    functools.partial(
                        acquire,
                        database,
                        user_id=user_id,
                        key_digest=_mac(secret, b"key", key.encode()),
                        fingerprint=fingerprint,
                        route=route.template,
                        limits=DatabaseLimits.from_settings(app.state.settings),
                    )
                )
        except Exception as exc:
            if not _database_error(exc):
                raise
            metrics.IDEMPOTENCY.labels("unavailable").inc()
            await _error(
                send,
                503,
                "service_unavailable",
                "The service is temporarily unavailable. Try again shortly.",
                (b"retry-after", b"5"),
            )
            return
        if isinstance(outcome, Mismatch):
            metrics.IDEMPOTENCY.labels("key_reused").inc()
            await _error(
                send,
                422,
                "idempotency_key_reused",
                "This Idempotency-Key was already used for a different request.",
            )
            return
        if isinstance(outcome, InFlight):
            metrics.IDEMPOTENCY.labels("in_flight").inc()
            await _error(
                send,
                409,
                "idempotency_in_flight",
                "A request with this Idempotency-Key is still being processed.",
                (b"retry-after", str(outcome.retry_after).encode()),
            )
            return
        if isinstance(outcome, Replay):
            metrics.IDEMPOTENCY.labels("replayed").inc()
            await self._replay(scope, route, outcome, send)
            return
        metrics.IDEMPOTENCY.labels("executed").inc()
        await self._execute(scope, body, receive, send, route, outcome, hold, database)

    async def _execute(
        self,
        scope: Scope,
        body: bytes,
        receive: Receive,
        send: Send,
        route: IdempotentRoute,
        claimed: Claimed,
        hold: Hold,
        database: Any,
    ) -> None:
        delivered = False

        async def replay_receive() -> Message:
            nonlocal delivered
            if not delivered:
                delivered = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        status = 500

        async def send_wrapper(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        tracking = Tracking(claimed, route)
        token = _TRACKING.set(tracking)
        try:
            await self.app(scope, replay_receive, send_wrapper)
        finally:
            _TRACKING.reset(token)
            # Shielded: a cancelled request still releases its claim, then its lock (in this
            # order, so that whoever gets the lock next finds the record final or gone).
            with anyio.CancelScope(shield=True):
                if not tracking.completed:
                    if 200 <= status < 300:
                        log.error("idempotency_not_recorded", route=route.template, status=status)
                    try:
                        await run_in_threadpool(release, database.sessionmaker, claimed)
                    except Exception as exc:  # the next request with the key takes it over
                        log.warning("idempotency_release_failed", exc_type=type(exc).__name__)
                await run_in_threadpool(hold.end)

    async def _replay(
        self, scope: Scope, route: IdempotentRoute, replay: Replay, send: Send
    ) -> None:
        replayed = (b"idempotent-replayed", b"true")
        if replay.body is not None:
            await _answer(
                send,
                replay.status,
                json.dumps(replay.body).encode(),
                [(b"content-type", b"application/json"), replayed],
            )
            return
        if route.reread is None or replay.resource_id is None:
            await _error(send, 409, "idempotency_not_replayable", "Nothing to replay.")
            return
        # Re-read the created resource as the caller, now (scope, visibility, audit apply).
        path = route.reread.replace("{id}", str(replay.resource_id))
        headers = [
            (k, v)
            for k, v in scope["headers"]
            if k not in (b"content-type", b"content-length", b"idempotency-key")
        ]
        get_scope = {**scope, "method": "GET", "path": path, "raw_path": path.encode()}
        get_scope["headers"] = headers
        get_scope["query_string"] = b""
        get_scope.pop("route", None)
        get_scope.pop("endpoint", None)
        get_scope["path_params"] = {}

        async def empty_receive() -> Message:
            return {"type": "http.request", "body": b"", "more_body": False}

        async def send_wrapper(message: Message) -> None:
            if message["type"] == "http.response.start" and message["status"] == 200:
                message = {
                    **message,
                    "status": replay.status,
                    "headers": [
                        *message.get("headers", []),
                        replayed,
                        (b"location", path.encode()),
                    ],
                }
            await send(message)

        await self.app(get_scope, empty_receive, send_wrapper)


def install(app: FastAPI) -> None:
    _listen()
    app.add_middleware(IdempotencyMiddleware)
    _document(app)


def _document(app: FastAPI) -> None:
    """Publish the optional Idempotency-Key header on the operations that honour it."""
    original = app.openapi
    templates = {r.template for r in routes()}

    def openapi() -> dict[str, Any]:
        schema = original()
        for path, operations in schema.get("paths", {}).items():
            post = operations.get("post")
            if path not in templates or post is None:
                continue
            parameters = post.setdefault("parameters", [])
            if any(p.get("name") == "Idempotency-Key" for p in parameters):
                continue
            parameters.append(
                {
                    "name": "Idempotency-Key",
                    "in": "header",
                    "required": False,
                    "description": "Retry safely: the same key and body replay the first "
                    "answer (24 hours, per user).",
                    "schema": {
                        "type": "string",
                        "minLength": 1,
                        "maxLength": 255,
                        "pattern": "^[!-~]+$",
                    },
                }
            )
        return schema

    app.openapi = openapi  # type: ignore[method-assign]
