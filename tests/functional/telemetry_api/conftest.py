"""The identity world (two tenants, a user of each role), per module and database."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.conftest import database
from tests.functional.identity.support import World, build_world


@pytest.fixture(
    scope="module",
    params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgresql)],
)
def world(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory,
    postgres_available: bool,
) -> Iterator[World]:
    with database(request.param, postgres_available) as url:
        built = build_world(tmp_path_factory.mktemp("telemetry") / "home", url)
        try:
            yield built
        finally:
            built.deployment.close()
