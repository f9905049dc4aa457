"""HTML error handling for the screens: error pages, htmx error fragments, form messages.

Routes of the web router use `HtmlRoute`: for those routes only, domain errors, request
validation errors, integrity failures and unexpected exceptions become HTML (a page, or for
htmx a fragment swapped into `#messages`) instead of the API's JSON. The request's writes
are undone first, except a kept audit event (the same rule as `app/db/session.py`).

Nothing here echoes a submitted value: messages are chosen by error code and field path.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Coroutine, Iterable, Mapping
from typing import Any

from fastapi import Depends
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from app.crypto.errors import CryptoError, DataKeyShreddedError
from app.db.session import DbSession
from app.errors import DomainError, GuardRefused, RetryLater, Unauthenticated
from app.logging import get_logger
from app.web import labels
from app.web.i18n import N_
from app.web.templating import is_htmx, render, translate

log = get_logger("passage.web")

Handler = Callable[[Request, Exception], Awaitable[Response]]


def error_message(request: Request, code: str, fallback: str | None) -> str:
    """A translated message for an error code; the service's own text when none is known."""
    text = labels.GUARDS.get(code) or labels.ERROR_MESSAGES.get(code)
    if text is not None:
        return translate(request, text)
    return fallback or translate(request, labels.ERROR_MESSAGES["invalid_input"])


def domain_message(request: Request, exc: DomainError) -> str:
    if isinstance(exc, GuardRefused):
        return error_message(request, exc.code, exc.message)
    if exc.code in labels.ERROR_MESSAGES or exc.code in labels.GUARDS:
        return error_message(request, exc.code, exc.message)
    return exc.message  # domain messages never hold personal data (app/errors.py)


def render_error(
    request: Request,
    status_code: int,
    message: str,
    *,
    headers: Mapping[str, str] | None = None,
    details: Iterable[str] = (),
) -> Response:
    title = labels.ERROR_TITLES.get(status_code) or labels.ERROR_TITLES[400]
    context = {
        "status_code": status_code,
        "title": translate(request, title),
        "message": message,
        "details": list(details),
    }
    out_headers = dict(headers or {})
    if is_htmx(request):
        out_headers.update({"HX-Retarget": "#messages", "HX-Reswap": "innerHTML"})
    return render(
        request,
        "error.html",
        context,
        status_code=status_code,
        block="error_fragment",
        headers=out_headers,
    )


def redirect(request: Request, url: str) -> Response:
    """A redirect that also works for htmx requests (which follow it as a full navigation)."""
    if is_htmx(request):
        return Response(status_code=200, headers={"HX-Redirect": url})
    return RedirectResponse(url, status_code=303)


# -- handlers -----------------------------------------------------------------------------------
async def _domain(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, DomainError)
    if isinstance(exc, Unauthenticated):
        return redirect(request, "/mfa" if exc.code == "mfa_required" else "/login")
    headers = {}
    if isinstance(exc, RetryLater):
        headers["Retry-After"] = str(exc.retry_after)
    return render_error(request, exc.status_code, domain_message(request, exc), headers=headers)


async def _validation(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    errors = exc.errors()
    if any(err.get("loc", ("",))[0] == "path" for err in errors):
        # A malformed id is a missing page, like any id out of scope.
        return render_error(request, 404, error_message(request, "not_found", None))
    fields = sorted(
        {
            ".".join(str(p) for p in err.get("loc", ())[1:]) or str(err.get("loc", ("",))[0])
            for err in errors
        }
    )
    return render_error(request, 422, error_message(request, "invalid_input", None), details=fields)


async def _crypto(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, CryptoError)
    # Names table, column and row id only; a moved or tampered value is never shown.
    log.error("security_integrity_failure", exc_type=type(exc).__name__, detail=str(exc))
    if isinstance(exc, DataKeyShreddedError):
        return render_error(request, 410, error_message(request, "erased", None))
    return render_error(request, 500, error_message(request, "integrity_error", None))


async def _unexpected(request: Request, exc: Exception) -> Response:
    # The exception text may carry values; log its type and where, never its message.
    tb = exc.__traceback__
    while tb is not None and tb.tb_next is not None:
        tb = tb.tb_next
    where = f"{tb.tb_frame.f_code.co_filename}:{tb.tb_lineno}" if tb else "?"
    log.error("unhandled_exception", exc_type=type(exc).__name__, where=where)
    return render_error(request, 500, error_message(request, "internal_error", None))


HTML_HANDLERS: dict[Any, Handler] = {
    DomainError: _domain,
    RequestValidationError: _validation,
    CryptoError: _crypto,
    Exception: _unexpected,
}


def _track_session(request: Request, session: DbSession) -> None:
    """Keep the request's unit of work at hand for the error path of `HtmlRoute`."""
    request.state.db_session = session


def _handler_for(exc: Exception) -> Handler | None:
    for cls in type(exc).__mro__:
        if cls in HTML_HANDLERS:
            return HTML_HANDLERS[cls]
    return None


class HtmlRoute(APIRoute):
    """An APIRoute whose errors are answered in HTML (see the module docstring).

    The handler runs inside the request's unit of work, so on an error it first undoes the
    request's writes (unless the error keeps its audit event, as `get_session` does), then
    answers with the HTML page. HTTPException keeps the application's own handler.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs["dependencies"] = [Depends(_track_session), *(kwargs.get("dependencies") or [])]
        super().__init__(*args, **kwargs)

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        original = super().get_route_handler()

        async def handler(request: Request) -> Response:
            try:
                return await original(request)
            except HTTPException:
                raise
            except Exception as exc:
                html = _handler_for(exc)
                if html is None:  # pragma: no cover - Exception is always there
                    raise
                session: Session | None = getattr(request.state, "db_session", None)
                keep = isinstance(exc, DomainError) and exc.keep_audit
                if session is not None and not keep:
                    await run_in_threadpool(session.rollback)
                return await html(request, exc)

        return handler


# -- form validation messages ---------------------------------------------------------------------
_TYPE_MESSAGES = {
    "missing": N_("This field is required."),
    "string_too_short": N_("This field is required."),
    "string_too_long": N_("This text is too long."),
    "string_pattern_mismatch": N_("This value is not in the expected format."),
    "date_parsing": N_("Enter a valid date."),
    "date_from_datetime_parsing": N_("Enter a valid date."),
    "date_type": N_("Enter a valid date."),
    "int_parsing": N_("Enter a whole number."),
    "int_type": N_("Enter a whole number."),
    "less_than_equal": N_("This number is out of range."),
    "greater_than_equal": N_("This number is out of range."),
    "enum": N_("Choose one of the options."),
    "literal_error": N_("Choose one of the options."),
    "uuid_parsing": N_("Choose one of the options."),
    "too_long": N_("Too many values."),
    "too_short": N_("Choose at least one item."),
}
_VALUE_MESSAGES = (
    ("date cannot be in the future", N_("The date cannot be in the future.")),
    ("date cannot be before", N_("The date cannot be before 1900.")),
    ("country code", N_("Choose a valid country.")),
    ("language code", N_("Enter valid language codes, for example fr, en.")),
    (
        "exploitation_end must not be before",
        N_("The end of the exploitation cannot be before its start."),
    ),
    ("expires_on must not be before", N_("The expiry date cannot be before the date given.")),
)
_GENERIC = N_("This value is not valid.")


def field_error(err: Mapping[str, Any]) -> str:
    """The English source text (translated by the caller) for one pydantic error."""
    kind = str(err.get("type", ""))
    if kind in _TYPE_MESSAGES:
        return _TYPE_MESSAGES[kind]
    if kind == "value_error":
        text = str(err.get("msg", ""))
        for needle, message in _VALUE_MESSAGES:
            if needle in text:
                return message
    return _GENERIC
