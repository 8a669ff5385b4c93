"""A real HTTPS server over a world of two tenants, each with datasets built for real.

Tenant alpha holds customers (e-mail marked personal) and their transactions;
tenant bravo holds customers of its own. The tests act as tenant users with API
tokens over TLS on loopback, and check answers against the same small data
computed independently in Python (:mod:`tests.functional.analysis_api.expected`).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from strongroom.tenancy.services import get_tenant
from tests.conftest import database
from tests.functional.analysis_api.expected import BRAVO_CSV
from tests.functional.identity.support import World, build_world
from tests.functional.support import RunningServer, serve_in_thread
from tests.unit.analysis.built import build, customers_and_transactions

# Small on purpose: a 10-row dataset can then show a refused cube, and a cross join a timeout.
SETTINGS = {"cube_max_cells": 50, "query_timeout_seconds": 2, "sql_row_cap": 100}


@pytest.fixture(scope="module",
                params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgresql)])
def world(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory,
    postgres_available: bool,
) -> Iterator[World]:
    with database(request.param, postgres_available) as url:
        built = build_world(tmp_path_factory.mktemp("analysis") / "home", url, **SETTINGS)
        try:
            with built.deployment.transaction() as session:
                alpha, bravo = get_tenant(session, "alpha"), get_tenant(session, "bravo")
            customers_and_transactions(built.deployment, alpha)
            build(built.deployment, bravo, "customers", BRAVO_CSV, key="id",
                  personal=frozenset({"email"}))
            yield built
        finally:
            built.deployment.close()


@pytest.fixture(scope="module")
def server(world: World) -> Iterator[RunningServer]:
    with serve_in_thread(world.deployment) as running:
        yield running
        assert not [r for r in running.records if "Traceback" in r]
