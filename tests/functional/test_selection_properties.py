"""Property test: any selection, counted over our encrypted build, equals a Python oracle.

Hypothesis draws selection trees (comparisons, lists, ranges, null tests, text
operators, absolute and relative dates, and/or/not nesting, linked conditions
with a minimum count) over a small generated customer set with a linked
transactions set. The oracle evaluates the same tree row by row in plain
Python, from the language's documented meaning: a test on a missing value is
false, except ``is_null``; ``not`` is the exact complement.
"""

from __future__ import annotations

import datetime as dt
import io
import random
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.csv as pacsv
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from strongroom.analysis.engine import EncryptedTable, open_sandbox, run_query
from strongroom.analysis.selections import DatasetSchema, Schema, compile_selection, count_query
from strongroom.config import Environment
from strongroom.crypto.keyring import TenantKeyRing
from strongroom.crypto.parquet import ParquetCrypto
from strongroom.datasets.build import CsvOptions, build_dataset

TODAY = dt.date(2025, 1, 1)
REGIONS = ["north", "south", "east", "west", "isles"]
CHANNELS = ["web", "store", "phone"]
Row = dict[str, Any]


def customers(rng: random.Random, count: int) -> list[Row]:
    rows = []
    for i in range(1, count + 1):
        rows.append({
            "customer_id": i,
            "region": None if rng.random() < 0.05 else rng.choice(REGIONS),
            "email": f"user{i}@{rng.choice(['a.org', 'b.com'])}",
            "age": None if rng.random() < 0.05 else rng.randint(18, 90),
            "spend": None if rng.random() < 0.05 else round(rng.random() * 1000, 2),
            "joined": dt.date(2020, 1, 1) + dt.timedelta(days=rng.randrange(1827)),
            "active": rng.random() < 0.6,
        })
    return rows


def transactions(rng: random.Random, count: int, customer_count: int) -> list[Row]:
    return [{
        "tx_id": i,
        "customer_id": rng.randint(1, customer_count),
        "amount": round(rng.random() * 300, 2),
        "tx_date": dt.date(2023, 1, 1) + dt.timedelta(days=rng.randrange(731)),
        "channel": None if rng.random() < 0.05 else rng.choice(CHANNELS),
    } for i in range(1, count + 1)]


@dataclass
class Data:
    conn: duckdb.DuckDBPyConnection
    schema: Schema
    customers: list[Row]
    by_customer: dict[int, list[Row]]


def _build(rows: list[Row], crypto: ParquetCrypto, out: Path) -> dict[str, str]:
    sink = io.BytesIO()
    pacsv.write_csv(pa.Table.from_pylist(rows), sink)
    data = sink.getvalue()
    report = build_dataset([data[i : i + 65536] for i in range(0, len(data), 65536)],
                           CsvOptions(), crypto, out)
    return {column.name: column.type.value for column in report.columns}


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Data]:
    rng = random.Random(20261126)  # noqa: S311 - test data, not secrets
    people = customers(rng, 1500)
    sales = transactions(rng, 4000, len(people))
    root = tmp_path_factory.mktemp("properties")
    crypto = ParquetCrypto(TenantKeyRing.generate(Environment.TEST, uuid.uuid4().hex))
    paths = {"customers": root / "customers.parquet", "transactions": root / "tx.parquet"}
    schema = Schema({
        "customers": DatasetSchema(_build(people, crypto, paths["customers"]), "customer_id"),
        "transactions": DatasetSchema(_build(sales, crypto, paths["transactions"]), "tx_id"),
    })
    conn = open_sandbox({name: EncryptedTable(path, crypto) for name, path in paths.items()},
                        materialise=True)
    by_customer: dict[int, list[Row]] = {}
    for sale in sales:
        by_customer.setdefault(sale["customer_id"], []).append(sale)
    yield Data(conn, schema, people, by_customer)
    conn.close()


# -- the oracle ---------------------------------------------------------------------------------

Test = Callable[[Any, Any], bool]
_TESTS: dict[str, Test] = {
    "eq": lambda v, x: v == x, "ne": lambda v, x: v != x,
    "lt": lambda v, x: v < x, "le": lambda v, x: v <= x,
    "gt": lambda v, x: v > x, "ge": lambda v, x: v >= x,
    "in": lambda v, x: v in x, "not_in": lambda v, x: v not in x,
    "between": lambda v, x: x[0] <= v <= x[1],
    "contains": lambda v, x: x in v, "starts_with": lambda v, x: v.startswith(x),
    "before": lambda v, x: v < dt.date.fromisoformat(x),
    "after": lambda v, x: v > dt.date.fromisoformat(x),
    "on": lambda v, x: v == dt.date.fromisoformat(x),
    "within_last": lambda v, x: TODAY - dt.timedelta(days=x["days"]) <= v <= TODAY,
}  # fmt: skip


def holds(node: dict[str, Any], row: Row, data: Data) -> bool:
    if "and" in node:
        return all(holds(child, row, data) for child in node["and"])
    if "or" in node:
        return any(holds(child, row, data) for child in node["or"])
    if "not" in node:
        return not holds(node["not"], row, data)
    if "linked" in node:
        link = node["linked"]
        where = link.get("where")
        matching = [sale for sale in data.by_customer.get(row["customer_id"], [])
                    if where is None or holds(where, sale, data)]
        return len(matching) >= link.get("min_count", 1)
    value = row[node["field"]]
    if node["op"] == "is_null":
        return value is None
    if node["op"] == "not_null":
        return value is not None
    if value is None:
        return False
    given = node["value"]
    if isinstance(value, dt.date) and node["op"] not in ("before", "after", "on", "within_last"):
        # Dates travel in JSON as ISO strings.
        given = ([dt.date.fromisoformat(item) for item in given] if isinstance(given, list)
                 else dt.date.fromisoformat(given))
    return _TESTS[node["op"]](value, given)


# -- the strategies -----------------------------------------------------------------------------

def _leaf(field: str, ops: list[str], values: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    def make(op: str, value: Any) -> dict[str, Any]:
        if op in ("is_null", "not_null"):
            return {"field": field, "op": op}
        if op in ("in", "not_in"):
            return {"field": field, "op": op, "value": value[:3] or value}
        if op == "between":
            return {"field": field, "op": op, "value": sorted(value[:2])}
        return {"field": field, "op": op, "value": value[0]}

    return st.builds(make, st.sampled_from(ops), st.lists(values, min_size=2, max_size=4))


_DATES = st.dates(dt.date(2019, 6, 1), dt.date(2025, 6, 1)).map(dt.date.isoformat)
_ORDER = ["eq", "ne", "lt", "le", "gt", "ge", "in", "not_in", "between", "is_null", "not_null"]
CUSTOMER_LEAVES = st.one_of(
    _leaf("age", _ORDER, st.integers(10, 95)),
    _leaf("spend", _ORDER, st.floats(0, 1000, allow_nan=False).map(lambda f: round(f, 2))),
    _leaf("region", ["eq", "ne", "in", "not_in", "is_null", "not_null", "contains",
                     "starts_with", "lt", "ge"],
          st.sampled_from([*REGIONS, "no", "s", "th", "zzz"])),
    _leaf("email", ["contains", "starts_with"],
          st.sampled_from(["user1", "user12", "@a.org", "3@", "b.com", "x"])),
    _leaf("joined", ["before", "after", "on", "eq", "lt", "ge", "between"], _DATES),
    st.builds(lambda days: {"field": "joined", "op": "within_last", "value": {"days": days}},
              st.integers(0, 2000)),
    _leaf("active", ["eq", "ne", "is_null"], st.booleans()),
)
TX_LEAVES = st.one_of(
    _leaf("amount", ["gt", "lt", "between"], st.floats(0, 300, allow_nan=False)
          .map(lambda f: round(f, 2))),
    _leaf("channel", ["eq", "in", "is_null", "not_null"], st.sampled_from(CHANNELS)),
    st.builds(lambda days: {"field": "tx_date", "op": "within_last", "value": {"days": days}},
              st.integers(0, 800)),
)


def _tree(leaves: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return st.recursive(leaves, lambda inner: st.one_of(
        st.builds(lambda xs: {"and": xs}, st.lists(inner, min_size=1, max_size=3)),
        st.builds(lambda xs: {"or": xs}, st.lists(inner, min_size=1, max_size=3)),
        st.builds(lambda x: {"not": x}, inner),
    ), max_leaves=6)


LINKED = st.builds(
    lambda where, min_count: {"linked": {"dataset": "transactions",
                                         "on": {"base": "customer_id", "other": "customer_id"},
                                         **({"where": where} if where else {}),
                                         "min_count": min_count}},
    st.none() | _tree(TX_LEAVES), st.integers(1, 4),
)
SELECTIONS = _tree(st.one_of(CUSTOMER_LEAVES, CUSTOMER_LEAVES, LINKED))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(selection=SELECTIONS)
def test_any_selection_counts_what_the_oracle_counts(data: Data, selection: Any) -> None:
    compiled = compile_selection(selection, data.schema, "customers", today=TODAY)
    sql, params = count_query(compiled, "customers")
    ours = run_query(data.conn, sql, params).rows[0][0]
    expected = sum(1 for row in data.customers if holds(selection, row, data))
    assert ours == expected
