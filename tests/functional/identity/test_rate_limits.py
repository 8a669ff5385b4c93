"""Request rate limits through the app: per client address, 429 with Retry-After, counted
in this process by default or in Redis when ``redis_url`` is set (the local Redis, db 15)."""

from __future__ import annotations

import secrets
from collections.abc import Callable, Iterator

import pytest
import redis
from starlette.testclient import TestClient

from strongroom.config import Settings
from strongroom.deployment import open_deployment
from strongroom.web.app import create_app
from tests.conftest import REDIS_URL, require_redis
from tests.functional.identity.support import problem


def fresh_address() -> str:
    """A documentation-range address of this run alone: another test run sharing the
    local Redis (a colleague's, or a second CI job) must not share its counters."""
    return f"2001:db8::{secrets.token_hex(2)}:{secrets.token_hex(2)}"


@pytest.fixture
def redis_db() -> Iterator[redis.Redis]:
    client = require_redis()
    client.flushdb()
    yield client
    client.flushdb()
    client.close()


def app_client(
    make_home: Callable[..., Settings], address: str, **settings: object
) -> Iterator[TestClient]:
    deployment = open_deployment(make_home(**settings))
    app = create_app(deployment)
    try:
        with TestClient(app, base_url="https://testserver", client=(address, 50000)) as client:
            yield client
    finally:
        app.state.limiter.close()
        deployment.close()


def hit_until_refused(client: TestClient, path: str, limit: int, **kwargs: object) -> int:
    for n in range(1, limit + 2):
        method = "POST" if "json" in kwargs else "GET"
        response = client.request(method, path, **kwargs)  # type: ignore[arg-type]
        if response.status_code == 429:
            body = problem(response, 429)
            assert body["type"].endswith("/rate-limited")
            assert int(response.headers["retry-after"]) >= 1
            return n
    raise AssertionError(f"no 429 after {limit + 1} requests")


@pytest.mark.parametrize("storage", ["memory", "redis"])
def test_requests_past_the_limit_get_429_with_retry_after(
    make_home: Callable[..., Settings], request: pytest.FixtureRequest, storage: str
) -> None:
    extra: dict[str, object] = {"rate_limit_default": "5/minute"}
    if storage == "redis":
        db: redis.Redis = request.getfixturevalue("redis_db")
        extra["redis_url"] = REDIS_URL
    address = fresh_address()
    for client in app_client(make_home, address, **extra):
        assert hit_until_refused(client, "/healthz", 5) == 6
        if storage == "redis":
            keys = [k.decode() for k in db.keys("*")]
            assert any(address in k for k in keys), keys


def test_redis_counts_are_shared_by_app_replicas(
    make_home: Callable[..., Settings], redis_db: redis.Redis
) -> None:
    """Two apps (as on two servers) with one Redis: the limit holds across both."""
    settings = make_home(rate_limit_default="6/minute", redis_url=REDIS_URL)
    first, second = open_deployment(settings), open_deployment(settings)
    apps = [create_app(first), create_app(second)]
    try:
        shared, separate = fresh_address(), fresh_address()
        clients = [TestClient(app, base_url="https://testserver", client=(shared, 50000))
                   for app in apps]
        statuses = [clients[n % 2].get("/healthz").status_code for n in range(7)]
        assert statuses == [200] * 6 + [429]
        other = TestClient(apps[0], base_url="https://testserver", client=(separate, 50000))
        assert other.get("/healthz").status_code == 200  # another address, its own count
        keys = [k.decode() for k in redis_db.keys("*")]
        assert any(shared in k for k in keys), keys
        assert any(separate in k for k in keys), keys
    finally:
        for app in apps:
            app.state.limiter.close()
        first.close()
        second.close()


@pytest.mark.parametrize("storage", ["memory", "redis"])
def test_logins_have_their_own_lower_limit(
    make_home: Callable[..., Settings], request: pytest.FixtureRequest, storage: str
) -> None:
    extra: dict[str, object] = {"rate_limit_login": "3/minute"}
    if storage == "redis":
        request.getfixturevalue("redis_db")
        extra["redis_url"] = REDIS_URL
    body = {"tenant": "nosuch", "email": "a@example.org", "password": "x"}
    for client in app_client(make_home, fresh_address(), **extra):
        assert hit_until_refused(client, "/api/v1/login", 3, json=body) == 4
        # Other routes still answer: the login limit is per route.
        assert client.get("/healthz").status_code == 200
