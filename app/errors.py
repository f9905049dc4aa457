"""Domain errors carry their HTTP status and a stable code; messages never hold personal data."""

from __future__ import annotations


class DomainError(Exception):
    status_code = 400
    code = "bad_request"
    # When True the unit of work commits what was written before the error (only the
    # access_denied audit event: denials must be recorded even though the request fails).
    keep_audit = False

    def __init__(self, message: str, *, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code


class NotFound(DomainError):
    status_code = 404
    code = "not_found"

    def __init__(self, message: str = "Not found", *, audited: bool = False) -> None:
        super().__init__(message)
        self.keep_audit = audited


class Forbidden(DomainError):
    status_code = 403
    code = "forbidden"


class Unauthenticated(DomainError):
    status_code = 401
    code = "unauthenticated"


class Conflict(DomainError):
    status_code = 409
    code = "conflict"


class StaleVersion(Conflict):
    code = "stale_version"


class GuardRefused(DomainError):
    status_code = 409
    code = "guard_refused"


class InvalidInput(DomainError):
    status_code = 422
    code = "invalid_input"


class RetryLater(DomainError):
    """Nothing was done; the same request may be sent again after `retry_after` seconds."""

    def __init__(self, message: str, retry_after: int) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class TooManyRequests(RetryLater):
    status_code = 429
    code = "too_many_requests"


class ServiceUnavailable(RetryLater):
    status_code = 503
    code = "service_unavailable"
