"""Application factory: settings, keys and policies validated at start-up, then routes."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from psycopg import OperationalError as PsycopgOperationalError
from sqlalchemy.exc import DataError, DBAPIError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError
from starlette.exceptions import HTTPException as StarletteHTTPException

from app.auth.api import router as auth_router
from app.cases.api import router as cases_router
from app.cases.workflow_api import router as workflow_router
from app.config import Settings, get_settings
from app.context import build_context
from app.crypto.errors import CryptoError, DataKeyShreddedError
from app.db.readiness import ReadinessCheck
from app.db.session import Database
from app.errors import DomainError, RetryLater
from app.logging import configure_logging, get_logger
from app.operations import hooks as operations
from app.reporting.routes import router as reporting_router
from app.transnational.routes import router as transnational_router
from app.transnational.transport import MESSAGES_PATH
from app.web.middleware import RequestContextMiddleware
from app.web.routes import router as web_router

log = get_logger("passage")


def _error(status: int, code: str, message: str, **extra: Any) -> JSONResponse:
    return JSONResponse({"error": {"code": code, "message": message, **extra}}, status_code=status)


def readable_validation_errors(exc: RequestValidationError) -> list[dict[str, str]]:
    """Field paths and messages only: pydantic's `input` would echo personal data back."""
    out = []
    for err in exc.errors():
        loc = [str(p) for p in err.get("loc", ()) if p not in ("body",)]
        message = str(err.get("msg", "invalid value"))
        if err.get("type") == "extra_forbidden":
            message = "unknown field (not accepted here)"
        out.append({"field": ".".join(loc) or "body", "message": message})
    return out


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(DomainError)
    async def _domain(request: Request, exc: DomainError) -> JSONResponse:
        response = _error(exc.status_code, exc.code, exc.message)
        if isinstance(exc, RetryLater):
            response.headers["Retry-After"] = str(exc.retry_after)
        return response

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = readable_validation_errors(exc)
        summary = "; ".join(f"{e['field']}: {e['message']}" for e in errors[:5])
        return _error(422, "invalid_input", f"Some values are not valid: {summary}", details=errors)

    @app.exception_handler(CryptoError)
    async def _crypto(request: Request, exc: CryptoError) -> JSONResponse:
        # Names table, column and row id only; a moved or tampered value is never shown.
        log.error("security_integrity_failure", exc_type=type(exc).__name__, detail=str(exc))
        if isinstance(exc, DataKeyShreddedError):
            return _error(410, "erased", "This record was erased and can no longer be read.")
        return _error(
            500,
            "integrity_error",
            "Stored data failed an integrity check and was not shown. The incident was logged.",
            request_id=getattr(request.state, "request_id", None),
        )

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
        message = "Not found" if exc.status_code == 404 else str(exc.detail)
        return _error(exc.status_code, code, message)

    @app.exception_handler(OperationalError)
    @app.exception_handler(PoolTimeoutError)
    @app.exception_handler(PsycopgOperationalError)
    @app.exception_handler(DBAPIError)
    async def _database(request: Request, exc: Exception) -> JSONResponse:
        # Handled here (inside the router) so the server logs no traceback and the client
        # gets a clean answer; the transaction was rolled back by the session dependency.
        if is_database_unavailable(exc):
            # Types only (QueryCanceled, LockNotAvailable, DeadlineExceeded, TimeoutError...):
            # the messages may quote SQL and values.
            cause = getattr(exc, "orig", None) or exc.__cause__
            log.warning(
                "database_unavailable",
                exc_type=type(exc).__name__,
                cause=type(cause).__name__ if cause is not None else None,
            )
            response = _error(
                503,
                "service_unavailable",
                "The service is temporarily unavailable. Nothing was saved; please retry.",
                request_id=getattr(request.state, "request_id", None),
            )
            response.headers["Retry-After"] = str(DATABASE_RETRY_AFTER_SECONDS)
            return response
        if isinstance(exc, DataError):
            # The database refused a value as given (a NUL character, a number out of range):
            # the input's fault, so a clear 4xx; nothing was saved. Logged by type, for bugs.
            log.warning("database_refused_value", exc_type=type(exc.orig).__name__)
            return _error(
                422,
                "invalid_input",
                "A value was refused as given (for example it contains a NUL character). "
                "Nothing was saved.",
            )
        # Any other database error (an IntegrityError, say) is a bug, not an outage: the
        # catch-all below answers 500 and the server logs it as before.
        raise exc

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        return _internal_error(request, exc)


DATABASE_RETRY_AFTER_SECONDS = 5


def is_database_unavailable(exc: BaseException) -> bool:
    """The database cannot be reached or is refusing work right now (worth a retry).

    Never looks at the message: it may quote values.
    """
    if isinstance(exc, OperationalError | PoolTimeoutError | PsycopgOperationalError):
        return True
    return isinstance(exc, DBAPIError) and exc.connection_invalidated


def _internal_error(request: Request, exc: Exception) -> JSONResponse:
    # The exception text may carry values; log its type and where, never its message.
    tb = exc.__traceback__
    while tb is not None and tb.tb_next is not None:
        tb = tb.tb_next
    where = f"{tb.tb_frame.f_code.co_filename}:{tb.tb_lineno}" if tb else "?"
    log.error("unhandled_exception", exc_type=type(exc).__name__, where=where)
    return _error(
        500,
        "internal_error",
        "Something went wrong on our side. The error was logged.",
        request_id=getattr(request.state, "request_id", None),
    )


def migration_head() -> str | None:
    from alembic.config import Config
    from alembic.script import ScriptDirectory

    from app.config import REPO_ROOT

    return ScriptDirectory.from_config(Config(str(REPO_ROOT / "alembic.ini"))).get_current_head()


def create_app(settings: Settings | None = None, database: Database | None = None) -> FastAPI:
    settings = settings or get_settings()
    configure_logging(settings.log_level)
    context = build_context(settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        yield
        app.state.readiness.close()
        if database is None:
            app.state.database.dispose()

    app = FastAPI(
        title="Passage",
        version="0.1.0",
        lifespan=lifespan,
        docs_url="/api/docs" if settings.show_api_docs else None,
        redoc_url=None,
        openapi_url="/api/openapi.json" if settings.show_api_docs else None,
    )
    app.state.settings = settings
    app.state.context = context
    app.state.database = database or Database(settings)
    install_error_handlers(app)
    operations.install(app, settings)
    app.add_middleware(
        RequestContextMiddleware,
        max_body_bytes=settings.max_body_bytes,
        own_limit_paths=(MESSAGES_PATH,),  # the exchange edge quarantines what it refuses
    )
    app.include_router(auth_router)
    app.include_router(cases_router)
    app.include_router(workflow_router)
    app.include_router(reporting_router)
    app.include_router(transnational_router)
    app.include_router(web_router)

    @app.get("/healthz", include_in_schema=False)
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    expected_head = migration_head()

    readiness = ReadinessCheck(
        app.state.database.sessionmaker, expected_head, settings.db_readiness_timeout_seconds
    )
    app.state.readiness = readiness

    @app.get("/readyz", include_in_schema=False)
    async def readyz() -> JSONResponse:
        """Ready when the database answers (within 0.8 s), is migrated to head, and keys
        are loaded."""
        checks = {"database": "ok", "migrations": "ok", "keys": "ok"}
        checks["database"], checks["migrations"] = await readiness.database()
        if not context.keys.keyring.usable_kids():
            checks["keys"] = "missing"
        ready = all(v == "ok" for v in checks.values())
        body = {"status": "ready" if ready else "unavailable", **checks}
        return JSONResponse(body, status_code=200 if ready else 503)

    return app
