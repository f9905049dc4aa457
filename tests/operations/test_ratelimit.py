"""Rate limits: per user, per address, stricter on sensitive routes; Redis shared by workers."""

from __future__ import annotations

import os
import uuid

import pytest

from app.operations.ratelimit import (
    Bucket,
    InProcessBackend,
    Limit,
    Limiter,
    RateLimits,
    RedisBackend,
    is_sensitive,
)
from tests.builders import registration

REDIS_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
GENEROUS = Limit(10_000, 60, 10_000)


def run_in_own_loop(factory):  # type: ignore[no-untyped-def]
    """Run a coroutine on a fresh thread: Playwright's sync API may own this thread's loop."""
    import asyncio
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(1) as pool:
        return pool.submit(lambda: asyncio.run(factory())).result()


def _limits(**overrides: Limit) -> RateLimits:
    values = {
        "user": GENEROUS,
        "address": GENEROUS,
        "sensitive": GENEROUS,
        "sensitive_daily": GENEROUS,
    }
    values.update(overrides)
    return RateLimits(**values)


def test_gcra_allows_the_burst_then_the_rate() -> None:
    backend = InProcessBackend()
    bucket = [Bucket("user", "k", Limit(60, 60, 3))]  # 1 per second, 3 at once
    assert [backend.check(bucket, now_ms=0).allowed for _ in range(3)] == [True] * 3
    refused = backend.check(bucket, now_ms=0)
    assert not refused.allowed and refused.retry_after == pytest.approx(1.0)
    assert refused.refused_by == "user"
    assert backend.check(bucket, now_ms=1000).allowed
    assert not backend.check(bucket, now_ms=1000).allowed
    assert backend.check(bucket, now_ms=10_000).allowed  # idle refills up to the burst only


def test_a_refused_request_consumes_no_bucket() -> None:
    backend = InProcessBackend()
    tight = Bucket("sensitive", "s", Limit(60, 60, 1))
    loose = Bucket("user", "u", Limit(60, 60, 2))
    assert backend.check([tight, loose], now_ms=0).allowed
    assert not backend.check([tight, loose], now_ms=0).allowed
    assert backend.check([loose], now_ms=0).allowed  # the refusal did not use `loose`


def test_sensitive_routes_are_recognised_by_their_static_segments() -> None:
    for path in (
        "/api/v1/cases/0190/break-glass",
        "/api/v1/victims/0190/erasure",
        "/api/v1/cases/0190/duplicates",
        "/cases/0190/reveal",
        "/api/v1/reports/export",
        "/api/v1/auth/token",
    ):
        assert is_sensitive(path), path
    for path in ("/api/v1/cases", "/api/v1/cases/0190", "/api/v1/cases/0190/notes"):
        assert not is_sensitive(path), path


def test_per_user_limit_answers_429_with_retry_after(world, api, app) -> None:
    client = api(world.user("ngo_caseworker", world.agency("ngo")))
    app.state.rate_limits = _limits(user=Limit(60, 60, 3))
    statuses = [client.get("/api/v1/cases").status_code for _ in range(4)]
    assert statuses == [200, 200, 200, 429]
    refused = client.get("/api/v1/cases")
    assert refused.status_code == 429
    assert refused.headers["retry-after"].isdigit() and int(refused.headers["retry-after"]) >= 1
    assert refused.json()["error"]["code"] == "rate_limited"
    # Another user of the same address still gets through: the limit was the user's.
    other = api(world.user("ngo_caseworker", world.agency("ngo")))
    assert other.get("/api/v1/cases").status_code == 200


def test_per_address_limit_applies_to_anonymous_callers(app, client) -> None:
    app.state.rate_limits = _limits(address=Limit(60, 60, 2))
    statuses = [client.get("/api/v1/cases").status_code for _ in range(3)]
    assert statuses == [401, 401, 429]
    # Health and metrics are never limited.
    assert client.get("/healthz").status_code == 200
    assert client.get("/metrics").status_code == 200


def test_sensitive_routes_have_a_stricter_limit(world, api, app) -> None:
    client = api(world.user("ngo_caseworker", world.agency("ngo")))
    case_id = client.post("/api/v1/cases", json=registration()).json()["id"]
    app.state.rate_limits = _limits(sensitive=Limit(2, 60, 2))
    duplicates = [client.get(f"/api/v1/cases/{case_id}/duplicates").status_code for _ in range(3)]
    assert duplicates == [200, 200, 429]
    assert client.get(f"/api/v1/cases/{case_id}").status_code == 200  # ordinary reads go on


def test_limits_can_be_switched_off(app, client) -> None:
    app.state.rate_limits = RateLimits(enabled=False, address=Limit(1, 60, 1))
    assert {client.get("/api/v1/cases").status_code for _ in range(5)} == {401}


def test_limits_come_from_settings_and_their_environment_variables(settings, monkeypatch) -> None:
    limits = RateLimits.from_settings(settings)
    assert limits == RateLimits()  # the settings' defaults are the documented ones
    assert limits.sensitive.rate < limits.user.rate <= limits.address.rate

    monkeypatch.setenv("PASSAGE_RATE_LIMIT_ENABLED", "false")
    monkeypatch.setenv("PASSAGE_RATE_LIMIT_USER_PER_MINUTE", "30")
    monkeypatch.setenv("PASSAGE_RATE_LIMIT_USER_BURST", "5")
    monkeypatch.setenv("PASSAGE_RATE_LIMIT_SENSITIVE_PER_DAY", "7")
    from_env = RateLimits.from_settings(type(settings)(**settings.model_dump(exclude_unset=True)))
    assert not from_env.enabled
    assert from_env.user == Limit(30, 60, 5)
    assert from_env.sensitive_daily == Limit(7, 86_400, 500)
    assert from_env.address == RateLimits().address


def _redis_or_skip() -> None:
    import redis

    try:
        redis.Redis.from_url(REDIS_URL, socket_connect_timeout=0.5).ping()
    except redis.RedisError:
        pytest.skip("Redis is not reachable")


def test_redis_backend_counts_across_instances() -> None:
    """Two limiters (two workers) sharing one Redis refuse together; keys expire."""
    _redis_or_skip()

    import redis

    prefix = f"passage-test:{uuid.uuid4().hex}:"
    bucket = [Bucket("user", "user:abc", Limit(60, 60, 3))]

    async def run() -> list[bool]:
        a, b = RedisBackend(REDIS_URL, prefix=prefix), RedisBackend(REDIS_URL, prefix=prefix)
        out = []
        for backend in (a, b, a, b):
            out.append((await backend.check(bucket)).allowed)
        refused = await b.check(bucket)
        assert 0 < refused.retry_after <= 1.0 and refused.refused_by == "user"
        return out

    assert run_in_own_loop(run) == [True, True, True, False]
    ttl = redis.Redis.from_url(REDIS_URL).pttl(prefix + "user:abc")
    assert 0 < ttl <= 5_000  # never kept beyond its window (+1 s)


def test_redis_outage_falls_back_to_per_process_limits() -> None:

    limiter = Limiter(RedisBackend("redis://127.0.0.1:1/0"))
    bucket = [Bucket("user", "u", Limit(60, 60, 2))]

    async def run() -> list[bool]:
        return [(await limiter.check(bucket)).allowed for _ in range(3)]

    assert run_in_own_loop(run) == [True, True, False]


def test_rate_limited_app_with_redis_end_to_end(world, api, app, settings) -> None:
    """The middleware with a Redis backend: 429 after the burst, shared key prefix."""
    _redis_or_skip()
    from app.operations.ratelimit import Limiter as LimiterClass

    client = api(world.user("ngo_caseworker", world.agency("ngo")))
    limiter = LimiterClass(RedisBackend(REDIS_URL, prefix=f"passage-test:{uuid.uuid4().hex}:"))
    # Swap the backend of the installed middleware's limiter.
    app.state.rate_limiter.redis = limiter.redis
    app.state.rate_limits = _limits(user=Limit(60, 60, 2))
    assert [client.get("/api/v1/cases").status_code for _ in range(3)] == [200, 200, 429]
