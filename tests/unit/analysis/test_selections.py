"""Every operator, checked against the Python evaluator over the same generated rows."""

from __future__ import annotations

import pytest
from tests.unit.analysis.helpers import python_keys, sql_keys
from tests.unit.analysis.support import N_CUSTOMERS, SCHEMA, TODAY, TRICKY, Data

from strongroom.analysis import compile_selection
from strongroom.analysis.selections import count_query

# Each selects some customers but not all, so a compiler that ignored it would fail.
SELECTIONS = [
    {"field": "age", "op": "eq", "value": 40},
    {"field": "age", "op": "ne", "value": 40},
    {"field": "age", "op": "lt", "value": 30},
    {"field": "age", "op": "le", "value": 30},
    {"field": "age", "op": "gt", "value": 60},
    {"field": "age", "op": "ge", "value": 60},
    {"field": "age", "op": "gt", "value": 59.5},
    {"field": "spend", "op": "lt", "value": 0},
    {"field": "spend", "op": "ge", "value": 2500},
    {"field": "age", "op": "in", "value": [18, 21, 65]},
    {"field": "age", "op": "not_in", "value": [18, 21, 65]},
    {"field": "region", "op": "in", "value": ["north", "east"]},
    {"field": "region", "op": "not_in", "value": ["north"]},
    {"field": "age", "op": "between", "value": [30, 40]},
    {"field": "spend", "op": "between", "value": [100.5, 900]},
    {"field": "name", "op": "between", "value": ["cust0100", "cust0200"]},
    {"field": "age", "op": "is_null"},
    {"field": "age", "op": "not_null"},
    {"field": "active", "op": "is_null"},
    {"field": "active", "op": "eq", "value": True},
    {"field": "active", "op": "ne", "value": True},
    {"field": "active", "op": "in", "value": [False]},
    {"field": "region", "op": "eq", "value": "south"},
    {"field": "region", "op": "ne", "value": "south"},
    {"field": "name", "op": "lt", "value": "cust1000"},
    {"field": "name", "op": "contains", "value": "01"},
    {"field": "name", "op": "starts_with", "value": "cust00"},
    {"field": "joined", "op": "before", "value": "2020-01-01"},
    {"field": "joined", "op": "after", "value": "2023-06-30"},
    {"field": "joined", "op": "on", "value": "2023-06-30"},
    {"field": "joined", "op": "eq", "value": "2023-06-30"},
    {"field": "joined", "op": "ge", "value": "2023-06-30"},
    {"field": "joined", "op": "in", "value": ["2023-06-30", "2022-01-01", "2021-02-28"]},
    {"field": "joined", "op": "between", "value": ["2021-01-01", "2021-12-31"]},
    {"field": "joined", "op": "within_last", "value": {"days": 90}},
    {"field": "joined", "op": "within_last", "value": {"months": 13}},
    {"field": "joined", "op": "within_last", "value": {"years": 2}},
    {"field": "last_seen", "op": "before", "value": "2023-12-01"},
    {"field": "last_seen", "op": "after", "value": "2024-03-01"},
    {"field": "last_seen", "op": "on", "value": "2024-03-01"},
    {"field": "last_seen", "op": "within_last", "value": {"days": 30}},
    {"field": "last_seen", "op": "within_last", "value": {"months": 1}},
    {"field": "last_seen", "op": "lt", "value": "2024-01-15T12:30"},
    {"field": "last_seen", "op": "ge", "value": "2024-01-15"},
    {"field": "last_seen", "op": "between", "value": ["2024-01-01", "2024-02-01T06:00:00"]},
    {"not": {"field": "age", "op": "gt", "value": 40}},
    {"not": {"field": "region", "op": "ne", "value": "west"}},
    {"not": {"not": {"field": "age", "op": "gt", "value": 40}}},
    {
        "or": [
            {"field": "age", "op": "lt", "value": 20},
            {
                "and": [
                    {"field": "region", "op": "eq", "value": "west"},
                    {"field": "active", "op": "eq", "value": True},
                ]
            },
        ]
    },
    {
        "not": {
            "or": [
                {"field": "age", "op": "lt", "value": 50},
                {"field": "spend", "op": "gt", "value": 1000},
            ]
        }
    },
]


@pytest.mark.parametrize("selection", SELECTIONS, ids=lambda s: str(s)[:60])
def test_operator_matches_python(data: Data, selection: dict[str, object]) -> None:
    expected = python_keys(data, selection)
    assert 0 < len(expected) < N_CUSTOMERS  # the case discriminates
    assert sql_keys(data, selection) == expected


def test_not_selects_the_complement_including_missing_values(data: Data) -> None:
    test = {"field": "age", "op": "gt", "value": 40}
    inside = set(sql_keys(data, test))
    outside = set(sql_keys(data, {"not": test}))
    missing = set(sql_keys(data, {"field": "age", "op": "is_null"}))
    assert missing  # the data holds missing ages
    assert inside.isdisjoint(outside)
    assert len(inside) + len(outside) == N_CUSTOMERS
    assert missing <= outside


def test_within_last_months_clamps_to_the_end_of_a_shorter_month(data: Data) -> None:
    compiled = compile_selection(
        {"field": "joined", "op": "within_last", "value": {"months": 1}},
        SCHEMA,
        "customers",
        today=TODAY,
    )
    assert str(TODAY) == "2024-03-31"
    assert [str(p) for p in compiled.params] == ["2024-02-29", "2024-03-31"]


@pytest.mark.parametrize("value", [*TRICKY, "%", "_", "\\", "'", '"', "%'--", "\\%"])
@pytest.mark.parametrize("op", ["eq", "contains", "starts_with", "in", "lt"])
def test_hostile_text_is_data(data: Data, op: str, value: str) -> None:
    selection = {"field": "name", "op": op, "value": [value] if op == "in" else value}
    assert sql_keys(data, selection) == python_keys(data, selection)
    compiled = compile_selection(selection, SCHEMA, "customers", today=TODAY)
    benign = {**selection, "value": ["x"] if op == "in" else "x"}
    # The SQL text is the same as for a harmless value: the value travels only as a parameter.
    assert (
        compiled.where_sql == compile_selection(benign, SCHEMA, "customers", today=TODAY).where_sql
    )
    assert value in compiled.params
    assert data.con.execute('SELECT count(*) FROM "ds_customers"').fetchone() == (N_CUSTOMERS,)


@pytest.mark.parametrize(
    ("op", "value", "minimum"),
    [("contains", "%", 1), ("contains", "_", 1), ("starts_with", "'", 1), ("contains", "\\", 1)],
)
def test_like_wildcards_match_only_themselves(
    data: Data, op: str, value: str, minimum: int
) -> None:
    keys = sql_keys(data, {"field": "name", "op": op, "value": value})
    names = {r["customer_id"]: r["name"] for r in data.rows["customers"]}
    assert len(keys) >= minimum
    assert len(keys) < N_CUSTOMERS // 5  # a wildcard reading would match nearly everyone
    assert all(value in str(names[k]) for k in keys)


def test_count_query_counts_the_selection(data: Data) -> None:
    selection = {"field": "region", "op": "eq", "value": "north"}
    sql, params = count_query(
        compile_selection(selection, SCHEMA, "customers", today=TODAY), "customers"
    )
    assert data.con.execute(sql, params).fetchone() == (len(python_keys(data, selection)),)


def test_nesting_twenty_deep_and_two_hundred_conditions_are_allowed(data: Data) -> None:
    deep: dict[str, object] = {"field": "age", "op": "gt", "value": 40}
    for _ in range(19):
        deep = {"not": deep}
    wide = {"or": [{"field": "age", "op": "eq", "value": age} for age in range(200)]}
    assert sql_keys(data, deep) == python_keys(data, deep)
    assert sql_keys(data, wide) == python_keys(data, wide)
