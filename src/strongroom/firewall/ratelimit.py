"""Request rate limits per client address, with the `limits` package.

Counters live in this process by default, or in Redis (``redis_url``) so that
several app replicas share them. A refused request gets 429 with Retry-After.
"""

from __future__ import annotations

import math
import time

from limits import RateLimitItem, parse, storage, strategies

from strongroom.errors import ConfigurationError, StrongroomError


class RateLimited(StrongroomError):
    status = 429
    slug = "rate-limited"
    title = "Too many requests"

    def __init__(self, retry_after: int) -> None:
        super().__init__(f"too many requests from this address; retry in {retry_after} seconds")
        self.retry_after = retry_after


def parse_limit(raw: str, name: str) -> RateLimitItem:
    try:
        return parse(raw)
    except ValueError:
        raise ConfigurationError(
            f"setting {name} is not a rate limit", hint='write it like "600/minute"'
        ) from None


class RateLimiter:
    def __init__(self, redis_url: str, default: str, login: str) -> None:
        store = storage.storage_from_string(redis_url) if redis_url else storage.MemoryStorage()
        self._redis = store.storage if isinstance(store, storage.RedisStorage) else None
        self._limiter = strategies.SlidingWindowCounterRateLimiter(store)
        self.default = parse_limit(default, "rate_limit_default")
        self.login = parse_limit(login, "rate_limit_login")

    def hit(self, item: RateLimitItem, scope: str, key: str) -> None:
        """Count one request; raise RateLimited with the wait when over the limit."""
        if self._limiter.hit(item, scope, key):
            return
        stats = self._limiter.get_window_stats(item, scope, key)
        raise RateLimited(max(1, math.ceil(stats.reset_time - time.time())))

    def close(self) -> None:
        """Release the Redis connections, if counters live there."""
        if self._redis is not None:
            self._redis.close()
