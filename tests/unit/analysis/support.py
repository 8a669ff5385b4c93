"""Generated customers and transactions, held both in DuckDB and as Python rows.

The same rows go into an in-memory DuckDB and into plain Python lists, so every
test can check compiled SQL against an independent computation in Python.
"""

from __future__ import annotations

import datetime as dt
import random
from dataclasses import dataclass

import duckdb

from strongroom.analysis import DatasetSchema, Schema

TODAY = dt.date(2024, 3, 31)
N_CUSTOMERS = 2000
N_TRANSACTIONS = 6000

# Names that look like SQL or LIKE patterns must be matched as plain text.
TRICKY = ["O'Brien", "50% off", "under_score", "back\\slash", 'say "hi"', "'; DROP TABLE x; --"]
REGIONS = ["north", "south", "east", "west"]
KINDS = ["card", "cash", "transfer"]

SCHEMA = Schema(
    {
        "customers": DatasetSchema(
            {
                "customer_id": "integer",
                "age": "integer",
                "spend": "float",
                "name": "text",
                "region": "text",
                "joined": "date",
                "last_seen": "timestamp",
                "active": "boolean",
            },
            key="customer_id",
        ),
        "transactions": DatasetSchema(
            {
                "txn_id": "integer",
                "customer_id": "integer",
                "amount": "float",
                "at": "timestamp",
                "kind": "text",
            },
            key="txn_id",
        ),
    }
)

Row = dict[str, object]


def _maybe(rng: random.Random, value: object, p_null: float = 0.05) -> object:
    return None if rng.random() < p_null else value


def _customers(rng: random.Random) -> list[Row]:
    rows = []
    for cid in range(1, N_CUSTOMERS + 1):
        joined = TODAY - dt.timedelta(days=rng.randint(0, 3000))
        seen = dt.datetime.combine(TODAY, dt.time()) - dt.timedelta(
            seconds=rng.randint(-86_399, 400 * 86_400)
        )
        name = rng.choice(TRICKY) if rng.random() < 0.1 else f"cust{cid:04d}"
        rows.append(
            {
                "customer_id": cid,
                "age": _maybe(rng, rng.randint(16, 95)),
                "spend": _maybe(rng, round(rng.uniform(-50, 5000), 2)),
                "name": _maybe(rng, name),
                "region": _maybe(rng, rng.choice(REGIONS)),
                "joined": _maybe(rng, joined),
                "last_seen": _maybe(rng, seen),
                "active": _maybe(rng, rng.random() < 0.6),
            }
        )
    return rows


def _transactions(rng: random.Random) -> list[Row]:
    rows = []
    for tid in range(1, N_TRANSACTIONS + 1):
        # Skewed so some customers have many transactions, some none; a few orphans.
        cid = rng.randint(1, 30) if rng.random() < 0.2 else rng.randint(1, N_CUSTOMERS + 50)
        at = dt.datetime.combine(TODAY, dt.time()) - dt.timedelta(
            seconds=rng.randint(0, 800 * 86_400)
        )
        rows.append(
            {
                "txn_id": tid,
                "customer_id": _maybe(rng, cid, 0.02),
                "amount": _maybe(rng, round(rng.uniform(1, 500), 2), 0.02),
                "at": _maybe(rng, at, 0.02),
                "kind": _maybe(rng, rng.choice(KINDS), 0.02),
            }
        )
    return rows


_SQL_TYPES = {
    "integer": "BIGINT",
    "float": "DOUBLE",
    "text": "VARCHAR",
    "date": "DATE",
    "timestamp": "TIMESTAMP",
    "boolean": "BOOLEAN",
}


@dataclass(frozen=True)
class Data:
    """The generated rows by dataset, and a connection holding the same rows."""

    rows: dict[str, list[Row]]
    con: duckdb.DuckDBPyConnection


def _load(con: duckdb.DuckDBPyConnection, dataset: str, rows: list[Row]) -> None:
    columns = SCHEMA.datasets[dataset].columns
    ddl = ", ".join(f'"{name}" {_SQL_TYPES[kind]}' for name, kind in columns.items())
    con.execute(f'CREATE TABLE "ds_{dataset}" ({ddl})')
    marks = ", ".join("?" * len(columns))
    con.executemany(
        f'INSERT INTO "ds_{dataset}" VALUES ({marks})',  # noqa: S608
        [[row[name] for name in columns] for row in rows],
    )


def generated_data() -> Data:
    """Generate the rows (always the same ones) and load them into a fresh DuckDB."""
    rng = random.Random(20240331)  # noqa: S311 (reproducible test data, not secrets)
    rows = {"customers": _customers(rng), "transactions": _transactions(rng)}
    con = duckdb.connect(":memory:")
    for dataset, dataset_rows in rows.items():
        _load(con, dataset, dataset_rows)
    return Data(rows, con)
