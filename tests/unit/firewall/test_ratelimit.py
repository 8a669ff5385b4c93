"""The rate limiter on its own: memory and Redis storage, limits per scope and key."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from tests.conftest import REDIS_URL, require_redis

from strongroom.errors import ConfigurationError
from strongroom.firewall.ratelimit import RateLimited, RateLimiter, parse_limit


@pytest.fixture(params=["memory", "redis"])
def storage_url(request: pytest.FixtureRequest) -> Iterator[str]:
    if request.param == "memory":
        yield ""
        return
    client = require_redis()
    client.flushdb()
    yield REDIS_URL
    client.flushdb()
    client.close()


@pytest.fixture
def limiters() -> Iterator[list[RateLimiter]]:
    """Limiters made by a test, closed afterwards (Redis connections are sockets)."""
    made: list[RateLimiter] = []
    yield made
    for limiter in made:
        limiter.close()


def make(limiters: list[RateLimiter], url: str, default: str, login: str) -> RateLimiter:
    limiter = RateLimiter(url, default, login)
    limiters.append(limiter)
    return limiter


def test_hits_past_the_limit_raise_with_a_wait(
    storage_url: str, limiters: list[RateLimiter]
) -> None:
    limiter = make(limiters, storage_url, "3/minute", "2/minute")
    for _ in range(3):
        limiter.hit(limiter.default, "all", "192.0.2.1")
    with pytest.raises(RateLimited) as refused:
        limiter.hit(limiter.default, "all", "192.0.2.1")
    assert 1 <= refused.value.retry_after <= 60
    assert refused.value.status == 429
    assert "retry in" in refused.value.detail


def test_keys_and_scopes_are_counted_apart(
    storage_url: str, limiters: list[RateLimiter]
) -> None:
    limiter = make(limiters, storage_url, "2/minute", "1/minute")
    for key in ("192.0.2.1", "192.0.2.2"):
        limiter.hit(limiter.default, "all", key)
        limiter.hit(limiter.default, "all", key)
    limiter.hit(limiter.login, "login", "192.0.2.1")
    with pytest.raises(RateLimited):
        limiter.hit(limiter.login, "login", "192.0.2.1")
    limiter.hit(limiter.login, "operator-login", "192.0.2.1")


def test_redis_holds_the_counters(limiters: list[RateLimiter]) -> None:
    client = require_redis()
    client.flushdb()
    try:
        first = make(limiters, REDIS_URL, "2/minute", "1/minute")
        second = make(limiters, REDIS_URL, "2/minute", "1/minute")
        first.hit(first.default, "all", "192.0.2.9")
        second.hit(second.default, "all", "192.0.2.9")
        with pytest.raises(RateLimited):
            first.hit(first.default, "all", "192.0.2.9")
        assert any(b"192.0.2.9" in key for key in client.keys("*"))
    finally:
        client.flushdb()
        client.close()


@pytest.mark.parametrize("raw", ["lots", "10 per fortnight", "", "-1/minute"])
def test_a_bad_limit_is_a_configuration_error(raw: str) -> None:
    with pytest.raises(ConfigurationError, match="rate_limit_default"):
        parse_limit(raw, "rate_limit_default")
