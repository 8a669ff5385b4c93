"""Saved selections over HTTPS: named and versioned per tenant, checked when saved."""

from __future__ import annotations

import json
import uuid

from strongroom.analysis.models import SavedSelectionVersion
from strongroom.identity.models import Role
from tests.functional.analysis_api.expected import count
from tests.functional.analysis_api.helpers import As, refused
from tests.functional.identity.support import World
from tests.functional.support import RunningServer

OVER_40 = {"field": "age", "op": "gt", "value": 40}
OVER_60 = {"field": "age", "op": "gt", "value": 60}


def test_a_saved_selection_keeps_every_version_and_counts_with_the_latest(
    world: World, server: RunningServer
) -> None:
    analyst = As(world, server, "alpha", Role.ANALYST)
    viewer = As(world, server, "alpha", Role.VIEWER)
    name = f"over-40-{uuid.uuid4().hex[:6]}"
    made = analyst.ok("POST", "/api/v1/selections",
                      {"name": name, "dataset": "customers", "selection": OVER_40}, status=201)
    assert (made["name"], made["dataset"], made["version"], made["latest_version"]) == (
        name, "customers", 1, 1)
    assert made["selection"] == OVER_40
    selection_id = made["id"]

    counted = viewer.ok("POST", "/api/v1/count", {"selection_id": selection_id})
    assert counted["count"] == count(lambda r: r["age"] > 40)
    assert (counted["selection_id"], counted["selection_version"]) == (selection_id, 1)

    updated = analyst.ok("PUT", f"/api/v1/selections/{selection_id}", {"selection": OVER_60})
    assert (updated["version"], updated["latest_version"], updated["selection"]) == (
        2, 2, OVER_60)
    assert viewer.ok("POST", "/api/v1/count", {"selection_id": selection_id})["count"] == count(
        lambda r: r["age"] > 60)
    old = viewer.ok("GET", f"/api/v1/selections/{selection_id}", version=1)
    assert (old["version"], old["latest_version"], old["selection"]) == (1, 2, OVER_40)
    refused(viewer.request("GET", f"/api/v1/selections/{selection_id}", version=3), 404,
            "selection-not-found")
    listed = viewer.ok("GET", "/api/v1/selections")
    assert [s["version"] for s in listed if s["id"] == selection_id] == [2]

    cube = analyst.ok("POST", "/api/v1/cubes", {"selection_id": selection_id,
                                                "dimensions": [{"field": "region"}]})
    assert sum(c["values"]["count"] for c in cube["cells"]) == count(lambda r: r["age"] > 60)
    preview = analyst.ok("POST", "/api/v1/preview", {"selection_id": selection_id})
    assert len(preview["rows"]) == count(lambda r: r["age"] > 60)

    refused(analyst.post("/api/v1/selections", {"name": name, "dataset": "customers",
                                                "selection": OVER_60}), 409, "selection-exists")
    analyst.ok("DELETE", f"/api/v1/selections/{selection_id}", status=204)
    refused(viewer.request("GET", f"/api/v1/selections/{selection_id}"), 404,
            "selection-not-found")
    refused(viewer.post("/api/v1/count", {"selection_id": selection_id}), 404,
            "selection-not-found")


def test_selections_are_checked_against_the_current_schema_when_saved(
    world: World, server: RunningServer
) -> None:
    analyst = As(world, server, "alpha", Role.ANALYST)
    detail = refused(analyst.post("/api/v1/selections", {
        "name": "bad", "dataset": "customers",
        "selection": {"or": [OVER_40, {"field": "joined", "op": "gt", "value": 3}]}}),
        422, "invalid-selection")
    assert 'selection.or[1] (field "joined", operator "gt")' in detail
    refused(analyst.post("/api/v1/selections", {"name": "bad", "dataset": "nosuch",
                                                "selection": OVER_40}), 404, "not-found")
    # Personal fields: refused for a role that could not use the selection anyway.
    refused(analyst.post("/api/v1/selections", {
        "name": "by-email", "dataset": "customers",
        "selection": {"field": "email", "op": "contains", "value": "ann"}}), 403,
        "personal-data")
    made = As(world, server, "alpha", Role.ANALYST).ok("POST", "/api/v1/selections", {
        "name": f"ok-{uuid.uuid4().hex[:6]}", "dataset": "customers", "selection": OVER_40},
        status=201)
    refused(analyst.request("PUT", f"/api/v1/selections/{made['id']}",
                            {"selection": {"field": "nope", "op": "is_null"}}),
            422, "invalid-selection")
    assert analyst.ok("GET", f"/api/v1/selections/{made['id']}")["latest_version"] == 1


def test_another_tenants_selection_is_not_found(world: World, server: RunningServer) -> None:
    bravo = As(world, server, "bravo", Role.ADMIN)
    theirs = bravo.ok("POST", "/api/v1/selections", {
        "name": f"west-{uuid.uuid4().hex[:6]}", "dataset": "customers",
        "selection": {"field": "region", "op": "eq", "value": "west"}}, status=201)
    alpha = As(world, server, "alpha", Role.ADMIN)
    absent = uuid.uuid4().hex
    for method, path, body in (
        ("POST", "/api/v1/count", {"selection_id": "{id}"}),
        ("POST", "/api/v1/cubes", {"selection_id": "{id}", "dimensions": [{"field": "id"}]}),
        ("POST", "/api/v1/preview", {"selection_id": "{id}"}),
        ("GET", "/api/v1/selections/{id}", None),
        ("PUT", "/api/v1/selections/{id}", {"selection": OVER_40}),
        ("DELETE", "/api/v1/selections/{id}", None),
    ):
        answers = []
        for selection_id in (theirs["id"], absent):
            filled = None if body is None else {
                k: (selection_id if v == "{id}" else v) for k, v in body.items()}
            answers.append(refused(alpha.request(method, path.format(id=selection_id), filled),
                                   404, "selection-not-found"))
        assert answers[0] == answers[1]
    assert bravo.ok("GET", f"/api/v1/selections/{theirs['id']}")["latest_version"] == 1
    assert theirs["id"] not in {s["id"] for s in alpha.ok("GET", "/api/v1/selections")}


def test_saved_selections_are_sealed_at_rest(world: World, server: RunningServer) -> None:
    marker = f"needle-{uuid.uuid4().hex}"
    made = As(world, server, "alpha", Role.ANALYST).ok("POST", "/api/v1/selections", {
        "name": f"sealed-{uuid.uuid4().hex[:6]}", "dataset": "customers",
        "selection": {"field": "region", "op": "eq", "value": marker}}, status=201)
    with world.deployment.transaction() as session:
        row = session.get(SavedSelectionVersion, (made["id"], 1))
        assert row is not None
        assert marker.encode() not in row.selection_sealed
    for event in world.audit_events("user:selection:create"):
        assert marker not in event.details


def test_viewers_read_but_do_not_write_selections(world: World, server: RunningServer) -> None:
    viewer = As(world, server, "alpha", Role.VIEWER)
    assert isinstance(viewer.ok("GET", "/api/v1/selections"), list)
    refused(viewer.post("/api/v1/selections", {"name": "v", "dataset": "customers",
                                               "selection": OVER_40}), 403, "permission-denied")


def test_values_on_personal_columns_are_masked_for_roles_that_may_not_see_them(
    world: World, server: RunningServer
) -> None:
    """An admin may save a selection on e-mail; a viewer or analyst reading it sees that a
    value is tested, not the value (the saved selection is personal data too)."""
    secret = f"ann-{uuid.uuid4().hex[:8]}@example.org"
    selection = {"and": [{"field": "email", "op": "eq", "value": secret},
                         {"field": "age", "op": "gt", "value": 40}]}
    made = As(world, server, "alpha", Role.ADMIN).ok("POST", "/api/v1/selections", {
        "name": f"masked-{uuid.uuid4().hex[:6]}", "dataset": "customers",
        "selection": selection}, status=201)
    assert made["selection"] == selection  # the admin sees what they saved
    for role in (Role.VIEWER, Role.ANALYST):
        user = As(world, server, "alpha", role)
        shown = user.ok("GET", f"/api/v1/selections/{made['id']}")
        listed = {s["id"]: s for s in user.ok("GET", "/api/v1/selections")}[made["id"]]
        for answer in (shown, listed):
            assert secret not in json.dumps(answer)
            assert answer["selection"]["and"][0]["value"] == "•••"
            assert answer["selection"]["and"][1]["value"] == 40  # not personal: shown
