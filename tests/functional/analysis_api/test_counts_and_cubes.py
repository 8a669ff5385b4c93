"""Counts and cubes over HTTPS, checked against the same data computed in Python."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import pytest

from strongroom.identity.models import Role
from tests.functional.analysis_api.expected import (
    CUSTOMERS,
    TRANSACTIONS,
    count,
    cube_counts,
    with_transaction,
)
from tests.functional.analysis_api.helpers import As, refused
from tests.functional.identity.support import World
from tests.functional.support import RunningServer

SELECTIONS: list[tuple[dict[str, Any], Any]] = [
    ({"field": "age", "op": "gt", "value": 40}, lambda r: r["age"] > 40),
    ({"field": "region", "op": "in", "value": ["north", "east"]},
     lambda r: r["region"] in ("north", "east")),
    ({"field": "region", "op": "is_null"}, lambda r: r["region"] is None),
    ({"not": {"field": "spend", "op": "ge", "value": 60}},
     lambda r: not (r["spend"] is not None and r["spend"] >= 60)),
    ({"field": "joined", "op": "before", "value": "2024-01-01"},
     lambda r: r["joined"] < dt.date(2024, 1, 1)),
    ({"and": [{"field": "age", "op": "between", "value": [30, 50]},
              {"field": "region", "op": "starts_with", "value": "no"}]},
     lambda r: 30 <= r["age"] <= 50 and (r["region"] or "").startswith("no")),
    ({"linked": {"dataset": "transactions", "on": {"base": "id", "other": "customer_id"},
                 "where": {"field": "amount", "op": "gt", "value": 100}}},
     with_transaction(lambda t: t["amount"] > 100)),
    ({"linked": {"dataset": "transactions", "on": {"base": "id", "other": "customer_id"},
                 "min_count": 2}},
     lambda r: sum(1 for t in TRANSACTIONS if t["customer_id"] == r["id"]) >= 2),
]


@pytest.mark.parametrize(("selection", "where"), SELECTIONS,
                         ids=[json.dumps(s)[:40] for s, _ in SELECTIONS])
def test_counts_equal_an_independent_count(
    world: World, server: RunningServer, selection: dict[str, Any], where: Any
) -> None:
    viewer = As(world, server, "alpha", Role.VIEWER)
    answer = viewer.ok("POST", "/api/v1/count", {"dataset": "customers", "selection": selection})
    assert answer == {"dataset": "customers", "version": 1, "count": count(where),
                      "selection_id": None, "selection_version": None}


def test_count_of_everything_and_each_tenant_sees_its_own_data(
    world: World, server: RunningServer
) -> None:
    body = {"dataset": "customers", "selection": None}
    assert As(world, server, "alpha", Role.VIEWER).ok("POST", "/api/v1/count", body)[
        "count"] == len(CUSTOMERS)
    assert As(world, server, "bravo", Role.VIEWER).ok("POST", "/api/v1/count", body)[
        "count"] == 3
    # alpha's transactions do not exist for bravo: the same 404 as a name nobody has.
    bravo = As(world, server, "bravo", Role.ANALYST)
    theirs = bravo.post("/api/v1/count", {"dataset": "transactions"})
    nobody = bravo.post("/api/v1/count", {"dataset": "nosuchdataset"})
    assert refused(theirs, 404, "not-found") == refused(nobody, 404, "not-found")
    linked = bravo.post("/api/v1/count", {"dataset": "customers", "selection": {
        "linked": {"dataset": "transactions", "on": {"base": "id", "other": "customer_id"}}}})
    assert "selection.linked.dataset: unknown dataset" in refused(linked, 422,
                                                                  "invalid-selection")


@pytest.mark.parametrize(("selection", "place"), [
    ({"field": "shoe_size", "op": "eq", "value": 4}, 'selection.field: unknown field "shoe_size"'),
    ({"and": [{"field": "age", "op": "gt", "value": 1},
              {"field": "joined", "op": "after", "value": 20240101}]},
     'selection.and[1] (field "joined", operator "after")'),
    ({"field": "age", "op": "gt", "value": "2024-01-01"},
     'selection (field "age", operator "gt"): the field is of type integer and needs a number'),
    ({"field": "joined", "op": "lt", "value": 5},
     'selection (field "joined", operator "lt"): the field is of type date'),
])
def test_bad_selections_are_422_naming_the_place(
    world: World, server: RunningServer, selection: dict[str, Any], place: str
) -> None:
    viewer = As(world, server, "alpha", Role.VIEWER)
    detail = refused(viewer.post("/api/v1/count", {"dataset": "customers",
                                                   "selection": selection}),
                     422, "invalid-selection")
    assert place in detail


def test_requests_that_do_not_fit_the_schema_are_422(world: World, server: RunningServer) -> None:
    viewer = As(world, server, "alpha", Role.VIEWER)
    refused(viewer.post("/api/v1/count", {"selection": {"field": "age", "op": "is_null"}}),
            422, "invalid-input")
    refused(viewer.post("/api/v1/count", {"dataset": "customers", "extra": 1}), 422,
            "invalid-input")
    refused(viewer.post("/api/v1/count", {"dataset": "customers", "selection": [1]}), 422,
            "invalid-input")


def _cells(answer: dict[str, Any]) -> dict[Any, dict[str, Any]]:
    return {tuple(cell["key"]) if len(cell["key"]) > 1 else cell["key"][0]: cell["values"]
            for cell in answer["cells"]}


def test_cube_counts_equal_an_independent_count_for_analysts(
    world: World, server: RunningServer
) -> None:
    analyst = As(world, server, "alpha", Role.ANALYST)
    answer = analyst.ok("POST", "/api/v1/cubes", {
        "dataset": "customers", "dimensions": [{"field": "region"}],
        "measures": [{"fn": "count"}, {"fn": "sum", "field": "spend"},
                     {"fn": "max", "field": "joined"}]})
    assert (answer["dimensions"], answer["measures"]) == (["region"], ["count", "sum_spend",
                                                                       "max_joined"])
    assert (answer["suppressed_cells"], answer["min_cell_count"]) == (0, 1)
    cells = _cells(answer)
    assert {k: v["count"] for k, v in cells.items()} == dict(cube_counts("region"))
    north = [r for r in CUSTOMERS if r["region"] == "north"]
    assert cells["north"]["sum_spend"] == pytest.approx(sum(r["spend"] for r in north))
    assert cells["north"]["max_joined"] == max(r["joined"] for r in north).isoformat()


def test_viewers_get_small_cells_suppressed_by_the_tenant_minimum(
    world: World, server: RunningServer
) -> None:
    viewer = As(world, server, "alpha", Role.VIEWER)
    admin = As(world, server, "alpha", Role.ADMIN)
    spec = {"dataset": "customers", "dimensions": [{"field": "region"}],
            "measures": [{"fn": "mean", "field": "age"}]}
    expected = cube_counts("region")
    answer = viewer.ok("POST", "/api/v1/cubes", spec)
    assert answer["min_cell_count"] == 5
    cells = _cells(answer)
    small = {k for k, n in expected.items() if n < 5}
    assert small
    assert answer["suppressed_cells"] == len(small)
    for key, values in cells.items():
        if key in small:
            assert values == {"count": None, "mean_age": None}
        else:
            assert values["count"] == expected[key]
    try:
        policy = admin.ok("PUT", "/api/v1/policy", {"min_cell_count": 2})
        assert policy["min_cell_count"] == 2
        lower = viewer.ok("POST", "/api/v1/cubes", spec)
        assert lower["suppressed_cells"] == sum(1 for n in expected.values() if n < 2)
    finally:
        admin.ok("PUT", "/api/v1/policy", {"min_cell_count": 5})
    refused(admin.request("PUT", "/api/v1/policy", {"min_cell_count": 0}), 422, "invalid-input")


def test_cube_dimensions_bands_and_date_parts(world: World, server: RunningServer) -> None:
    analyst = As(world, server, "alpha", Role.ANALYST)
    answer = analyst.ok("POST", "/api/v1/cubes", {
        "dataset": "customers",
        "dimensions": [{"field": "age", "band": {"edges": [30, 50]}},
                       {"field": "joined", "date_part": "year"}]})
    assert answer["dimensions"] == ["age_band", "joined_year"]

    def band(age: int) -> str:
        return "< 30" if age < 30 else "30 to < 50" if age < 50 else ">= 50"

    expected: dict[tuple[str, int], int] = {}
    for row in CUSTOMERS:
        key = (band(row["age"]), row["joined"].year)
        expected[key] = expected.get(key, 0) + 1
    assert {k: v["count"] for k, v in _cells(answer).items()} == expected


def test_a_cube_with_too_many_cells_is_refused_before_it_runs(
    world: World, server: RunningServer
) -> None:
    analyst = As(world, server, "alpha", Role.ANALYST)
    detail = refused(analyst.post("/api/v1/cubes", {
        "dataset": "customers", "dimensions": [{"field": "id"}, {"field": "age"}]}),
        422, "too-many-cells")
    assert "above the limit of 50" in detail
    refused(analyst.post("/api/v1/cubes", {
        "dataset": "customers", "dimensions": [{"field": "nope"}]}), 422, "invalid-cube")


def test_counts_and_cubes_are_audited_without_values(world: World, server: RunningServer) -> None:
    after = world.last_seq()
    viewer = As(world, server, "alpha", Role.VIEWER)
    viewer.ok("POST", "/api/v1/count", {"dataset": "customers", "selection": {
        "field": "region", "op": "eq", "value": "north"}})
    viewer.ok("POST", "/api/v1/cubes", {"dataset": "customers",
                                        "dimensions": [{"field": "region"}]})
    [counted] = world.audit_events("user:analysis:count", after)
    details = json.loads(counted.details)
    assert details["version"] == 1
    assert details["count"] == count(lambda r: r["region"] == "north")
    assert isinstance(details["elapsed_ms"], int)
    assert "north" not in json.dumps(details)
    [cubed] = world.audit_events("user:analysis:cube", after)
    assert cubed.outcome == "success"
    assert (counted.target or "").startswith("dataset:")
