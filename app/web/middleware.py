"""Pure ASGI middleware: request ids, body-size limit and security headers on every response."""

from __future__ import annotations

import uuid
from collections.abc import Collection, MutableMapping
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.logging import request_id_var

CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "font-src 'self'; connect-src 'self'; form-action 'self'; object-src 'none'; "
    "base-uri 'none'; frame-ancestors 'none'"
)
SECURITY_HEADERS: list[tuple[bytes, bytes]] = [
    (b"content-security-policy", CSP.encode()),
    (b"strict-transport-security", b"max-age=63072000; includeSubDomains"),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"x-frame-options", b"DENY"),
    (b"cross-origin-opener-policy", b"same-origin"),
    (b"cross-origin-resource-policy", b"same-origin"),
    (b"permissions-policy", b"camera=(), microphone=(), geolocation=(), payment=()"),
]


class RequestContextMiddleware:
    """Request id, security headers, no-store by default, and a request body limit.

    `own_limit_paths` are routes that enforce a lower limit themselves, reading the body as
    a stream, and must record what they refuse (the instance-to-instance exchange endpoint
    quarantines and audits an oversize body: app/transnational/edge.py). This middleware
    leaves their body to them: refused here, the refusal would leave no trace.
    """

    def __init__(
        self, app: ASGIApp, *, max_body_bytes: int, own_limit_paths: Collection[str] = ()
    ) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes
        self.own_limit_paths = frozenset(own_limit_paths)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = uuid.uuid4().hex
        token = request_id_var.set(request_id)
        scope.setdefault("state", {})["request_id"] = request_id
        is_static = scope["path"].startswith("/static/")
        own_limit = scope["path"] in self.own_limit_paths

        headers = dict(scope.get("headers") or [])
        length = headers.get(b"content-length")
        if (
            not own_limit
            and length is not None
            and (not length.isdigit() or int(length) > self.max_body_bytes)
        ):
            await _send_plain(
                send,
                413,
                b'{"error":{"code":"payload_too_large","message":"Request body too large."}}',
                request_id,
            )
            request_id_var.reset(token)
            return

        received = 0

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_body_bytes:
                    raise BodyTooLarge
            return message

        async def send_with_headers(message: MutableMapping[str, Any]) -> None:
            if message["type"] == "http.response.start":
                out = list(message.get("headers", []))
                names = {name.lower() for name, _ in out}
                out.extend(h for h in SECURITY_HEADERS if h[0] not in names)
                out.append((b"x-request-id", request_id.encode()))
                if b"cache-control" not in names:
                    # Pages and API answers may hold personal data: never cache by default.
                    out.append(
                        (b"cache-control", b"public, max-age=3600" if is_static else b"no-store")
                    )
                message["headers"] = out
            await send(message)

        try:
            await self.app(scope, receive if own_limit else limited_receive, send_with_headers)
        except BodyTooLarge:
            await _send_plain(
                send,
                413,
                b'{"error":{"code":"payload_too_large","message":"Request body too large."}}',
                request_id,
            )
        finally:
            request_id_var.reset(token)


class BodyTooLarge(Exception):
    pass


async def _send_plain(send: Send, status: int, body: bytes, request_id: str) -> None:
    headers = [
        (b"content-type", b"application/json"),
        (b"x-request-id", request_id.encode()),
        *SECURITY_HEADERS,
    ]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
