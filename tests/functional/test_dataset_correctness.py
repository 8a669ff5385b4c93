"""Correctness at scale: counts and cubes over our encrypted datasets equal plain DuckDB.

A deterministic 1M-row customer CSV and a linked 2M-row transactions CSV are
uploaded (encrypted as they arrive) and built through our pipeline into
encrypted Parquet, then queried through the locked sandbox with the selection
and cube compilers. The same CSVs, in clear text in the test's own temporary
directory (test inputs, not anything the product wrote), are read by a plain
DuckDB connection with ``read_csv``, and every expected answer is hand-written
SQL over them, so the compilers are checked against an independent
statement of the language's meaning, not against themselves.

Part of ``make test``: the whole module runs in well under 90 seconds.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pytest

from strongroom.analysis.cubes import compile_cube
from strongroom.analysis.engine import EncryptedTable, open_sandbox, run_query
from strongroom.analysis.selections import DatasetSchema, Schema, compile_selection, count_query
from strongroom.config import Environment, load_settings
from strongroom.crypto.parquet import ParquetCrypto
from strongroom.datasets import catalog, jobs, uploads
from strongroom.datasets.models import DatasetVersion
from strongroom.deployment import Deployment, initialise, open_deployment
from strongroom.tenancy.models import Tenant
from strongroom.tenancy.services import create_tenant
from tests.unit.datasets.test_uploads import ANALYST

CUSTOMERS = 1_000_000
TRANSACTIONS = 2_000_000
TODAY = dt.date(2025, 1, 1)
CHUNK = 16 << 20
EPOCH_2015 = 16436  # days from 1970-01-01 to 2015-01-01
EPOCH_2022 = 18993  # days to 2022-01-01
SECONDS_2024 = 1_704_067_200  # 2024-01-01 00:00:00 UTC


def _uniform(rows: int, seed: int) -> pa.Array:
    return pc.random(rows, initializer=seed)


def _below(values: pa.Array, bound: float) -> pa.Array:
    return pc.less(values, bound)


def _whole(values: pa.Array, scale: int) -> pa.Array:
    return pc.cast(pc.floor(pc.multiply(values, scale)), pa.int64())


def _nulls(values: pa.Array, mask: pa.Array) -> pa.Array:
    return pc.if_else(mask, pa.scalar(None, values.type), values)


def customers_table() -> pa.Table:
    u = [_uniform(CUSTOMERS, 100 + i) for i in range(10)]
    ids = pa.array(range(1, CUSTOMERS + 1), pa.int64())
    regions = pa.array(["north", "south", "east", "west", "centre", "coast", "hills", "isles"])
    domains = pa.array(["example.org", "example.com", "mail.test", "post.test"])
    return pa.table({
        "customer_id": ids,
        "region": _nulls(regions.take(_whole(u[0], 8)), _below(u[1], 0.02)),
        "email": pc.binary_join_element_wise(
            "user", pc.cast(ids, pa.string()), "@", domains.take(_whole(u[2], 4)), ""
        ),
        "age": _nulls(pc.add(_whole(u[3], 73), 18), _below(u[4], 0.03)),
        "spend": _nulls(pc.round(pc.multiply(pc.power(u[5], 2), 2000), 2), _below(u[6], 0.01)),
        "joined": pc.cast(pc.cast(pc.add(_whole(u[7], 3653), EPOCH_2015), pa.int32()),
                          pa.date32()),
        "last_seen": pc.cast(pc.add(_whole(u[8], 366 * 86400), SECONDS_2024), pa.timestamp("s")),
        "active": _below(u[9], 0.6),
    })


def transactions_table() -> pa.Table:
    u = [_uniform(TRANSACTIONS, 200 + i) for i in range(6)]
    channels = pa.array(["web", "store", "phone"])
    return pa.table({
        "tx_id": pa.array(range(1, TRANSACTIONS + 1), pa.int64()),
        # Uniform over the customers: about e^-2 of them (13.5%) have no transaction.
        "customer_id": pc.add(_whole(u[0], CUSTOMERS), 1),
        "amount": pc.round(pc.multiply(pc.power(u[1], 2), 500), 2),
        "tx_date": pc.cast(pc.cast(pc.add(_whole(u[2], 1096), EPOCH_2022), pa.int32()),
                           pa.date32()),
        "channel": _nulls(channels.take(_whole(u[3], 3)), _below(u[4], 0.01)),
    })


PLAIN_TYPES = {
    "customers": {"customer_id": "BIGINT", "region": "VARCHAR", "email": "VARCHAR",
                  "age": "BIGINT", "spend": "DOUBLE", "joined": "DATE",
                  "last_seen": "TIMESTAMP", "active": "BOOLEAN"},
    "transactions": {"tx_id": "BIGINT", "customer_id": "BIGINT", "amount": "DOUBLE",
                     "tx_date": "DATE", "channel": "VARCHAR"},
}
KEYS = {"customers": "customer_id", "transactions": "tx_id"}


@dataclass
class World:
    ours: duckdb.DuckDBPyConnection  # the locked sandbox over our encrypted versions
    plain: duckdb.DuckDBPyConnection  # DuckDB over the clear-text CSVs
    schema: Schema


def _upload_and_build(
    deployment: Deployment, tenant_id: str, name: str, csv: Path
) -> DatasetVersion:
    """Upload ``csv`` in chunks (encrypted as they arrive) and build it: our whole pipeline."""
    with deployment.transaction() as session:
        tenant = session.get_one(Tenant, tenant_id)
        upload_id = uploads.create_upload(
            session, deployment, tenant, ANALYST, filename=f"{name}.csv", fmt="csv",
            max_bytes=1 << 30,
        ).id
        dataset_id = catalog.create_dataset(session, deployment, tenant, ANALYST, name,
                                            key_column=KEYS[name]).id
    offset = 0
    with csv.open("rb") as source:
        while chunk := source.read(CHUNK):
            with deployment.transaction() as session:
                uploads.append_chunk(session, deployment, session.get_one(Tenant, tenant_id),
                                     ANALYST, upload_id, offset, [chunk])
            offset += len(chunk)
    with deployment.transaction() as session:
        uploads.complete_upload(session, deployment, session.get_one(Tenant, tenant_id),
                                ANALYST, upload_id)
    version = jobs.run_build(deployment, tenant_id, dataset_id, upload_id, ANALYST)
    assert version.status == "ready", version.report
    return version


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    root = tmp_path_factory.mktemp("correctness")
    paths = {"customers": root / "customers.csv", "transactions": root / "transactions.csv"}
    pacsv.write_csv(customers_table(), paths["customers"])
    pacsv.write_csv(transactions_table(), paths["transactions"])

    with pytest.MonkeyPatch.context() as env:
        for name in [n for n in os.environ if n.startswith("STRONGROOM_")]:
            env.delenv(name)
        initialise(root / "home", Environment.DEVELOPMENT, "")
        deployment = open_deployment(load_settings(root / "home"))
    try:
        with deployment.transaction() as session:
            tenant_id = create_tenant(session, deployment.keys, "acme").id
        customers = _upload_and_build(deployment, tenant_id, "customers", paths["customers"])
        transactions = _upload_and_build(deployment, tenant_id, "transactions",
                                         paths["transactions"])
        with deployment.transaction() as session:
            crypto = ParquetCrypto(deployment.keys.tenant_ring(session, tenant_id))
        tables, datasets = {}, {}
        for name, version in (("customers", customers), ("transactions", transactions)):
            assert version.row_count == (CUSTOMERS if name == "customers" else TRANSACTIONS)
            ref = catalog.version_blob(version)
            assert ref is not None
            tables[name] = EncryptedTable(deployment.store.verified_path(ref), crypto)
            columns = {c["name"]: c["type"] for c in json.loads(version.schema_json or "[]")}
            datasets[name] = DatasetSchema(columns, KEYS[name])
        # The build inferred exactly the types plain DuckDB is told.
        assert {n: list(d.columns.values()) for n, d in datasets.items()} == {
            "customers": ["integer", "text", "text", "integer", "float", "date", "timestamp",
                          "boolean"],
            "transactions": ["integer", "integer", "float", "date", "text"],
        }
        ours = open_sandbox(tables, memory_limit="2GB", materialise=True)
        plain = duckdb.connect(":memory:")
        for name, path in paths.items():
            plain.execute(
                f"CREATE TABLE {name[0]} AS SELECT * FROM read_csv(?, header = true, "  # noqa: S608
                f"columns = {PLAIN_TYPES[name]!r})",
                [str(path)],
            )
        yield World(ours, plain, Schema(datasets))
        ours.close()
        plain.close()
    finally:
        deployment.close()


def days_ago(days: int) -> str:
    return (TODAY - dt.timedelta(days=days)).isoformat()


# (selection, base dataset, the same question in plain SQL over c = customers, t = transactions)
SELECTIONS: dict[str, tuple[dict[str, Any], str, str]] = {
    "gt": ({"field": "age", "op": "gt", "value": 40}, "customers", "age > 40"),
    "eq-text": ({"field": "region", "op": "eq", "value": "north"}, "customers",
                "region = 'north'"),
    "in": ({"field": "region", "op": "in", "value": ["north", "isles"]}, "customers",
           "region IN ('north', 'isles')"),
    "not-in": ({"field": "region", "op": "not_in", "value": ["north"]}, "customers",
               "region <> 'north'"),  # a missing region is in no list, and not outside it
    "is-null": ({"field": "age", "op": "is_null"}, "customers", "age IS NULL"),
    "between-float": ({"field": "spend", "op": "between", "value": [100, 500.5]}, "customers",
                      "spend >= 100 AND spend <= 500.5"),
    "contains": ({"field": "email", "op": "contains", "value": "77@"}, "customers",
                 "email LIKE '%77@%'"),
    "starts-with": ({"field": "email", "op": "starts_with", "value": "user12"}, "customers",
                    "email LIKE 'user12%'"),
    "last-365-days": ({"field": "joined", "op": "within_last", "value": {"days": 365}},
                      "customers", (f"joined >= DATE '{days_ago(365)}' AND joined <= DATE "
                      f"'{TODAY}'")),
    "last-6-months": ({"field": "joined", "op": "within_last", "value": {"months": 6}},
                      "customers", "joined >= DATE '2024-07-01' AND joined <= DATE '2025-01-01'"),
    "timestamp-before": ({"field": "last_seen", "op": "before", "value": "2024-03-01"},
                         "customers", "last_seen < TIMESTAMP '2024-03-01 00:00:00'"),
    "timestamp-on": ({"field": "last_seen", "op": "on", "value": "2024-06-15"}, "customers",
                     ("last_seen >= TIMESTAMP '2024-06-15' AND last_seen < TIMESTAMP "
                     "'2024-06-16'")),
    "date-ge": ({"field": "joined", "op": "ge", "value": "2020-02-29"}, "customers",
                "joined >= DATE '2020-02-29'"),
    "boolean": ({"field": "active", "op": "eq", "value": True}, "customers", "active"),
    "and-or-not": (
        {"and": [{"field": "age", "op": "ge", "value": 30},
                 {"or": [{"field": "region", "op": "eq", "value": "east"},
                         {"not": {"field": "active", "op": "eq", "value": True}}]}]},
        "customers", "age >= 30 AND (region = 'east' OR NOT active)",
    ),
    "not-keeps-nulls": ({"not": {"field": "age", "op": "gt", "value": 60}}, "customers",
                        "age <= 60 OR age IS NULL"),
    "linked": (
        {"linked": {"dataset": "transactions",
                    "on": {"base": "customer_id", "other": "customer_id"},
                    "where": {"and": [{"field": "amount", "op": "gt", "value": 100},
                                      {"field": "tx_date", "op": "within_last",
                                       "value": {"years": 1}}]}}},
        "customers",
        ("customer_id IN (SELECT customer_id FROM t WHERE amount > 100 "
        "AND tx_date BETWEEN DATE '2024-01-01' AND DATE '2025-01-01')"),
    ),
    "linked-min-count": (
        {"and": [{"field": "region", "op": "eq", "value": "west"},
                 {"linked": {"dataset": "transactions",
                             "on": {"base": "customer_id", "other": "customer_id"},
                             "where": {"field": "channel", "op": "eq", "value": "web"},
                             "min_count": 2}}]},
        "customers",
        ("region = 'west' AND customer_id IN (SELECT customer_id FROM t WHERE channel = 'web' "
        "GROUP BY customer_id HAVING count(*) >= 2)"),
    ),
    "no-transaction": (
        {"not": {"linked": {"dataset": "transactions",
                            "on": {"base": "customer_id", "other": "customer_id"}}}},
        "customers", "customer_id NOT IN (SELECT customer_id FROM t)",
    ),
    "transactions": (
        {"or": [{"field": "channel", "op": "is_null"},
                {"and": [{"field": "channel", "op": "ne", "value": "store"},
                         {"field": "amount", "op": "lt", "value": 2.5}]}]},
        "transactions", "channel IS NULL OR (channel <> 'store' AND amount < 2.5)",
    ),
}


@pytest.mark.parametrize("name", list(SELECTIONS))
def test_counts_equal_plain_duckdb(world: World, name: str) -> None:
    selection, base, plain_where = SELECTIONS[name]
    compiled = compile_selection(selection, world.schema, base, today=TODAY)
    sql, params = count_query(compiled, base)
    ours = run_query(world.ours, sql, params).rows[0][0]
    table = base[0]
    (expected,) = world.plain.execute(
        f"SELECT count(*) FROM {table} WHERE {plain_where}"  # noqa: S608 - the test's own SQL
    ).fetchone() or (None,)
    assert ours == expected
    total = CUSTOMERS if base == "customers" else TRANSACTIONS
    assert 0 < ours < total  # every selection is a real test: neither nothing nor everything


# (cube spec, plain SQL: the dimensions, then count(*), then the measures, grouped by the dims)
CUBES: dict[str, tuple[dict[str, Any], str]] = {
    "region-by-active": (
        {"dataset": "customers",
         "dimensions": [{"field": "region"}, {"field": "active"}],
         "measures": [{"fn": "count"}, {"fn": "sum", "field": "spend"},
                      {"fn": "mean", "field": "spend"}]},
        "SELECT region, active, count(*), count(*), sum(spend), avg(spend) FROM c GROUP BY 1, 2",
    ),
    "age-width-bands": (
        {"dataset": "customers", "dimensions": [{"field": "age", "band": {"width": 10}}],
         "measures": [{"fn": "min", "field": "joined"}, {"fn": "max", "field": "last_seen"},
                      {"fn": "max", "field": "email"}]},
        ("SELECT floor(age / 10)::BIGINT * 10, count(*), min(joined), max(last_seen), "
        "max(email) FROM c GROUP BY 1"),
    ),
    "age-edge-bands-selected": (
        {"dataset": "customers",
         "selection": {"field": "joined", "op": "within_last", "value": {"years": 3}},
         "dimensions": [{"field": "age", "band": {"edges": [18, 30, 50, 65]}},
                        {"field": "region"}],
         "measures": [{"fn": "mean", "field": "age"}, {"fn": "min", "field": "spend"}]},
        ("SELECT CASE WHEN age IS NULL THEN NULL ELSE (age >= 18)::INT + (age >= 30)::INT "
        "+ (age >= 50)::INT + (age >= 65)::INT END, region, count(*), avg(age), min(spend) "
        "FROM c WHERE joined BETWEEN DATE '2022-01-01' AND DATE '2025-01-01' GROUP BY 1, 2"),
    ),
    "joined-year-by-region": (
        {"dataset": "customers",
         "selection": {"field": "email", "op": "contains", "value": "mail.test"},
         "dimensions": [{"field": "joined", "date_part": "year"}, {"field": "region"}],
         "measures": [{"fn": "max", "field": "spend"}, {"fn": "sum", "field": "age"}]},
        ("SELECT year(joined), region, count(*), max(spend), sum(age) FROM c "
        "WHERE email LIKE '%mail.test%' GROUP BY 1, 2"),
    ),
    "transactions-month-weekday-channel": (
        {"dataset": "transactions",
         "dimensions": [{"field": "tx_date", "date_part": "month"},
                        {"field": "tx_date", "date_part": "weekday"},
                        {"field": "channel"}],
         "measures": [{"fn": "sum", "field": "amount"}, {"fn": "mean", "field": "amount"}]},
        ("SELECT month(tx_date), isodow(tx_date), channel, count(*), sum(amount), avg(amount) "
        "FROM t GROUP BY 1, 2, 3"),
    ),
}


def _same(ours: object, expected: object) -> bool:
    if isinstance(ours, float) or isinstance(expected, float):
        if ours is None or expected is None:
            return ours is expected
        # Sums and means add floats in another order: equal to 1e-9 relative.
        return math.isclose(float(ours), float(expected), rel_tol=1e-9)  # type: ignore[arg-type]
    return ours == expected


@pytest.mark.parametrize("name", list(CUBES))
def test_cube_cells_equal_plain_duckdb(world: World, name: str) -> None:
    spec, plain_sql = CUBES[name]
    cube = compile_cube(spec, world.schema, today=TODAY)
    result = run_query(world.ours, cube.sql, cube.params, row_cap=100_000)
    assert not result.truncated
    dims = len(cube.dimensions)
    ours = {cell.dimensions: (cell.count, *cell.measures) for cell in cube.cells(result.rows)}
    expected = {tuple(row[:dims]): tuple(row[dims:])
                for row in world.plain.execute(plain_sql).fetchall()}
    assert len(ours) > 1
    assert ours.keys() == expected.keys()
    mismatched = [key for key, values in expected.items()
                  if not all(_same(a, b) for a, b in zip(ours[key], values, strict=True))]
    assert mismatched == [], [(ours[k], expected[k]) for k in mismatched[:2]]


def test_a_selection_and_its_negation_cover_the_dataset(world: World) -> None:
    """Partition check: a selection's count plus its negation's is every row."""
    selection: dict[str, Any] = {"field": "spend", "op": "gt", "value": 250}
    counts = []
    for node in (selection, {"not": selection}):
        sql, params = count_query(
            compile_selection(node, world.schema, "customers", today=TODAY), "customers"
        )
        counts.append(run_query(world.ours, sql, params).rows[0][0])
    assert sum(counts) == CUSTOMERS

