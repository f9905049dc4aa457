"""Where operational middleware and routes join the application (called by create_app)."""

from __future__ import annotations

from fastapi import FastAPI

from app.config import Settings
from app.operations import idempotency, metrics, ratelimit


def install(app: FastAPI, settings: Settings) -> None:
    """Add operational middleware and routes. Middleware added here runs inside the
    request-context middleware (request id and security headers are already set).

    Added innermost first: metrics (outermost, sees every answer, 429s included), then
    rate limits (cheap refusals before any work), then idempotency keys (next to the app).
    """
    idempotency.install(app)
    ratelimit.install(app, settings)
    metrics.install(app)
