"""Shared fixtures: real deployments on real SQLite files and the local PostgreSQL.

Database-backed tests take the ``db_url`` fixture (directly or through
``deployment``) and so run twice: on SQLite, and on PostgreSQL when it answers.
With CI=true an unreachable PostgreSQL fails the run instead of skipping.
Each PostgreSQL test gets its own schema, dropped afterwards.
"""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import redis
import sqlalchemy as sa

from strongroom.config import Environment, Settings, load_settings
from strongroom.deployment import Deployment, initialise, open_deployment
from strongroom.tenancy.models import Tenant
from strongroom.tenancy.services import create_tenant

PG_ADMIN_URL = os.environ.get(
    "STRONGROOM_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)
IN_CI = os.environ.get("CI", "").lower() == "true"
REDIS_URL = os.environ.get("STRONGROOM_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")


def require_redis() -> redis.Redis:
    """A client of the local Redis (db 15), or skip — or fail, with CI=true."""
    client = redis.Redis.from_url(REDIS_URL)
    try:
        client.ping()
    except redis.ConnectionError:
        client.close()
        if IN_CI:
            pytest.fail(f"Redis at {REDIS_URL} is required when CI=true")
        pytest.skip(f"Redis is not running at {REDIS_URL}")
    return client


@pytest.fixture(autouse=True)
def _clean_strongroom_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tests start from defaults; the developer's own STRONGROOM_* variables must not leak in."""
    for name in list(os.environ):
        if name.startswith("STRONGROOM_") and name != "STRONGROOM_TEST_PG_URL":
            monkeypatch.delenv(name)


def _postgres_available() -> bool:
    try:
        engine = sa.create_engine(PG_ADMIN_URL, connect_args={"connect_timeout": 3})
        with engine.connect() as conn:
            conn.execute(sa.text("SELECT 1"))
        engine.dispose()
    except sa.exc.OperationalError:
        return False
    return True


@pytest.fixture(scope="session")
def postgres_available() -> bool:
    return _postgres_available()


@contextlib.contextmanager
def database(kind: str, postgres_available: bool) -> Iterator[str]:
    """'' (SQLite in the home) or the URL of a fresh PostgreSQL schema, dropped afterwards.

    Also for module-scoped fixtures, which cannot use the function-scoped ``db_url``.
    """
    if kind == "sqlite":
        yield ""
        return
    if not postgres_available:
        if IN_CI:
            pytest.fail("PostgreSQL at 127.0.0.1:5432 is required when CI=true")
        pytest.skip("PostgreSQL is not running at 127.0.0.1:5432")
    schema = "sr_" + uuid.uuid4().hex[:16]
    admin = sa.create_engine(PG_ADMIN_URL)
    with admin.begin() as conn:
        conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    try:
        yield f"{PG_ADMIN_URL}?options=-csearch_path%3D{schema}"
    finally:
        with admin.begin() as conn:
            conn.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgresql)])
def db_url(request: pytest.FixtureRequest, postgres_available: bool) -> Iterator[str]:
    """'' for SQLite in the deployment home, or a URL to a fresh PostgreSQL schema."""
    with database(request.param, postgres_available) as url:
        yield url


@pytest.fixture
def make_home(tmp_path: Path) -> Callable[..., Settings]:
    """Initialise a deployment home under tmp_path; returns its settings."""
    counter = iter(range(1000))

    def make(
        environment: Environment = Environment.DEVELOPMENT,
        database_url: str = "",
        name: str | None = None,
        **extra: object,
    ) -> Settings:
        home = tmp_path / (name or f"home{next(counter)}")
        initialise(home, environment, database_url, extra_settings=dict(extra) or None)
        return load_settings(home)

    return make


@pytest.fixture
def settings(make_home: Callable[..., Settings], db_url: str) -> Settings:
    return make_home(database_url=db_url)


@pytest.fixture
def deployment(settings: Settings) -> Iterator[Deployment]:
    opened = open_deployment(settings)
    yield opened
    opened.close()


@pytest.fixture
def make_tenant(deployment: Deployment) -> Callable[[str], Tenant]:
    def make(slug: str) -> Tenant:
        with deployment.transaction() as session:
            return create_tenant(session, deployment.keys, slug)

    return make
