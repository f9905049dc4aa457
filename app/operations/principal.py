"""Who is calling, as far as rate limits and idempotency keys need to know, before routing.

Only the user id is wanted here, not an authorisation decision: the endpoint still
authenticates the request in full (session validity, MFA, CSRF). A session token maps to
the same user for its whole life, so the mapping is cached briefly per process; any
database trouble simply yields "unknown" and the endpoint answers for itself.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections import OrderedDict
from typing import Any

from sqlalchemy import select
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.types import Scope

from app.logging import get_logger

log = get_logger("passage.operations")

_CACHE_SECONDS = 60.0
_CACHE_SIZE = 10_000


class PrincipalResolver:
    def __init__(self) -> None:
        self._cache: OrderedDict[bytes, tuple[float, uuid.UUID | None]] = OrderedDict()
        self._lock = threading.Lock()

    def _cached(self, digest: bytes) -> tuple[bool, uuid.UUID | None]:
        with self._lock:
            hit = self._cache.get(digest)
            if hit is None or hit[0] < time.monotonic():
                return False, None
            self._cache.move_to_end(digest)
            return True, hit[1]

    def _remember(self, digest: bytes, user_id: uuid.UUID | None) -> None:
        with self._lock:
            ttl = _CACHE_SECONDS if user_id is not None else 5.0
            self._cache[digest] = (time.monotonic() + ttl, user_id)
            self._cache.move_to_end(digest)
            while len(self._cache) > _CACHE_SIZE:
                self._cache.popitem(last=False)

    async def user_id(self, scope: Scope) -> uuid.UUID | None:
        cached = scope.get("passage.user_id", False)
        if cached is not False:
            return cached  # type: ignore[no-any-return]
        try:
            found = await self._resolve(scope)
        except Exception as exc:  # never let the lookup decide the request's fate
            log.warning("principal_lookup_failed", exc_type=type(exc).__name__)
            found = None
        scope["passage.user_id"] = found
        return found

    async def _resolve(self, scope: Scope) -> uuid.UUID | None:
        app: Any = scope.get("app")
        if app is None:
            return None
        ctx = app.state.context
        request = Request(scope)
        authorization = request.headers.get("authorization", "")
        if authorization.lower().startswith("bearer "):
            from app.auth.tokens import subject
            from app.crypto.jose_strict import TokenError

            try:
                bearer_user, _ = subject(ctx, authorization[7:].strip())
            except TokenError:
                return None
            return bearer_user
        from app.auth.dependencies import SESSION_COOKIE
        from app.auth.service import token_digest

        token = request.cookies.get(SESSION_COOKIE)
        if not token or len(token) > 100:
            return None
        digest = token_digest(ctx, token)
        known, cached_user = self._cached(digest)
        if known:
            return cached_user
        found: uuid.UUID | None = await run_in_threadpool(self._lookup, app, digest)
        self._remember(digest, found)
        return found

    @staticmethod
    def _lookup(app: Any, digest: bytes) -> uuid.UUID | None:
        from app.auth.models import UserSession

        with app.state.database.sessionmaker() as session:
            return session.scalar(  # type: ignore[no-any-return]
                select(UserSession.user_id).where(UserSession.token_hmac == digest)
            )


RESOLVER = PrincipalResolver()
