"""The per-tenant query cache: same answers, exact versions, separation, lockdown, budget."""

from __future__ import annotations

import dataclasses
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from tests.unit.analysis.built import customers_and_transactions
from tests.unit.datasets.test_canary import CANARY, ROWS, canary_csv, files_under, hits
from tests.unit.datasets.test_uploads import ANALYST

from strongroom.analysis.cache import MIB, QueryCache, deployment_query_cache, materialise
from strongroom.analysis.engine import (
    EncryptedTable,
    QueryFailed,
    SqlRefused,
    open_sandbox,
    run_query,
)
from strongroom.analysis.service import MASK, query_sandbox, resolve_datasets
from strongroom.config import Environment
from strongroom.crypto.errors import DecryptionFailed
from strongroom.crypto.keyring import TenantKeyRing
from strongroom.crypto.parquet import ParquetCrypto
from strongroom.datasets import catalog
from strongroom.datasets.build import CsvOptions, build_dataset
from strongroom.deployment import Deployment
from strongroom.errors import InvalidInput
from strongroom.tenancy.models import Tenant

A_ROWS, B_ROWS = 3_000, 700
QUERIES = [
    "SELECT count(*) FROM ds_customers",
    "SELECT count(*) FROM ds_customers WHERE age BETWEEN 30 AND 40 AND region = 'north'",
    ("SELECT region, count(*), sum(spend), min(age), max(age) FROM ds_customers "
     "GROUP BY region ORDER BY region NULLS FIRST"),
]
IS_CACHED = "SELECT count(*) FROM duckdb_tables() WHERE table_name = 'ds_customers'"


def customers(rows: int, marker: str) -> pa.Table:
    return pa.table({
        "id": list(range(rows)),
        "age": [18 + i % 70 for i in range(rows)],
        "region": [["north", "south", "east", None][i % 4] for i in range(rows)],
        "spend": [round(i * 1.37 % 500, 2) for i in range(rows)],
        "note": [f"{marker}-{i}" for i in range(rows)],
    })


def encrypted(directory: Path, name: str, table: pa.Table) -> EncryptedTable:
    crypto = ParquetCrypto(TenantKeyRing.generate(Environment.TEST, uuid.uuid4().hex))
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{name}.parquet"
    pq.write_table(table, path, encryption_properties=crypto.encryption_properties())
    return EncryptedTable(path, crypto)


@dataclasses.dataclass
class Tenants:
    a: dict[str, EncryptedTable]
    b: dict[str, EncryptedTable]
    a_versions: dict[str, str]
    b_versions: dict[str, str]


@pytest.fixture
def tenants(tmp_path: Path) -> Tenants:
    a = {"customers": encrypted(tmp_path / "a", "customers", customers(A_ROWS, "tenant-a"))}
    b_table = customers(B_ROWS, "tenant-b")
    b = {"customers": encrypted(tmp_path / "b", "customers", b_table),
         "orders": encrypted(tmp_path / "b", "orders", b_table.select(["id", "spend"]))}
    return Tenants(a, b, {"customers": "va1"}, {"customers": "vb1", "orders": "vb2"})


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def cache(clock: Clock) -> Iterator[QueryCache]:
    made = QueryCache(256 * MIB, 60.0, memory_limit_bytes=256 * MIB, threads=1, clock=clock)
    yield made
    made.close()


def answers(conn: duckdb.DuckDBPyConnection) -> list[list[tuple[object, ...]]]:
    return [run_query(conn, sql).rows for sql in QUERIES]


def cached(conn: duckdb.DuckDBPyConnection) -> bool:
    """Whether ``ds_customers`` is a loaded table (cache), not an arrow scan (lazy sandbox)."""
    [(tables,)] = run_query(conn, IS_CACHED).rows
    return tables == 1


# -- same answers, from memory ---------------------------------------------------------------


def test_a_miss_is_served_lazily_and_the_next_request_from_memory(
    cache: QueryCache, tenants: Tenants
) -> None:
    with cache.connection("a", tenants.a, tenants.a_versions) as conn:
        assert not cached(conn)
        lazy = answers(conn)
    cache.wait_for_loads()
    assert list(cache.cached()) == ["a"]
    with cache.connection("a", tenants.a, tenants.a_versions) as conn:
        assert cached(conn)
        assert answers(conn) == lazy
    assert lazy[0] == [(A_ROWS,)]


def test_a_synchronous_load_holds_compressed_data_within_its_measured_size(
    cache: QueryCache, tenants: Tenants
) -> None:
    assert cache.load("b", tenants.b, tenants.b_versions)
    [size] = cache.cached()["b"]
    assert 0 < size < 8 * MIB
    with cache.connection("b", tenants.b, tenants.b_versions) as conn:
        assert run_query(conn, "SELECT count(*) FROM ds_orders").rows == [(B_ROWS,)]


@pytest.mark.parametrize("masked", [{}, {"customers": frozenset({"note"})}])
def test_a_table_loaded_in_chunks_answers_like_the_lazy_sandbox(
    tenants: Tenants, masked: dict[str, frozenset[str]]
) -> None:
    conn, size = materialise(tenants.a, 256 * MIB, 64 * MIB, 1, masked, chunk_rows=1000)
    try:
        assert size > 0
        with open_sandbox(tenants.a) as lazy:
            assert answers(conn) == answers(lazy)
            [(ids,)] = run_query(conn, "SELECT list(id ORDER BY id) FROM ds_customers").rows
            assert ids == list(range(A_ROWS))
    finally:
        conn.close()


def test_concurrent_queries_on_cursors_and_one_load_for_concurrent_misses(
    cache: QueryCache, tenants: Tenants
) -> None:
    errors: list[BaseException] = []
    results: list[object] = []

    def load() -> None:
        results.append(cache.load("a", tenants.a, tenants.a_versions))

    loaders = [threading.Thread(target=load) for _ in range(4)]
    for thread in loaders:
        thread.start()
    for thread in loaders:
        thread.join()
    assert results == [True] * 4
    assert len(cache.cached()["a"]) == 1

    def query() -> None:
        try:
            for _ in range(10):
                with cache.connection("a", tenants.a, tenants.a_versions) as conn:
                    assert cached(conn)
                    results.append(run_query(conn, QUERIES[1]).rows)
        except BaseException as error:  # noqa: BLE001 - reported by the main thread
            errors.append(error)

    workers = [threading.Thread(target=query) for _ in range(6)]
    for thread in workers:
        thread.start()
    for thread in workers:
        thread.join()
    assert errors == []
    assert len({repr(r) for r in results[4:]}) == 1
    assert len(results) == 4 + 60


# -- exact versions ------------------------------------------------------------------------


def test_a_new_version_is_not_answered_from_the_old_database(
    cache: QueryCache, tenants: Tenants, tmp_path: Path
) -> None:
    assert cache.load("a", tenants.a, tenants.a_versions)
    newer = {"customers": encrypted(tmp_path / "a2", "customers", customers(10, "v2"))}
    with cache.connection("a", newer, {"customers": "va2"}) as conn:
        assert not cached(conn)
        assert run_query(conn, QUERIES[0]).rows == [(10,)]
    cache.wait_for_loads()
    # One database: the old version's was retired (the tenant replaced that data).
    assert len(cache.cached()["a"]) == 1
    with cache.connection("a", newer, {"customers": "va2"}) as conn:
        assert cached(conn)
        assert run_query(conn, QUERIES[0]).rows == [(10,)]


def test_a_dataset_left_out_of_the_resolution_is_not_visible(
    cache: QueryCache, tenants: Tenants
) -> None:
    assert cache.load("b", tenants.b, tenants.b_versions)
    only = {"customers": tenants.b["customers"]}
    assert cache.load("b", only, {"customers": "vb1"})  # e.g. after orders was deleted
    with cache.connection("b", only, {"customers": "vb1"}) as conn:
        assert cached(conn)
        with pytest.raises(QueryFailed, match="ds_orders"):
            run_query(conn, "SELECT count(*) FROM ds_orders")


def test_a_masked_database_never_holds_the_personal_column(
    cache: QueryCache, tenants: Tenants
) -> None:
    masked = {"customers": frozenset({"note"})}
    assert cache.load("a", tenants.a, tenants.a_versions, masked=masked)
    assert cache.load("a", tenants.a, tenants.a_versions)  # the unmasked one is another
    assert len(cache.cached()["a"]) == 2
    with cache.connection("a", tenants.a, tenants.a_versions, masked=masked) as conn:
        assert run_query(conn, "SELECT DISTINCT note FROM ds_customers").rows == [(MASK,)]
        assert answers(conn)[0] == [(A_ROWS,)]
        with pytest.raises(QueryFailed, match="note"):
            run_query(conn, "SELECT note FROM __public_ds_customers")
        [(found,)] = run_query(conn, "SELECT count(*) FROM duckdb_columns() "
                                     "WHERE column_name = 'note' AND NOT internal").rows
        assert found == 1  # the view's, reading the mask
    with cache.connection("a", tenants.a, tenants.a_versions) as conn:
        assert run_query(conn, "SELECT min(note) FROM ds_customers").rows == [("tenant-a-0",)]


def test_a_masked_miss_needs_a_lazy_sandbox_that_masks(
    cache: QueryCache, tenants: Tenants
) -> None:
    masked = {"customers": frozenset({"note"})}
    with pytest.raises(InvalidInput, match="masks"), cache.connection(
        "a", tenants.a, tenants.a_versions, masked=masked
    ):
        pass


def test_versions_must_name_exactly_the_tables(cache: QueryCache, tenants: Tenants) -> None:
    with pytest.raises(Exception, match="version id"):
        cache.load("b", tenants.b, {"customers": "vb1"})


# -- separation and lockdown ---------------------------------------------------------------


def test_a_tenants_cursor_cannot_reach_another_tenants_tables(
    cache: QueryCache, tenants: Tenants
) -> None:
    assert cache.load("a", tenants.a, tenants.a_versions)
    assert cache.load("b", tenants.b, tenants.b_versions)
    assert sorted(cache.cached()) == ["a", "b"]
    with cache.connection("a", tenants.a, tenants.a_versions) as conn:
        assert cached(conn)
        names = run_query(conn, "SELECT table_name FROM duckdb_tables() UNION ALL "
                                "SELECT view_name FROM duckdb_views() WHERE NOT internal").rows
        assert names == [("ds_customers",)]
        databases = run_query(conn, "SELECT database_name FROM duckdb_databases()").rows
        assert {name for (name,) in databases} <= {"memory", "system", "temp"}
        assert run_query(conn, "SELECT count(*) FROM ds_customers").rows == [(A_ROWS,)]
        assert run_query(conn, "SELECT count(*) FROM ds_customers WHERE note LIKE 'tenant-b%'"
                         ).rows == [(0,)]
        with pytest.raises(QueryFailed, match="ds_orders"):
            run_query(conn, "SELECT count(*) FROM ds_orders")
        with pytest.raises(QueryFailed, match="ds_orders"):
            run_query(conn, "SELECT count(*) FROM memory.main.ds_orders")
        other_file = str(tenants.b["customers"].path)
        with pytest.raises(SqlRefused):
            run_query(conn, f"SELECT count(*) FROM read_parquet('{other_file}')")  # noqa: S608
        with pytest.raises(SqlRefused):
            run_query(conn, "ATTACH ':memory:' AS other")


@pytest.mark.parametrize("statement", [
    "SET threads = 8",
    "SET memory_limit = '100GB'",
    "SET enable_external_access = true",
    "SET temp_directory = '/tmp/spill'",
    "SET max_temp_directory_size = '10GB'",
    "SET lock_configuration = false",
    "RESET lock_configuration",
    "SET GLOBAL threads = 8",
    "PRAGMA threads = 8",
])
def test_the_lock_refuses_set_on_a_cursor(
    cache: QueryCache, tenants: Tenants, statement: str
) -> None:
    assert cache.load("a", tenants.a, tenants.a_versions)
    with cache.connection("a", tenants.a, tenants.a_versions) as conn:
        assert cached(conn)
        # Straight through the cursor, past run_query's own single-SELECT check.
        with pytest.raises(duckdb.InvalidInputException, match="locked"):
            conn.execute(statement)
        [settings] = conn.execute(
            "SELECT current_setting('temp_directory'), current_setting('max_temp_directory_size'),"
            " current_setting('enable_external_access'), current_setting('threads')"
        ).fetchall()
        assert settings[0] == ""
        assert settings[1].replace(" ", "") in {"0B", "0bytes"}
        assert settings[2] is False
        assert settings[3] == 1


def test_another_tenants_crypto_cannot_load_the_file(
    cache: QueryCache, tenants: Tenants
) -> None:
    wrong = {"customers": EncryptedTable(tenants.b["customers"].path,
                                         tenants.a["customers"].crypto)}
    with pytest.raises(DecryptionFailed):
        cache.load("a", wrong, {"customers": "vb1"})
    assert cache.cached() == {}
    with pytest.raises(DecryptionFailed), cache.connection("a", wrong, {"customers": "vb1"}):
        pass  # the lazy sandbox refuses it too, and the failed load is not retried at once
    cache.wait_for_loads()
    assert cache.cached() == {}


# -- budget, idle expiry, invalidation ------------------------------------------------------


def test_least_recently_used_is_evicted_beyond_the_budget(
    clock: Clock, tenants: Tenants
) -> None:
    probe = QueryCache(256 * MIB, 60.0, memory_limit_bytes=64 * MIB, threads=1)
    probe.load("b", tenants.b, tenants.b_versions)
    probe.load("a", tenants.a, tenants.a_versions)
    sizes = {tenant: size for tenant, [size] in probe.cached().items()}
    probe.close()
    cache = QueryCache(sizes["a"] + sizes["b"] - 1, 60.0, memory_limit_bytes=64 * MIB,
                       threads=1, clock=clock)
    try:
        assert cache.load("a", tenants.a, tenants.a_versions)
        clock.now += 1
        assert cache.load("b", tenants.b, tenants.b_versions)
        assert list(cache.cached()) == ["b"]
        clock.now += 1
        assert cache.load("a", tenants.a, tenants.a_versions)
        assert list(cache.cached()) == ["a"]
    finally:
        cache.close()


def test_data_bigger_than_the_budget_is_served_lazily(tenants: Tenants) -> None:
    cache = QueryCache(1, 60.0, memory_limit_bytes=64 * MIB, threads=1)
    try:
        assert not cache.load("a", tenants.a, tenants.a_versions)
        with cache.connection("a", tenants.a, tenants.a_versions) as conn:
            assert not cached(conn)
            assert run_query(conn, QUERIES[0]).rows == [(A_ROWS,)]
        cache.wait_for_loads()
        assert cache.cached() == {}
    finally:
        cache.close()


def test_idle_databases_expire_but_not_while_in_use(
    cache: QueryCache, clock: Clock, tenants: Tenants
) -> None:
    assert cache.load("a", tenants.a, tenants.a_versions)
    assert cache.load("b", tenants.b, tenants.b_versions)
    with cache.connection("a", tenants.a, tenants.a_versions) as conn:
        clock.now += 61
        assert cache.expire_idle() == 1  # b; a has a cursor out
        assert list(cache.cached()) == ["a"]
        assert run_query(conn, QUERIES[0]).rows == [(A_ROWS,)]
    assert cache.expire_idle() == 0  # a was just used
    clock.now += 61
    assert cache.expire_idle() == 1
    assert cache.cached() == {}


def test_invalidate_closes_a_tenants_database_once_its_cursor_returns(
    cache: QueryCache, tenants: Tenants
) -> None:
    assert cache.load("a", tenants.a, tenants.a_versions)
    with cache.connection("a", tenants.a, tenants.a_versions) as conn:
        cache.invalidate("a")
        assert cache.cached() == {}
        assert run_query(conn, QUERIES[0]).rows == [(A_ROWS,)]  # still answers
    with pytest.raises(duckdb.ConnectionException):
        conn.execute("SELECT 1")


def test_invalidate_wins_over_a_load_in_flight(cache: QueryCache, tenants: Tenants) -> None:
    cache.invalidate("a")  # nothing cached yet: a no-op
    with cache.connection("a", tenants.a, tenants.a_versions) as conn:
        cache.invalidate("a")  # the miss's background load may not have finished
        assert not cached(conn)
    cache.wait_for_loads()
    assert cache.cached() == {}  # the load, queued for the invalidated slot, was dropped


def test_a_closed_cache_loads_nothing_and_answers_lazily(tenants: Tenants) -> None:
    cache = QueryCache(64 * MIB, 60.0, memory_limit_bytes=64 * MIB, threads=1)
    cache.close()
    assert not cache.load("a", tenants.a, tenants.a_versions)
    with cache.connection("a", tenants.a, tenants.a_versions) as conn:
        assert not cached(conn)
    assert cache.cached() == {}


# -- plaintext stays in memory ---------------------------------------------------------------


def test_cached_queries_leave_no_plaintext_on_disk(tmp_path: Path) -> None:
    started = time.time() - 1
    crypto = ParquetCrypto(TenantKeyRing.generate(Environment.TEST, uuid.uuid4().hex))
    out = tmp_path / "datasets" / "customers.parquet"
    out.parent.mkdir()
    data = canary_csv()
    report = build_dataset([data[i : i + 65536] for i in range(0, len(data), 65536)],
                           CsvOptions(), crypto, out)
    del data
    assert report.rows_loaded == ROWS
    tables = {"customers": EncryptedTable(out, crypto)}
    cache = QueryCache(256 * MIB, 60.0, memory_limit_bytes=256 * MIB, threads=2)
    try:
        assert cache.load("t", tables, {"customers": "v1"})
        for _ in range(2):
            with cache.connection("t", tables, {"customers": "v1"}) as conn:
                assert cached(conn)
                [(count,)] = run_query(
                    conn, "SELECT count(*) FROM ds_customers WHERE email LIKE ?", [f"{CANARY}%"]
                ).rows
                assert count == ROWS
                cube = run_query(conn, "SELECT city, count(*) FROM ds_customers GROUP BY city",
                                 row_cap=ROWS)
                assert len(cube.rows) == ROWS
                # A sort and a join big enough to want to spill, if spilling were possible.
                rows = run_query(conn, "SELECT a.email, b.city FROM ds_customers a JOIN "
                                       "ds_customers b USING (id) ORDER BY a.email DESC",
                                 row_cap=5).rows
                assert rows[0][0].startswith(CANARY)
        assert hits(files_under(tmp_path)) == []
        assert hits(files_under(Path(tempfile.gettempdir()), since=started)) == []
        assert hits(files_under(Path.cwd() / ".tmp", since=started)) == []  # DuckDB's default
    finally:
        cache.close()


# -- through the service, in a deployment -----------------------------------------------------


@pytest.fixture
def tenant(make_tenant: Callable[[str], Tenant], deployment: Deployment) -> Tenant:
    acme = make_tenant("acme")
    customers_and_transactions(deployment, acme)
    return acme


def test_query_sandbox_uses_the_deployments_cache_and_sees_a_deletion(
    deployment: Deployment, tenant: Tenant
) -> None:
    cache = deployment_query_cache(deployment)
    assert cache is not None
    assert deployment_query_cache(deployment) is cache
    with deployment.transaction() as session:
        resolved = resolve_datasets(session, deployment, tenant)
    with query_sandbox(resolved) as conn:
        lazy = run_query(conn, "SELECT count(*) FROM ds_transactions").rows
    cache.wait_for_loads()
    with query_sandbox(resolved) as conn:
        assert cached(conn)
        assert run_query(conn, "SELECT count(*) FROM ds_transactions").rows == lazy == [(7,)]
    # Masked: another database, which never held the personal column.
    for _ in range(2):
        with query_sandbox(resolved, mask_personal=True) as conn:
            emails = run_query(conn, "SELECT DISTINCT email FROM ds_customers").rows
            assert emails == [(MASK,)]
        cache.wait_for_loads()
    with query_sandbox(resolved, mask_personal=True) as conn:
        columns = run_query(conn, "SELECT table_name, column_name FROM duckdb_columns() "
                                  "WHERE NOT internal AND table_name LIKE '%customers'").rows
        assert ("__public_ds_customers", "id") in columns
        assert ("ds_customers", "email") in columns  # the view, reading the mask
        assert ("__public_ds_customers", "email") not in columns
        [(domains,)] = run_query(conn, "SELECT count(*) FROM ds_customers WHERE email LIKE "
                                       "'%example.org'").rows
        assert domains == 0
    assert len(cache.cached()[resolved.tenant_id]) == 2  # plain and masked
    with deployment.transaction() as session:
        catalog.delete_dataset(session, deployment, tenant, ANALYST,
                               resolved.versions["transactions"].dataset_id,
                               confirm_name="transactions")
    with deployment.transaction() as session:
        after = resolve_datasets(session, deployment, tenant)
    for _ in range(2):
        with query_sandbox(after) as conn, pytest.raises(QueryFailed, match="ds_transactions"):
            run_query(conn, "SELECT count(*) FROM ds_transactions")
        cache.wait_for_loads()
    deployment.close()
    assert cache.cached() == {}


def test_query_cache_mb_zero_turns_the_cache_off(deployment: Deployment) -> None:
    off = dataclasses.replace(
        deployment, settings=dataclasses.replace(deployment.settings, query_cache_mb=0)
    )
    assert deployment_query_cache(off) is None
    assert off.query_cache is None
