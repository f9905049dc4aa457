"""Prometheus metrics: requests by route template, workflow, audit, decryption, DB pool.

Labels are codes only: HTTP method, route TEMPLATE (`/api/v1/cases/{case_id}`, never the
raw path: ids are not labels), status class, workflow event, audit action, table name.
No value, id, user or address ever becomes a label.

Several uvicorn workers: set `PROMETHEUS_MULTIPROC_DIR` to an empty, writable directory
(tmpfs) in the environment of the process that starts the workers, so every worker
inherits it before `prometheus_client` is imported. Each worker then writes its values to
mmap files there and `/metrics` (answered by whichever worker gets the scrape) adds them
up. Empty the directory before the workers start (`prepare_multiprocess_dir`); gauges of
workers that died are dropped at scrape time.
"""

from __future__ import annotations

import glob
import os
import re
import time
import weakref
from collections.abc import Callable, Iterator, MutableMapping
from typing import Any

from fastapi import FastAPI
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)
from sqlalchemy import Engine, event
from sqlalchemy.orm import Session
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
UNMATCHED = "<unmatched>"
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})

if os.environ.get(MULTIPROC_ENV):
    # Values are files there, opened as the metrics below are created.
    os.makedirs(os.environ[MULTIPROC_ENV], exist_ok=True)

HTTP_REQUESTS = Counter(
    "passage_http_requests_total",
    "HTTP requests by method, route template and status class.",
    ["method", "route", "status_class"],
)
HTTP_LATENCY = Histogram(
    "passage_http_request_duration_seconds",
    "Time to answer, by method and route template.",
    ["method", "route"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1.0, 2.0, 5.0, 10.0),
)
HTTP_IN_PROGRESS = Gauge(
    "passage_http_requests_in_progress",
    "Requests being answered now.",
    multiprocess_mode="livesum",
)
WORKFLOW_TRANSITIONS = Counter(
    "passage_workflow_transitions_total",
    "Committed workflow decisions by event; outcome is applied or refused.",
    ["event", "outcome"],
)
AUDIT_APPENDS = Counter(
    "passage_audit_events_total",
    "Committed audit events by action code.",
    ["action"],
)
FIELD_DECRYPTS = Counter(
    "passage_field_decrypts_total",
    "Sealed fields opened, by table; outcome ok or integrity_error.",
    ["table", "outcome"],
)
DB_POOL = Gauge(
    "passage_db_pool_connections",
    "Database connections of the app's pool by state (summed over live workers).",
    ["state"],
    multiprocess_mode="livesum",
)
DB_ERRORS = Counter(
    "passage_db_errors_total",
    "Database errors seen by the engine; kind is disconnect or other.",
    ["kind"],
)
RATE_LIMITED = Counter(
    "passage_rate_limited_total",
    "Requests refused with 429, by the limit that refused them.",
    ["limit"],
)
RATE_LIMIT_BACKEND_ERRORS = Counter(
    "passage_rate_limit_backend_errors_total",
    "Redis errors of the rate limiter (it falls back to per-process limits).",
)
IDEMPOTENCY = Counter(
    "passage_idempotency_requests_total",
    "Requests with an Idempotency-Key, by outcome.",
    ["outcome"],
)

_AUDIT_PENDING = "passage.metrics.audit"
_SAFE_LABEL = re.compile(r"^[a-z0-9_.:-]{1,60}$")


def _label(value: object) -> str:
    """Codes pass; anything that does not look like a code is not trusted as a label."""
    text = str(value)
    return text if _SAFE_LABEL.match(text) else "other"


# -- route templates -----------------------------------------------------------------------
_LEAVES: weakref.WeakKeyDictionary[Any, list[Any]] = weakref.WeakKeyDictionary()


def _leaf_routes(routes: list[Any]) -> Iterator[Any]:
    for route in routes:
        inner = getattr(route, "original_router", None)
        if inner is not None:
            yield from _leaf_routes(list(inner.routes))
        elif hasattr(route, "path_format"):
            yield route


def route_template(scope: Scope) -> str:
    """The matched route's template; requests answered before routing are matched here."""
    route = scope.get("route")
    template = getattr(route, "path_format", None)
    if isinstance(template, str):
        return template
    known = scope.get("passage.route")
    if isinstance(known, str):
        return known
    app = scope.get("app")
    if app is None:
        return UNMATCHED
    leaves = _LEAVES.get(app)
    if leaves is None:
        leaves = list(_leaf_routes(list(app.routes)))
        _LEAVES[app] = leaves
    probe = {**scope, "path_params": {}}
    partial = None
    for leaf in leaves:
        match, _ = leaf.matches(probe)
        if match is Match.FULL:
            return str(leaf.path_format)
        if match is Match.PARTIAL and partial is None:
            partial = str(leaf.path_format)
    return partial or UNMATCHED


class MetricsMiddleware:
    """Counts and times every HTTP request by route template and status class."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] == "/metrics":
            await self.app(scope, receive, send)
            return
        status = 500
        start = time.perf_counter()

        async def send_wrapper(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        HTTP_IN_PROGRESS.inc()
        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            HTTP_IN_PROGRESS.dec()
            method = scope["method"] if scope["method"] in _METHODS else "other"
            route = route_template(scope)
            HTTP_REQUESTS.labels(method, route, f"{status // 100}xx").inc()
            HTTP_LATENCY.labels(method, route).observe(time.perf_counter() - start)


# -- workflow and audit: counted when their transaction commits --------------------------------
def _after_flush(session: Session, _flush_context: object) -> None:
    from app.audit.models import AuditEvent

    pending: list[tuple[str, str | None]] | None = None
    for obj in session.new:
        if isinstance(obj, AuditEvent):
            if pending is None:
                pending = session.info.setdefault(_AUDIT_PENDING, [])
            details = obj.details or {}
            pending.append((obj.action, details.get("event")))


def _after_commit(session: Session) -> None:
    if session.in_nested_transaction():
        return  # a SAVEPOINT was released; count when the transaction itself commits
    pending = session.info.pop(_AUDIT_PENDING, None)
    for action, workflow_event in pending or ():
        AUDIT_APPENDS.labels(_label(action)).inc()
        if action in ("transition", "transition_refused") and workflow_event:
            outcome = "applied" if action == "transition" else "refused"
            WORKFLOW_TRANSITIONS.labels(_label(workflow_event), outcome).inc()


def _after_rollback(session: Session) -> None:
    if session.in_nested_transaction():
        return  # only this SAVEPOINT's work is undone (its events never reach a commit)
    session.info.pop(_AUDIT_PENDING, None)


def _instrument_sessions() -> None:
    for name, listener in (
        ("after_flush", _after_flush),
        ("after_commit", _after_commit),
        ("after_rollback", _after_rollback),
    ):
        if not event.contains(Session, name, listener):
            event.listen(Session, name, listener)


# -- field decryption --------------------------------------------------------------------------
def _counting(open_: Callable[..., Any]) -> Callable[..., Any]:
    def counted(self: Any, table: str, column: str, row_id: Any, blob: bytes | None) -> Any:
        if blob is None:
            return open_(self, table, column, row_id, blob)
        try:
            value = open_(self, table, column, row_id, blob)
        except Exception:
            FIELD_DECRYPTS.labels(_label(table), "integrity_error").inc()
            raise
        FIELD_DECRYPTS.labels(_label(table), "ok").inc()
        return value

    counted.__wrapped__ = open_  # type: ignore[attr-defined]
    counted._passage_counted = True  # type: ignore[attr-defined]
    return counted


def _instrument_decrypts() -> None:
    """Count every opened field by table.

    Until app/crypto/envelope.py reports opens itself (see docs/reliability.md, "changes
    outside operations"), the two codecs' `open` are wrapped once; behaviour is unchanged.
    """
    from app.crypto import envelope

    for cls in (envelope.FieldCipher, envelope.PlainCodec):
        if not getattr(cls.open, "_passage_counted", False):
            cls.open = _counting(cls.open)  # type: ignore[method-assign]


# -- database pool -----------------------------------------------------------------------------
_POOLS: weakref.WeakSet[Any] = weakref.WeakSet()


def _instrument_engine(engine: Engine) -> None:
    """checked_out follows checkouts and checkins; size is the configured pool size."""
    pool = engine.pool
    if pool in _POOLS:
        return
    _POOLS.add(pool)
    size = getattr(pool, "size", None)
    if callable(size):  # QueuePool; SQLite's NullPool keeps no connections
        DB_POOL.labels("size").inc(size())
        event.listen(pool, "checkout", lambda *_: DB_POOL.labels("checked_out").inc())
        event.listen(pool, "checkin", lambda *_: DB_POOL.labels("checked_out").dec())

    def _error(context: Any) -> None:
        DB_ERRORS.labels("disconnect" if context.is_disconnect else "other").inc()

    event.listen(engine, "handle_error", _error)


# -- exposition --------------------------------------------------------------------------------
def prepare_multiprocess_dir(path: str | None = None) -> None:
    """Empty the multiprocess directory. Call once, before the workers start."""
    directory = path or os.environ.get(MULTIPROC_ENV)
    if not directory:
        return
    os.makedirs(directory, exist_ok=True)
    for name in glob.glob(os.path.join(directory, "*.db")):
        os.remove(name)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _drop_dead_workers(directory: str) -> None:
    for name in glob.glob(os.path.join(directory, "gauge_live*_*.db")):
        pid_text = os.path.basename(name).rsplit("_", 1)[-1].removesuffix(".db")
        if pid_text.isdigit() and not _pid_alive(int(pid_text)):
            multiprocess.mark_process_dead(int(pid_text), directory)  # type: ignore[no-untyped-call]


def exposition() -> bytes:
    directory = os.environ.get(MULTIPROC_ENV)
    if directory:
        _drop_dead_workers(directory)
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry, path=directory)  # type: ignore[no-untyped-call]
        return generate_latest(registry)
    return generate_latest(REGISTRY)


def metrics_endpoint(_request: Request) -> Response:
    return Response(exposition(), media_type=CONTENT_TYPE_LATEST)


def install(app: FastAPI) -> None:
    """Middleware, engine and session instrumentation, and the /metrics route."""
    _instrument_sessions()
    _instrument_decrypts()
    database = getattr(app.state, "database", None)
    if database is not None:
        _instrument_engine(database.engine)
    app.add_route("/metrics", metrics_endpoint, methods=["GET"], include_in_schema=False)
    app.add_middleware(MetricsMiddleware)


def request_scope_route(scope: MutableMapping[str, Any], template: str) -> None:
    """Let middleware that answers before routing name the route it answered for."""
    scope["passage.route"] = template
