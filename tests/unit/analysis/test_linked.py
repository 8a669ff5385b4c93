"""Linked conditions: base rows with at least min_count matching rows in another dataset."""

from __future__ import annotations

import pytest
from tests.unit.analysis.helpers import python_keys, sql_keys
from tests.unit.analysis.support import N_CUSTOMERS, Data

BIG = {"field": "amount", "op": "gt", "value": 100}
RECENT = {"field": "at", "op": "within_last", "value": {"years": 1}}
ON = {"base": "customer_id", "other": "customer_id"}


def _join_keys(data: Data, min_count: int, amount_over: float) -> list[object]:
    """The same question asked as a plain hand-written join, for a second opinion."""
    rows = data.con.execute(
        """
        SELECT c.customer_id FROM ds_customers c JOIN ds_transactions t
          ON t.customer_id = c.customer_id
        WHERE t.amount > ? GROUP BY c.customer_id HAVING count(*) >= ? ORDER BY 1
        """,
        [amount_over, min_count],
    ).fetchall()
    return [r[0] for r in rows]


@pytest.mark.parametrize("min_count", [1, 2, 3, 5])
def test_linked_equals_a_python_join_count(data: Data, min_count: int) -> None:
    selection = {
        "linked": {"dataset": "transactions", "on": ON, "where": BIG, "min_count": min_count}
    }
    expected = python_keys(data, selection)
    assert 0 < len(expected) < N_CUSTOMERS
    assert sql_keys(data, selection) == expected == _join_keys(data, min_count, 100)


@pytest.mark.parametrize(
    "selection",
    [
        {"linked": {"dataset": "transactions"}},
        {"linked": {"dataset": "transactions", "min_count": 4}},
        {"not": {"linked": {"dataset": "transactions", "on": ON}}},
        {"linked": {"dataset": "transactions", "where": {"and": [BIG, RECENT]}}},
        {
            "and": [
                {"field": "region", "op": "eq", "value": "north"},
                {"linked": {"dataset": "transactions", "where": {"not": BIG}, "min_count": 2}},
            ]
        },
        {
            "or": [
                {"field": "age", "op": "lt", "value": 25},
                {
                    "linked": {
                        "dataset": "transactions",
                        "where": {"field": "kind", "op": "eq", "value": "cash"},
                    }
                },
            ]
        },
        # A link back from transactions to customers, nested inside a link.
        {
            "linked": {
                "dataset": "transactions",
                "where": {
                    "linked": {
                        "dataset": "customers",
                        "on": {"base": "customer_id", "other": "customer_id"},
                        "where": {"field": "age", "op": "gt", "value": 50},
                    }
                },
            }
        },
    ],
    ids=lambda s: str(s)[:60],
)
def test_linked_forms_match_python(data: Data, selection: dict[str, object]) -> None:
    expected = python_keys(data, selection)
    assert 0 < len(expected) < N_CUSTOMERS
    assert sql_keys(data, selection) == expected


def test_transactions_selected_by_their_customer(data: Data) -> None:
    selection = {
        "linked": {
            "dataset": "customers",
            "on": {"base": "customer_id", "other": "customer_id"},
            "where": {"field": "region", "op": "eq", "value": "west"},
        }
    }
    expected = python_keys(data, selection, "transactions")
    assert 0 < len(expected) < len(data.rows["transactions"])
    assert sql_keys(data, selection, "transactions") == expected
