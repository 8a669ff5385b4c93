"""Bad selections: each is an InvalidSelection (422) naming the place, never the value."""

from __future__ import annotations

import pytest
from tests.unit.analysis.support import SCHEMA, TODAY

from strongroom.analysis import InvalidSelection, compile_selection, table_name
from strongroom.errors import InvalidInput

SECRET = "Jane-Doe-1970"


def _error(selection: object, base: str = "customers") -> str:
    with pytest.raises(InvalidSelection) as caught:
        compile_selection(selection, SCHEMA, base, today=TODAY)
    assert isinstance(caught.value, InvalidInput)
    assert caught.value.status == 422
    assert SECRET not in caught.value.detail
    return caught.value.detail


def _deep(levels: int) -> dict[str, object]:
    node: dict[str, object] = {"field": "age", "op": "gt", "value": 1}
    for _ in range(levels - 1):
        node = {"and": [node]}
    return node


@pytest.mark.parametrize(
    ("selection", "expected"),
    [
        ({"field": "shoe_size", "op": "eq", "value": 1}, 'unknown field "shoe_size"'),
        ({"field": SECRET, "op": "eq", "value": 1}, "unknown field (name not shown)"),
        ({"field": "joined", "op": "gt", "value": 40}, "type date and needs an ISO date"),
        ({"field": "joined", "op": "before", "value": 2020}, "not a number"),
        ({"field": "joined", "op": "on", "value": "31/12/2020"}, "dates are written YYYY-MM-DD"),
        ({"field": "joined", "op": "on", "value": "2023-02-30"}, "does not exist"),
        ({"field": "last_seen", "op": "lt", "value": "2024-01-01T00:00+01:00"}, "timestamps"),
        ({"field": "age", "op": "gt", "value": SECRET}, "type integer and needs a number"),
        ({"field": "age", "op": "gt", "value": True}, "not a boolean"),
        ({"field": "age", "op": "contains", "value": "4"}, 'operator "contains"'),
        (
            {"field": "age", "op": "before", "value": "2020-01-01"},
            "does not apply to a field of type integer",
        ),
        (
            {"field": "active", "op": "lt", "value": True},
            "does not apply to a field of type boolean",
        ),
        ({"field": "name", "op": "eq", "value": 5}, "needs a string, not a number"),
        ({"field": "name", "op": "like", "value": "x"}, 'unknown operator "like"'),
        ({"field": "name", "op": None}, "unknown operator"),
        ({"field": "age", "op": "eq"}, "needs a value"),
        ({"field": "age", "op": "eq", "value": None}, "use is_null"),
        ({"field": "age", "op": "is_null", "value": 1}, "takes no value"),
        ({"field": "age", "op": "in", "value": 5}, "must be a list, not a number"),
        ({"field": "age", "op": "in", "value": []}, "1 to 1000 values"),
        ({"field": "age", "op": "in", "value": list(range(1001))}, "1 to 1000 values"),
        ({"field": "age", "op": "in", "value": [1, SECRET]}, "needs a number"),
        ({"field": "age", "op": "between", "value": [1]}, "list of 2 items"),
        ({"field": "age", "op": "between", "value": [50, 10]}, "low end is above"),
        ({"field": "age", "op": "gt", "value": 2**70}, "64-bit"),
        ({"field": "age", "op": "gt", "value": float("nan")}, "finite"),
        ({"field": "joined", "op": "within_last", "value": 90}, '"days", "months" or "years"'),
        ({"field": "joined", "op": "within_last", "value": {"weeks": 2}}, "period unit"),
        ({"field": "joined", "op": "within_last", "value": {"days": -1}}, "must be 0 to"),
        ({"field": "joined", "op": "within_last", "value": {"days": 1.5}}, "whole number"),
        ({"field": "age", "op": "gt", "value": 1, "extra": 1}, 'unexpected key "extra"'),
        ({"field": "age", "and": []}, "exactly one of"),
        ({}, "exactly one of"),
        ([], "must be an object, not a list"),
        ({"and": []}, "non-empty list"),
        ({"or": {"field": "age"}}, "non-empty list"),
        (_deep(21), "at most 20 levels"),
        ({"or": [{"field": "age", "op": "eq", "value": i} for i in range(201)]}, "at most 200"),
        ({"linked": {"dataset": "orders"}}, 'unknown dataset "orders"'),
        ({"linked": {"dataset": "transactions", "on": {"base": "age"}}}, '"base" and "other"'),
        (
            {"linked": {"dataset": "transactions", "on": {"base": "name", "other": "amount"}}},
            "cannot link a text column with a float column",
        ),
        ({"linked": {"dataset": "transactions", "min_count": 0}}, "min_count: must be 1"),
        ({"linked": {"dataset": "transactions", "min_count": "2"}}, "whole number"),
        (
            {"linked": {"dataset": "transactions", "where": {"field": "age", "op": "is_null"}}},
            'selection.linked.where.field: unknown field "age"',
        ),
    ],
    ids=lambda x: str(x)[:50],
)
def test_bad_selection_is_rejected_precisely(selection: object, expected: str) -> None:
    assert expected in _error(selection)


def test_error_names_the_place_field_and_operator() -> None:
    detail = _error(
        {
            "and": [
                {"field": "age", "op": "gt", "value": 1},
                {"field": "joined", "op": "gt", "value": 3},
            ]
        }
    )
    assert detail.startswith('selection.and[1] (field "joined", operator "gt")')


def test_unknown_base_dataset() -> None:
    assert 'unknown dataset "orders"' in _error({"field": "age", "op": "is_null"}, base="orders")


def test_oversized_text_value_is_refused() -> None:
    assert "4096 characters" in _error({"field": "name", "op": "eq", "value": "x" * 5000})


def test_too_many_values_in_total_are_refused() -> None:
    lists = [{"field": "age", "op": "in", "value": list(range(1000))} for _ in range(11)]
    assert "more than 10000 values" in _error({"or": lists})


@pytest.mark.parametrize("name", ["Customers", "1st", "a-b", "x" * 64, "", 'a"b'])
def test_table_names_accept_only_plain_dataset_names(name: str) -> None:
    with pytest.raises(InvalidInput, match="dataset names are"):
        table_name(name)


def test_table_name_prefixes_the_dataset() -> None:
    assert table_name("customers") == "ds_customers"
