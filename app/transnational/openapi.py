"""The documented answers of the transnational routes, for the OpenAPI document.

Every status a route can give is declared, so a schema-conformance checker (schemathesis,
docs/reliability.md) finds none undocumented. Error bodies share the application's shape
(``{"error": {"code", "message", ...}}``, app/main.py).
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict


class ErrorDetail(BaseModel):
    model_config = ConfigDict(extra="allow")

    code: str
    message: str


class ErrorOut(BaseModel):
    error: ErrorDetail


class RefusalDetail(BaseModel):
    """A refused package: the stable reason code, and the quarantine row that keeps it."""

    model_config = ConfigDict(extra="allow")

    code: str
    message: str
    reason: str | None = None
    quarantine_id: str | None = None


class RefusalOut(BaseModel):
    error: RefusalDetail
    receipt: str | None = None


class ReceiptOut(BaseModel):
    """A signed receipt (``receipt+jwt``) for the message, or for its duplicate."""

    receipt: str
    duplicate: bool = False


_DESCRIPTIONS = {
    400: "Malformed request (e.g. an invalid Idempotency-Key header)",
    401: "Not signed in, second factor missing, or access token refused",
    403: "Role not allowed for this step, or CSRF/Origin check failed",
    404: "No such resource in your scope",
    409: "Conflict with the current state (thread state, consent, stale version)",
    410: "The content was crypto-shredded (erased) and can no longer be read",
    413: "Request body larger than allowed",
    422: "Input not valid",
    428: "If-Match with the case version is required",
    429: "Too many requests (Retry-After)",
}

# Statuses every signed-in route can give: sign-in, role or CSRF, validation, rate limit.
SESSION = (400, 401, 403, 413, 422, 429)


def errors(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """`responses=` for a signed-in route: the common statuses plus these."""
    return {
        status: {"model": ErrorOut, "description": _DESCRIPTIONS[status]}
        for status in sorted({*SESSION, *statuses})
    }


# The instance-to-instance endpoint: its request body is read raw (its hash is what the
# quarantine keeps), so the transport document is declared here for clients and fuzzers.
EXCHANGE_REQUEST_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {
                "schema": {
                    "type": "object",
                    "additionalProperties": False,
                    "required": ["message"],
                    "properties": {
                        "message": {
                            "type": "string",
                            "description": "The message: a compact JWE (RSA-OAEP-256, A256GCM) "
                            "holding the sender's compact ES256 JWS. At most 200,000 characters.",
                        },
                        "attachments": {
                            "type": "array",
                            "maxItems": 3,
                            "items": {"type": "string"},
                            "description": "Attachments: one compact JWE each, listed in the "
                            "signed package's manifest (size and SHA-256).",
                        },
                    },
                }
            }
        },
    }
}

EXCHANGE_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {"model": ReceiptOut, "description": "Received (or a duplicate): a signed receipt"},
    409: {"model": RefusalOut, "description": "Refused: replayed package id (quarantined)"},
    413: {"model": RefusalOut, "description": "Refused: oversize (quarantined)"},
    415: {
        "model": RefusalOut,
        "description": "Refused: the body is not application/json (charset utf-8 only); "
        "quarantined",
    },
    422: {
        "model": RefusalOut,
        "description": "Refused with a reason code (quarantined); a known sender also gets a "
        "signed refusal receipt",
    },
    429: {"model": ErrorOut, "description": _DESCRIPTIONS[429]},
    503: {
        "model": ErrorOut,
        "description": "Not accepting messages now (exchange identity not configured, or a "
        "concurrent delivery of the same package): retry later",
    },
}

PUBLIC_RESPONSES: dict[int | str, dict[str, Any]] = {
    429: {"model": ErrorOut, "description": _DESCRIPTIONS[429]},
}

ATTACHMENT_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "The attachment as it was sent (its type was checked on upload)",
        "content": {"application/pdf": {}, "image/jpeg": {}, "image/png": {}},
    },
    **errors(404, 409, 410),
}
