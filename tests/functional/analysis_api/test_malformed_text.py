"""Input that once reached a 500: a malformed selection saved by a role without personal
access, and JSON text escaping a lone surrogate (no Unicode at all)."""

from __future__ import annotations

import json

import pytest

from strongroom.identity.models import Role
from tests.functional.analysis_api.helpers import As, refused
from tests.functional.identity.support import World, bearer
from tests.functional.support import RunningServer


@pytest.mark.parametrize("selection", [{"and": 5}, {"or": True}, {"not": []}, [1, 2]])
def test_a_malformed_selection_is_refused_when_saved(
    world: World, server: RunningServer, selection: object
) -> None:
    analyst = As(world, server, "alpha", Role.ANALYST)
    response = analyst.post("/api/v1/selections", {"name": "broken", "dataset": "customers",
                                                   "selection": selection})
    assert response.status_code == 422, response.text
    assert response.headers["content-type"].startswith("application/problem+json")


@pytest.mark.parametrize(("path", "body"), [
    ("/api/v1/sql", {"sql": "SELECT '\ud800'"}),
    ("/api/v1/count", {"dataset": "customers",
                       "selection": {"field": "region", "op": "eq", "value": "\ud800"}}),
    ("/api/v1/selections", {"name": "s\udfff", "dataset": "customers", "selection": None}),
    ("/api/v1/datasets", {"name": "x\ud800"}),
])
def test_text_with_a_lone_surrogate_is_a_422_everywhere(
    world: World, server: RunningServer, path: str, body: dict[str, object]
) -> None:
    admin = As(world, server, "alpha", Role.ADMIN)
    # json.dumps escapes the surrogate as \\ud800, as a hostile client would send it.
    with server.client() as client:
        response = client.post(server.url(path), content=json.dumps(body),
                               headers={**bearer(admin.account), "content-type":
                                        "application/json"})
    detail = refused(response, 422, "invalid-input")
    assert "surrogate" in detail or "unicode string" in detail
