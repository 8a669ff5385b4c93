"""The test data, parsed and queried in plain Python: the independent side of each check."""

from __future__ import annotations

import csv
import datetime as dt
import io
from collections import Counter
from collections.abc import Callable
from typing import Any

from tests.unit.analysis.built import CUSTOMERS_CSV, TRANSACTIONS_CSV

BRAVO_CSV = (
    "id,email,region\n"
    "1,zed@bravo.example,west\n"
    "2,yan@bravo.example,west\n"
    "3,xia@bravo.example,west\n"
)

Row = dict[str, Any]


def _rows(text: str, types: dict[str, Callable[[str], Any]]) -> list[Row]:
    out = []
    for raw in csv.DictReader(io.StringIO(text)):
        out.append({k: (types[k](v) if v != "" and k in types else v or None)
                    for k, v in raw.items()})
    return out


CUSTOMERS = _rows(CUSTOMERS_CSV, {"id": int, "age": int, "spend": float,
                                  "joined": dt.date.fromisoformat})
TRANSACTIONS = _rows(TRANSACTIONS_CSV, {"tid": int, "customer_id": int, "amount": float,
                                        "day": dt.date.fromisoformat})


def count(where: Callable[[Row], bool]) -> int:
    return sum(1 for row in CUSTOMERS if where(row))


def with_transaction(where: Callable[[Row], bool]) -> Callable[[Row], bool]:
    def test(customer: Row) -> bool:
        return any(t["customer_id"] == customer["id"] and where(t) for t in TRANSACTIONS)
    return test


def cube_counts(field: str) -> Counter[Any]:
    return Counter(row[field] for row in CUSTOMERS)
