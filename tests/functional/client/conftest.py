"""A real ``strongroom serve`` per module and database, with a tenant and users made by the
operator CLI; the tests then act only as tenant users through the client."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import database
from tests.functional.client.support import Client, make_tenant, make_user
from tests.functional.support import RunningServer, init_home, serve_subprocess

TENANT = "acme"
ANALYST = "ann@acme.example"
VIEWER = "vic@acme.example"
# Raised so that no test meets a rate limit it is not about (each test logs in afresh).
GENEROUS = {"STRONGROOM_RATE_LIMIT_LOGIN": "10000/minute",
            "STRONGROOM_RATE_LIMIT_DEFAULT": "100000/minute"}


@pytest.fixture(scope="module", params=["sqlite",
                                        pytest.param("postgresql", marks=pytest.mark.postgresql)])
def server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory,
    postgres_available: bool,
) -> Iterator[RunningServer]:
    with database(request.param, postgres_available) as url:
        home = tmp_path_factory.mktemp("client") / "home"
        init_home(home, *(["--database-url", url] if url else []))
        make_tenant(home, TENANT)
        make_user(home, TENANT, ANALYST, "analyst")
        make_user(home, TENANT, VIEWER, "viewer")
        with serve_subprocess(home, home.parent / "serve.log", env=GENEROUS) as running:
            yield running
        assert "Traceback" not in running.log_text()


@pytest.fixture
def client(server: RunningServer, tmp_path: Path) -> Client:
    """A client with a fresh, empty credentials directory."""
    return Client(tmp_path / "config", server)


@pytest.fixture
def analyst(client: Client) -> Client:
    """A client logged in as the tenant's analyst."""
    result = client.login(TENANT, ANALYST)
    assert result.returncode == 0, result.stderr
    return client
