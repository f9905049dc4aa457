"""Rate limits per user, per client address, and stricter ones on sensitive routes.

Algorithm: GCRA (generic cell rate algorithm), one timestamp per bucket: `burst` requests
may arrive at once, then one every `period / rate`. Answers 429 with `Retry-After`.

Backends: Redis when `PASSAGE_REDIS_URL` is set (one Lua script checks every bucket of a
request atomically, on Redis's clock, so all workers share the counts); otherwise a
per-process table (the embedded single-process default). When Redis fails, the limiter
falls back to per-process limits for a few seconds rather than failing requests.

Bucket keys are HMACs (under a key derived from the session key) of the user id or the
address: Redis never holds an address or an id in clear.

Login failures are throttled separately, in the database (app/auth/service.py).
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import math
import threading
import time
import weakref
from dataclasses import dataclass, field
from typing import Any

from fastapi import FastAPI
from starlette.types import ASGIApp, Receive, Scope, Send

from app.config import Settings
from app.logging import get_logger
from app.operations import metrics
from app.operations.principal import RESOLVER

log = get_logger("passage.operations")

EXEMPT_PREFIXES = ("/static/",)
EXEMPT_PATHS = frozenset({"/healthz", "/readyz", "/metrics"})
# Path segments that mark an expensive or sensitive operation: revealing sealed fields,
# exports, break-glass, erasure, duplicate probes (blind-index searches), machine tokens.
SENSITIVE_SEGMENTS = frozenset(
    {"reveal", "export", "exports", "break-glass", "erasure", "duplicates", "token"}
)
_FALLBACK_SECONDS = 5.0


@dataclass(frozen=True)
class Limit:
    rate: int  # requests per period, sustained
    period: float  # seconds
    burst: int  # requests allowed at once

    @property
    def emission_ms(self) -> float:
        return self.period * 1000.0 / self.rate

    @property
    def tolerance_ms(self) -> float:
        return self.emission_ms * self.burst


@dataclass(frozen=True)
class RateLimits:
    """Defaults (the same as the settings' defaults); see `from_settings`."""

    enabled: bool = True
    user: Limit = field(default_factory=lambda: Limit(600, 60, 120))
    address: Limit = field(default_factory=lambda: Limit(1200, 60, 240))
    sensitive: Limit = field(default_factory=lambda: Limit(20, 60, 10))
    sensitive_daily: Limit = field(default_factory=lambda: Limit(500, 86_400, 500))

    @classmethod
    def from_settings(cls, settings: Settings) -> RateLimits:
        """The `rate_limit_*` settings (PASSAGE_RATE_LIMIT_* variables)."""
        return cls(
            enabled=settings.rate_limit_enabled,
            user=Limit(settings.rate_limit_user_per_minute, 60, settings.rate_limit_user_burst),
            address=Limit(
                settings.rate_limit_address_per_minute, 60, settings.rate_limit_address_burst
            ),
            sensitive=Limit(
                settings.rate_limit_sensitive_per_minute, 60, settings.rate_limit_sensitive_burst
            ),
            sensitive_daily=Limit(
                settings.rate_limit_sensitive_per_day,
                86_400,
                settings.rate_limit_sensitive_daily_burst,
            ),
        )


@dataclass(frozen=True)
class Bucket:
    name: str  # user, address, sensitive, sensitive_daily
    key: str  # HMAC of the subject
    limit: Limit


@dataclass(frozen=True)
class Decision:
    allowed: bool
    retry_after: float = 0.0  # seconds
    refused_by: str | None = None


class InProcessBackend:
    """GCRA in one process: exact for a single worker, per worker otherwise."""

    def __init__(self) -> None:
        self._tat: dict[str, float] = {}
        self._lock = threading.Lock()

    def check(self, buckets: list[Bucket], now_ms: float | None = None) -> Decision:
        now = time.monotonic() * 1000.0 if now_ms is None else now_ms
        with self._lock:
            updates: dict[str, float] = {}
            wait, refused_by = 0.0, None
            for bucket in buckets:
                tat = max(self._tat.get(bucket.key, now), now)
                new_tat = tat + bucket.limit.emission_ms
                excess = new_tat - now - bucket.limit.tolerance_ms
                if excess > wait:
                    wait, refused_by = excess, bucket.name
                updates[bucket.key] = new_tat
            if wait > 0:
                return Decision(False, wait / 1000.0, refused_by)
            self._tat.update(updates)
            if len(self._tat) > 100_000:
                self._tat = {k: v for k, v in self._tat.items() if v > now}
        return Decision(True)


_GCRA_LUA = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local wait, refused = 0, 0
local new = {}
for i = 1, #KEYS do
  local emission = tonumber(ARGV[2 * i - 1])
  local tolerance = tonumber(ARGV[2 * i])
  local tat = tonumber(redis.call('GET', KEYS[i]) or now)
  if tat < now then tat = now end
  local nt = tat + emission
  local excess = nt - now - tolerance
  if excess > wait then wait = excess; refused = i end
  new[i] = nt
end
if wait > 0 then return {0, math.ceil(wait), refused} end
for i = 1, #KEYS do
  redis.call('SET', KEYS[i], string.format('%d', math.ceil(new[i])),
             'PX', math.ceil(new[i] - now) + 1000)
end
return {1, 0, 0}
"""


class RedisBackend:
    """GCRA in Redis: one script call per request checks and updates every bucket."""

    def __init__(self, url: str, *, prefix: str = "passage:rl:") -> None:
        self.url = url
        self.prefix = prefix
        self._clients: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Any] = (
            weakref.WeakKeyDictionary()
        )

    def _script(self) -> Any:
        loop = asyncio.get_running_loop()
        script = self._clients.get(loop)
        if script is None:
            import redis.asyncio as aioredis

            client = aioredis.Redis.from_url(
                self.url, socket_timeout=0.25, socket_connect_timeout=0.25
            )
            script = client.register_script(_GCRA_LUA)
            self._clients[loop] = script
        return script

    async def check(self, buckets: list[Bucket]) -> Decision:
        args: list[float] = []
        for bucket in buckets:
            args.extend((bucket.limit.emission_ms, bucket.limit.tolerance_ms))
        result = await self._script()(keys=[self.prefix + b.key for b in buckets], args=args)
        allowed, wait_ms, refused = (int(x) for x in result)
        if allowed:
            return Decision(True)
        return Decision(False, wait_ms / 1000.0, buckets[refused - 1].name)


class Limiter:
    def __init__(self, redis: RedisBackend | None) -> None:
        self.redis = redis
        self.local = InProcessBackend()
        self._redis_down_until = 0.0

    async def check(self, buckets: list[Bucket]) -> Decision:
        if self.redis is not None and time.monotonic() >= self._redis_down_until:
            try:
                return await self.redis.check(buckets)
            except Exception as exc:  # Redis down or slow: degrade to per-process limits
                metrics.RATE_LIMIT_BACKEND_ERRORS.inc()
                log.warning("rate_limit_backend_unavailable", exc_type=type(exc).__name__)
                self._redis_down_until = time.monotonic() + _FALLBACK_SECONDS
        return self.local.check(buckets)


def is_sensitive(path: str) -> bool:
    return any(segment in SENSITIVE_SEGMENTS for segment in path.split("/"))


def _subject_key(secret: bytes, kind: str, subject: str) -> str:
    digest = hmac.new(secret, f"{kind}\x1f{subject}".encode(), hashlib.sha256).hexdigest()
    return f"{kind}:{digest[:32]}"


_SECRETS: weakref.WeakKeyDictionary[Any, bytes] = weakref.WeakKeyDictionary()


def _secret(app: Any) -> bytes:
    secret = _SECRETS.get(app)
    if secret is None:
        session_key: bytes = app.state.context.keys.session_key
        secret = hmac.new(session_key, b"passage:rate-limit", hashlib.sha256).digest()
        _SECRETS[app] = secret
    return secret


def buckets_for(
    app: Any, limits: RateLimits, path: str, address: str, user_id: str | None
) -> list[Bucket]:
    secret = _secret(app)
    out = [Bucket("address", _subject_key(secret, "addr", address), limits.address)]
    if user_id is not None:
        out.append(Bucket("user", _subject_key(secret, "user", user_id), limits.user))
    if is_sensitive(path):
        subject = _subject_key(secret, "user" if user_id else "addr", user_id or address)
        out.append(Bucket("sensitive", "sens:" + subject, limits.sensitive))
        out.append(Bucket("sensitive_daily", "sensd:" + subject, limits.sensitive_daily))
    return out


async def too_many(send: Send, retry_after: float) -> None:
    seconds = max(1, math.ceil(retry_after))
    body = (
        b'{"error":{"code":"rate_limited","message":"Too many requests. Try again in '
        + str(seconds).encode()
        + b' seconds."}}'
    )
    await send(
        {
            "type": "http.response.start",
            "status": 429,
            "headers": [
                (b"content-type", b"application/json"),
                (b"retry-after", str(seconds).encode()),
                (b"content-length", str(len(body)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


class RateLimitMiddleware:
    def __init__(self, app: ASGIApp, *, limiter: Limiter) -> None:
        self.app = app
        self.limiter = limiter

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path: str = scope.get("path", "")
        if (
            scope["type"] != "http"
            or path in EXEMPT_PATHS
            or path.startswith(EXEMPT_PREFIXES)
            or scope["method"] == "OPTIONS"
        ):
            await self.app(scope, receive, send)
            return
        app = scope["app"]
        limits: RateLimits = app.state.rate_limits
        if not limits.enabled:
            await self.app(scope, receive, send)
            return
        client = scope.get("client")
        address = client[0] if client else "unknown"
        user = await RESOLVER.user_id(scope)
        decision = await self.limiter.check(
            buckets_for(app, limits, path, address, str(user) if user else None)
        )
        if not decision.allowed:
            metrics.RATE_LIMITED.labels(decision.refused_by or "unknown").inc()
            await too_many(send, decision.retry_after)
            return
        await self.app(scope, receive, send)


def install(app: FastAPI, settings: Settings) -> Limiter:
    """Limits live in app.state.rate_limits (tests and operators may replace them)."""
    app.state.rate_limits = RateLimits.from_settings(settings)
    limiter = Limiter(RedisBackend(settings.redis_url) if settings.redis_url else None)
    app.state.rate_limiter = limiter
    app.add_middleware(RateLimitMiddleware, limiter=limiter)
    return limiter
