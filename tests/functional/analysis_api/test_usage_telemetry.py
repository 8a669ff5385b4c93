"""Analysis routes leave usage telemetry: the feature and the answer's size, pseudonymously."""

from __future__ import annotations

import sqlalchemy as sa

from strongroom.identity.models import Role
from strongroom.telemetry.models import UsageEvent
from strongroom.telemetry.services import user_pseudonym
from tests.functional.analysis_api.helpers import As
from tests.functional.identity.support import World
from tests.functional.support import RunningServer


def _events(world: World, feature: str, user_id: str) -> list[UsageEvent]:
    dep = world.deployment
    with dep.transaction() as session:
        subject = user_pseudonym(dep.keys.telemetry_key(session), user_id)
        return list(session.scalars(sa.select(UsageEvent).where(
            UsageEvent.feature == feature, UsageEvent.subject == subject)))


def test_a_count_and_a_cube_are_recorded_as_usage_under_a_pseudonym(
    world: World, server: RunningServer
) -> None:
    viewer = As(world, server, "alpha", Role.VIEWER)
    user_id = viewer.account.user_id
    counts_before = len(_events(world, "analysis.count", user_id))
    cubes_before = len(_events(world, "analysis.cube", user_id))
    viewer.ok("POST", "/api/v1/count", {"dataset": "customers", "selection": None})
    viewer.ok("POST", "/api/v1/cubes", {"dataset": "customers",
                                        "dimensions": [{"field": "region"}],
                                        "measures": [{"fn": "count"}]})
    counts = _events(world, "analysis.count", user_id)
    cubes = _events(world, "analysis.cube", user_id)
    assert len(counts) == counts_before + 1
    assert len(cubes) == cubes_before + 1
    # Not an insider: no user id kept, only the keyed pseudonym.
    assert counts[-1].user_id is None
    assert cubes[-1].user_id is None
    assert counts[-1].rows is not None
    assert counts[-1].rows > 0


def test_a_refused_query_records_no_usage(world: World, server: RunningServer) -> None:
    analyst = As(world, server, "alpha", Role.ANALYST)
    before = len(_events(world, "analysis.sql", analyst.account.user_id))
    response = analyst.post("/api/v1/sql", {"sql": "SELECT * FROM read_csv('/etc/passwd')"})
    assert response.status_code == 422
    assert len(_events(world, "analysis.sql", analyst.account.user_id)) == before
