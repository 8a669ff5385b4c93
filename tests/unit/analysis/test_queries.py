"""Queries over a resolved sandbox: personal-field checks, JSON values, cube shaping."""

from __future__ import annotations

import datetime as dt
import decimal
import uuid
from collections.abc import Callable

import pytest
from tests.unit.analysis.built import customers_and_transactions

from strongroom.analysis import queries
from strongroom.analysis.errors import PersonalDataRefused, TooManyCells
from strongroom.analysis.personal import check_cube, check_selection
from strongroom.analysis.service import MASK, resolve_datasets
from strongroom.deployment import Deployment
from strongroom.tenancy.models import Tenant

TODAY = dt.date(2024, 10, 1)
PERSONAL = {"customers": frozenset({"email"}), "transactions": frozenset({"card"})}
VIEWER = queries.Asker(personal=False, min_cell_count=5)
ANALYST = queries.Asker(personal=False, min_cell_count=None)
ADMIN = queries.Asker(personal=True, min_cell_count=None)


def test_jsonable_values() -> None:
    assert queries.jsonable([
        1, 2.5, float("nan"), decimal.Decimal("12.50"), dt.date(2024, 2, 29),
        dt.datetime(2024, 2, 29, 13, 45),  # noqa: DTZ001 (DuckDB TIMESTAMP is naive)
        dt.time(7, 30), dt.timedelta(minutes=2), b"\x00\x01",
        uuid.UUID(int=1), {"a": (1, None)}, True, "x",
    ]) == [1, 2.5, None, 12.5, "2024-02-29", "2024-02-29T13:45:00", "07:30:00", 120.0,
           "AAE=", "00000000-0000-0000-0000-000000000001", {"a": [1, None]}, True, "x"]


def test_referenced_datasets_walks_nested_linked_conditions() -> None:
    selection = {"and": [
        {"field": "age", "op": "gt", "value": 1},
        {"not": {"linked": {"dataset": "transactions", "where": {
            "linked": {"dataset": "cards"}}}}},
    ]}
    assert queries.referenced_datasets(selection) == {"transactions", "cards"}
    deep: object = {"linked": {"dataset": "too_deep"}}
    for _ in range(200):
        deep = {"not": deep}
    assert queries.referenced_datasets(deep) == set()  # the compiler refuses it anyway


KEYS = {"customers": "id", "transactions": "tid"}


@pytest.mark.parametrize(("selection", "place"), [
    ({"field": "email", "op": "is_null"}, 'selection (field "email")'),
    ({"or": [{"field": "age", "op": "gt", "value": 1},
             {"not": {"field": "email", "op": "contains", "value": "x"}}]},
     'selection.or[1].not (field "email")'),
    ({"linked": {"dataset": "transactions", "where": {"field": "card", "op": "is_null"}}},
     'selection.linked.where (field "card")'),
    # A join on a personal column answers "which of these values are here" for the other side.
    ({"linked": {"dataset": "guesses", "on": {"base": "email", "other": "guess"}}},
     'selection.linked.on.base (field "email")'),
    ({"linked": {"dataset": "transactions", "on": {"base": "id", "other": "card"}}},
     'selection.linked.on.other (field "card")'),
])
def test_selections_on_personal_fields_are_refused_naming_the_place(
    selection: dict[str, object], place: str
) -> None:
    with pytest.raises(PersonalDataRefused) as refused:
        check_selection(selection, "customers", PERSONAL, KEYS)
    assert refused.value.detail.startswith(place)
    check_selection(selection, "customers", {}, KEYS)


def test_a_join_on_a_personal_key_by_default_is_refused_too() -> None:
    linked = {"linked": {"dataset": "transactions"}}
    check_selection(linked, "customers", PERSONAL, KEYS)
    with pytest.raises(PersonalDataRefused, match=r"linked\.on\.base"):
        check_selection(linked, "customers", {"customers": frozenset({"id"})}, KEYS)


def test_other_datasets_fields_of_the_same_name_are_not_personal() -> None:
    # "card" is personal in transactions, not in customers.
    check_selection({"field": "card", "op": "is_null"}, "customers", PERSONAL, KEYS)


def test_cubes_over_personal_fields_are_refused() -> None:
    for spec in (
        {"dataset": "customers", "dimensions": [{"field": "email"}]},
        {"dataset": "customers", "dimensions": [{"field": "age"}],
         "measures": [{"fn": "max", "field": "email"}]},
        {"dataset": "customers", "dimensions": [{"field": "age"}],
         "selection": {"field": "email", "op": "is_null"}},
    ):
        with pytest.raises(PersonalDataRefused):
            check_cube(spec, PERSONAL, KEYS)
    check_cube({"dataset": "customers", "dimensions": [{"field": "age"}]}, PERSONAL, KEYS)


@pytest.fixture
def tenant(make_tenant: Callable[[str], Tenant], deployment: Deployment) -> Tenant:
    acme = make_tenant("acme")
    customers_and_transactions(deployment, acme)
    return acme


def test_queries_end_to_end_over_built_datasets(deployment: Deployment, tenant: Tenant) -> None:
    with deployment.transaction() as session:
        resolved = resolve_datasets(session, deployment, tenant)
    over_40 = {"field": "age", "op": "gt", "value": 40}
    assert queries.count(resolved, "customers", over_40, VIEWER, today=TODAY,
                         timeout=10).count == 5
    assert queries.count(resolved, "customers", None, VIEWER, today=TODAY, timeout=10).count == 10

    spec = {"dataset": "customers", "dimensions": [{"field": "region"}],
            "measures": [{"fn": "sum", "field": "spend"}]}
    viewer = queries.cube(resolved, spec, VIEWER, today=TODAY, max_cells=100, timeout=10)
    analyst = queries.cube(resolved, spec, ANALYST, today=TODAY, max_cells=100, timeout=10)
    counts = {cell["key"][0]: cell["values"]["count"] for cell in analyst.cells}
    assert counts == {"north": 5, "south": 3, "east": 1, None: 1}
    assert (viewer.suppressed_cells, viewer.min_cell_count) == (3, 5)
    assert {c["key"][0]: c["values"] for c in viewer.cells}["south"] == {
        "count": None, "sum_spend": None}
    assert (analyst.suppressed_cells, analyst.min_cell_count, analyst.estimated_cells) == (
        0, 1, 4)
    with pytest.raises(TooManyCells):
        queries.cube(resolved, spec, ANALYST, today=TODAY, max_cells=3, timeout=10)

    masked = queries.preview(resolved, "customers", over_40, 2, ANALYST, today=TODAY,
                             timeout=10)
    assert (masked.masked, [r[1] for r in masked.rows]) == (["email"], [MASK, MASK])
    shown = queries.preview(resolved, "customers", over_40, 2, ADMIN, today=TODAY, timeout=10)
    assert [r[1] for r in shown.rows] == ["bob@example.org", "dan@example.org"]

    sql = "SELECT email, joined FROM ds_customers ORDER BY id LIMIT 1"
    assert queries.sql_query(resolved, sql, 10, ANALYST, timeout=10).rows == [
        (MASK, "2024-01-15")]
    assert queries.sql_query(resolved, sql, 10, ADMIN, timeout=10).rows == [
        ("ann@example.org", "2024-01-15")]
