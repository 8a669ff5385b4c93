"""A real HTTPS server over two tenants; alpha holds customers and transactions built for real."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from strongroom.tenancy.services import get_tenant
from tests.conftest import database
from tests.functional.identity.support import World, build_world
from tests.functional.support import RunningServer, serve_in_thread
from tests.unit.analysis.built import customers_and_transactions


@pytest.fixture(scope="module",
                params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgresql)])
def world(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory,
    postgres_available: bool,
) -> Iterator[World]:
    with database(request.param, postgres_available) as url:
        built = build_world(tmp_path_factory.mktemp("exports") / "home", url,
                            export_refusal_alert_count=2)
        try:
            with built.deployment.transaction() as session:
                alpha = get_tenant(session, "alpha")
            customers_and_transactions(built.deployment, alpha)
            yield built
        finally:
            built.deployment.close()


@pytest.fixture(scope="module")
def server(world: World) -> Iterator[RunningServer]:
    with serve_in_thread(world.deployment) as running:
        yield running
        assert not [r for r in running.records if "Traceback" in r]
