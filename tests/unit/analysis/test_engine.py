"""The query sandbox: both refusal layers, limits, and counts equal to plaintext DuckDB."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from strongroom.analysis.engine import (
    EncryptedTable,
    QueryFailed,
    QueryTimedOut,
    SqlRefused,
    check_read_only_sql,
    open_sandbox,
    run_query,
)
from strongroom.config import Environment
from strongroom.crypto.errors import DecryptionFailed
from strongroom.crypto.keyring import TenantKeyRing
from strongroom.crypto.parquet import ParquetCrypto
from strongroom.errors import InvalidInput

ROWS = 5_000


def customers() -> pa.Table:
    return pa.table(
        {
            "id": list(range(ROWS)),
            "age": [18 + i % 70 for i in range(ROWS)],
            "region": [["north", "south", "east", "west", None][i % 5] for i in range(ROWS)],
            "spend": [round(i * 1.37 % 500, 2) for i in range(ROWS)],
        }
    )


@pytest.fixture
def ring() -> TenantKeyRing:
    return TenantKeyRing.generate(Environment.TEST, uuid.uuid4().hex)


@pytest.fixture
def tables(ring: TenantKeyRing, tmp_path: Path) -> dict[str, EncryptedTable]:
    crypto = ParquetCrypto(ring)
    path = tmp_path / "tenant-a" / "customers.parquet"
    path.parent.mkdir()
    pq.write_table(customers(), path, encryption_properties=crypto.encryption_properties())
    return {"customers": EncryptedTable(path, crypto)}


@pytest.fixture(params=[False, True], ids=["lazy", "materialised"])
def sandbox(
    request: pytest.FixtureRequest, tables: dict[str, EncryptedTable]
) -> Iterator[duckdb.DuckDBPyConnection]:
    conn = open_sandbox(tables, memory_limit="256MB", threads=1, materialise=request.param)
    yield conn
    conn.close()


@pytest.fixture
def plain(tmp_path: Path) -> Iterator[duckdb.DuckDBPyConnection]:
    path = tmp_path / "plain.parquet"
    pq.write_table(customers(), path)
    conn = duckdb.connect(":memory:")
    conn.execute(f"CREATE VIEW ds_customers AS SELECT * FROM read_parquet('{path}')")  # noqa: S608 - our tmp path
    yield conn
    conn.close()


# -- layer 1: a single SELECT, by DuckDB's own parser ----------------------------------------

REFUSED_BY_PARSER = {
    "attach": "ATTACH '/tmp/other.duckdb' AS other",
    "copy-to": "COPY (SELECT 1) TO '/tmp/out.csv'",
    "install": "INSTALL httpfs",
    "load": "LOAD httpfs",
    "set": "SET threads = 64",
    "reset": "RESET lock_configuration",
    "pragma": "PRAGMA database_list",
    "create": "CREATE TABLE t AS SELECT 1",
    "insert": "INSERT INTO ds_customers VALUES (1, 2, 'x', 3)",
    "drop": "DROP VIEW ds_customers",
    "second-statement": "SELECT 1; SELECT 2",
    "select-then-attach": "SELECT 1; ATTACH 'x.db'",
    "export": "EXPORT DATABASE '/tmp/dump'",
    "call": "CALL pragma_version()",
    "empty": "",
    "not-sql": "SELEC 1",
}


@pytest.mark.parametrize("sql", REFUSED_BY_PARSER.values(), ids=REFUSED_BY_PARSER.keys())
def test_check_refuses_everything_but_one_select(sql: str) -> None:
    with pytest.raises(SqlRefused) as caught:
        check_read_only_sql(sql)
    assert isinstance(caught.value, InvalidInput)
    assert caught.value.status == 422


def test_check_names_what_was_refused() -> None:
    with pytest.raises(SqlRefused, match="ATTACH"):
        check_read_only_sql("ATTACH 'x.db'")
    with pytest.raises(SqlRefused, match="found 2"):
        check_read_only_sql("SELECT 1; SELECT 2")


@pytest.mark.parametrize(
    "sql",
    [
        "SELECT count(*) FROM ds_customers",
        "WITH a AS (SELECT 1 AS x) SELECT x FROM a",
        "SELECT 1 UNION ALL SELECT 2;",
        "  select region, count(*) from ds_customers group by region  ",
    ],
)
def test_check_admits_one_select(sql: str) -> None:
    assert check_read_only_sql(sql) == sql


@pytest.mark.parametrize("sql", REFUSED_BY_PARSER.values(), ids=REFUSED_BY_PARSER.keys())
def test_run_query_applies_the_check(sandbox: duckdb.DuckDBPyConnection, sql: str) -> None:
    with pytest.raises(SqlRefused):
        run_query(sandbox, sql)


# -- layer 2: the locked configuration, even for SQL that reaches DuckDB directly ------------

SELECTS_THAT_TOUCH_FILES = {
    "read-csv": "SELECT * FROM read_csv('/etc/passwd')",
    "read-text": "SELECT * FROM read_text('/etc/passwd')",
    "glob": "SELECT * FROM glob('/etc/*')",
}


@pytest.mark.parametrize(
    "sql", SELECTS_THAT_TOUCH_FILES.values(), ids=SELECTS_THAT_TOUCH_FILES.keys()
)
def test_selects_that_read_files_are_refused(sandbox: duckdb.DuckDBPyConnection, sql: str) -> None:
    assert check_read_only_sql(sql) == sql  # layer 1 lets a SELECT through ...
    with pytest.raises(SqlRefused, match="no access to files"):
        run_query(sandbox, sql)  # ... and layer 2 refuses it


def test_another_tenants_file_is_unreachable(
    sandbox: duckdb.DuckDBPyConnection, tmp_path: Path
) -> None:
    other = TenantKeyRing.generate(Environment.TEST, uuid.uuid4().hex)
    path = tmp_path / "tenant-b" / "customers.parquet"
    path.parent.mkdir()
    pq.write_table(
        customers(), path, encryption_properties=ParquetCrypto(other).encryption_properties()
    )
    with pytest.raises(SqlRefused, match="no access to files"):
        run_query(sandbox, f"SELECT count(*) FROM read_parquet('{path}')")  # noqa: S608
    plain = tmp_path / "plain.parquet"
    pq.write_table(customers(), plain)
    with pytest.raises(SqlRefused, match="no access to files"):
        run_query(sandbox, f"SELECT count(*) FROM '{plain}'")  # noqa: S608


@pytest.mark.parametrize(
    "statement",
    [
        "ATTACH '{dir}/escape.duckdb' AS escape",
        "COPY (SELECT * FROM ds_customers) TO '{dir}/escape.csv'",
        "INSTALL httpfs",
        "LOAD httpfs",
    ],
    ids=["attach", "copy-to", "install", "load"],
)
def test_locked_configuration_refuses_file_access(
    sandbox: duckdb.DuckDBPyConnection, statement: str, tmp_path: Path
) -> None:
    # Straight to DuckDB, around check_read_only_sql: the second layer alone.
    with pytest.raises(duckdb.PermissionException):
        sandbox.execute(statement.format(dir=tmp_path))
    assert not (tmp_path / "escape.csv").exists()
    assert not (tmp_path / "escape.duckdb").exists()


@pytest.mark.parametrize(
    "statement",
    [
        "SET enable_external_access = true",
        "SET lock_configuration = false",
        "RESET lock_configuration",
        "SET memory_limit = '100GB'",
        "SET threads = 64",
        "SET temp_directory = '/tmp/spill'",
        "SET max_temp_directory_size = '10GB'",
        "SET autoload_known_extensions = true",
    ],
)
def test_locked_configuration_cannot_be_changed(
    sandbox: duckdb.DuckDBPyConnection, statement: str
) -> None:
    with pytest.raises(duckdb.InvalidInputException, match="locked"):
        sandbox.execute(statement)


def test_sandbox_settings(sandbox: duckdb.DuckDBPyConnection) -> None:
    settings = dict(
        sandbox.execute(
            "SELECT name, value FROM duckdb_settings() WHERE name IN ('temp_directory', "
            "'max_temp_directory_size', 'enable_external_access', 'lock_configuration', "
            "'threads', 'autoload_known_extensions', 'autoinstall_known_extensions')"
        ).fetchall()
    )
    assert settings == {
        "temp_directory": "",
        "max_temp_directory_size": "0 bytes",
        "enable_external_access": "false",
        "lock_configuration": "true",
        "threads": "1",
        "autoload_known_extensions": "false",
        "autoinstall_known_extensions": "false",
    }
    [(limit,)] = sandbox.execute("SELECT current_setting('memory_limit')").fetchall()
    assert limit.replace(" ", "") in {"256.0MiB", "244.1MiB", "256MB"}


def test_only_the_given_tables_are_visible(sandbox: duckdb.DuckDBPyConnection) -> None:
    names = run_query(
        sandbox,
        "SELECT table_name FROM duckdb_tables() UNION ALL "
        "SELECT view_name FROM duckdb_views() WHERE NOT internal",
    )
    assert {row[0] for row in names.rows} <= {"ds_customers"}
    assert run_query(sandbox, "SELECT count(*) FROM ds_customers").rows == [(ROWS,)]


def test_another_tenants_crypto_cannot_open_the_file(tables: dict[str, EncryptedTable]) -> None:
    other = ParquetCrypto(TenantKeyRing.generate(Environment.TEST, uuid.uuid4().hex))
    wrong = {"customers": EncryptedTable(tables["customers"].path, other)}
    # Both modes read the encrypted footer on open, and the wrong tenant key fails there.
    with pytest.raises(DecryptionFailed):
        open_sandbox(wrong)
    with pytest.raises(DecryptionFailed):
        open_sandbox(wrong, materialise=True)


def test_bad_dataset_name_is_refused(tables: dict[str, EncryptedTable]) -> None:
    with pytest.raises(InvalidInput, match="dataset names"):
        open_sandbox({"x; DROP": tables["customers"]})


# -- results equal plaintext DuckDB --------------------------------------------------------

QUERIES = [
    "SELECT count(*) FROM ds_customers",
    "SELECT count(*) FROM ds_customers WHERE age BETWEEN 30 AND 40 AND region = 'north'",
    "SELECT count(*) FROM ds_customers WHERE region IS NULL OR spend > 250",
    (
        "SELECT region, count(*), sum(spend), min(age), max(age) FROM ds_customers "
        "GROUP BY region ORDER BY region NULLS FIRST"
    ),
    (
        "SELECT age // 10 AS band, region, count(*), avg(spend) FROM ds_customers "
        "GROUP BY ALL ORDER BY ALL"
    ),
]


@pytest.mark.parametrize("sql", QUERIES)
def test_results_equal_plaintext_duckdb(
    sandbox: duckdb.DuckDBPyConnection, plain: duckdb.DuckDBPyConnection, sql: str
) -> None:
    ours = run_query(sandbox, sql, row_cap=10_000)
    assert ours.rows == plain.execute(sql).fetchall()
    assert not ours.truncated


def test_parameters_are_bound(sandbox: duckdb.DuckDBPyConnection) -> None:
    result = run_query(
        sandbox, "SELECT count(*) FROM ds_customers WHERE region = ? AND age >= ?", ["south", 50]
    )
    expected = sum(1 for i in range(ROWS) if i % 5 == 1 and 18 + i % 70 >= 50)
    assert result.rows == [(expected,)]


# -- limits ----------------------------------------------------------------------------------


def test_row_cap_truncates(sandbox: duckdb.DuckDBPyConnection) -> None:
    result = run_query(sandbox, "SELECT id FROM ds_customers ORDER BY id", row_cap=10)
    assert result.rows == [(i,) for i in range(10)]
    assert result.truncated
    assert result.columns == ["id"]


def test_timeout_interrupts(sandbox: duckdb.DuckDBPyConnection) -> None:
    slow = "SELECT count(*) FROM range(10000000000) a WHERE a.range % 7 = 3"
    with pytest.raises(QueryTimedOut):
        run_query(sandbox, slow, timeout_seconds=0.2)
    # The connection still answers afterwards.
    assert run_query(sandbox, "SELECT 1").rows == [(1,)]


def test_memory_limit_holds(tables: dict[str, EncryptedTable]) -> None:
    conn = open_sandbox(tables, memory_limit="32MB", threads=1)
    big = "SELECT max(length(s)) FROM (SELECT list(range) AS s FROM range(50000000))"
    with pytest.raises(QueryFailed, match="memory"):
        run_query(conn, big)
    conn.close()


def test_errors_do_not_echo_stored_values(sandbox: duckdb.DuckDBPyConnection) -> None:
    with pytest.raises(QueryFailed) as caught:
        run_query(sandbox, "SELECT CAST(region AS INTEGER) FROM ds_customers")
    assert "north" not in caught.value.detail
    assert "south" not in caught.value.detail


def test_unknown_column_is_named(sandbox: duckdb.DuckDBPyConnection) -> None:
    with pytest.raises(QueryFailed, match="nope"):
        run_query(sandbox, "SELECT nope FROM ds_customers")


def test_sandboxes_are_independent(tables: dict[str, EncryptedTable]) -> None:
    first = open_sandbox(tables)
    second = open_sandbox({})
    with pytest.raises(QueryFailed, match="ds_customers"):
        run_query(second, "SELECT count(*) FROM ds_customers")
    assert run_query(first, "SELECT count(*) FROM ds_customers").rows == [(ROWS,)]
    first.close()
    second.close()


def test_concurrent_sandboxes(tables: dict[str, EncryptedTable]) -> None:
    results: list[object] = []

    def work() -> None:
        conn = open_sandbox(tables, threads=1)
        results.append(run_query(conn, "SELECT count(*) FROM ds_customers").rows)
        conn.close()

    workers = [threading.Thread(target=work) for _ in range(4)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    assert results == [[(ROWS,)]] * 4


def test_no_setting_tells_sql_where_the_server_keeps_its_files(
    sandbox: duckdb.DuckDBPyConnection,
) -> None:
    """DuckDB defaults its secret, extension and home directories to paths under the service
    account's home; a tenant's SELECT over duckdb_settings() must not learn them."""
    home = str(Path.home())
    settings = run_query(sandbox, "SELECT name, value FROM duckdb_settings()").rows
    leaking = [name for name, value in settings if home in str(value) or str(value).startswith("/")]
    assert leaking == []
