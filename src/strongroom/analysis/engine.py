"""The query sandbox: one fresh in-memory DuckDB connection per request.

Each of the tenant's datasets is an encrypted Parquet file. It reaches DuckDB
through ``pyarrow.dataset`` with the tenant's decryption configuration
(:meth:`ParquetCrypto.dataset_format`), registered as the view ``ds_<name>``;
DuckDB itself never opens a file. Then the connection is shut: external access
off (no file, network, ATTACH, COPY TO, INSTALL or LOAD), extension
auto-install and auto-load off, no temp directory and a zero temp-size budget
(so nothing spills to disk in clear text), a memory and a thread limit, and
finally the configuration locked so SQL cannot undo any of it.

Two layers refuse what a tenant's SQL must not do: :func:`check_read_only_sql`
admits exactly one SELECT statement by DuckDB's own parser, and the locked
configuration refuses file access even if a SELECT reaches a table function
such as ``read_csv``.

Scan through the arrow bridge, or load into memory first? Scanning the
registered arrow dataset costs 2-5x plain DuckDB over plain Parquet on
filtered counts and cubes, and 30-200x on a bare ``count(*)`` (plain DuckDB
answers that from Parquet metadata; the bridge decrypts and decodes every page
through pyarrow and hands batches across without DuckDB's own pruning).
Loading each table into memory (``CREATE TABLE AS``, memory only, spilling
off) and then compressing it (``CHECKPOINT``: an in-memory database compresses
its tables then, about 5x; :func:`strongroom.analysis.cache.materialise`)
brings queries to or below plain DuckDB. Loaded but not compressed (this
module's ``materialise=True``), cubes on text columns stay 1.5-6x slower.

So a sandbox that lives for one request scans lazily (loading first costs more
than it saves, and a lazy scan's memory is bounded by the memory limit, not by
the data), and :mod:`strongroom.analysis.cache` keeps each tenant's loaded,
compressed, locked database between requests, answering a miss lazily while it
loads. Measured with ``benchmarks/dataset_bench.py`` (the routes' compiled
counts and cubes, each request a fresh cursor and :func:`run_query`,
interleaved with DuckDB over the plain Parquet in one process, 2 threads, on a
2-core machine shared with other work):

* 2M customer rows, two runs: cached 0.37-1.05x plain on every count and
  cube (bare ``count(*)`` 0.61-0.71x); lazy 2.2-72x. The cold load took 5-8 s
  and holds 39 MiB.
* 10M rows, three runs: every count 0.28-0.97x; cubes 0.43-1.22x, except the
  cube whose only dimension is a five-value text column in the two runs on a
  heavily loaded machine (load average about 10): 1.51x and 1.95x, 0.71x in
  the quieter run. DuckDB groups Parquet's dictionary pages without decoding
  them, and its own compressed in-memory strings not. The cold load took 21 s
  (quiet) to 66 s (loaded) and holds 193-201 MiB; loading a million rows at a
  time keeps the process's peak at 1.4 GiB (2.5 GiB loading whole tables).

End to end over HTTPS, a warm count or cube request first cost about 110 ms
(2M) and 300 ms (10M) more than the query, most of it ``resolve_datasets``
hashing the whole encrypted file on every request. The store now hashes an
immutable object once per process while the file is unchanged
(``LocalObjectStore.verified_path``); re-measured at 2M rows on a quiet
machine, a whole request (TLS, authentication, audit, query) took 9.9-48 ms,
0.57-2.70x DuckDB answering the same query in process (the largest ratio on the
cheapest query, where the request's own ~10 ms dominates).
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb
import pyarrow.dataset as ds

from strongroom.analysis.selections import quote_identifier, table_name
from strongroom.crypto.parquet import ParquetCrypto
from strongroom.errors import InvalidInput

DEFAULT_ROW_CAP = 10_000
DEFAULT_TIMEOUT_SECONDS = 30.0


class SqlRefused(InvalidInput):
    """SQL that is not exactly one read-only SELECT, or that the sandbox refused."""

    slug = "sql-refused"
    title = "SQL refused"


class QueryFailed(InvalidInput):
    """A SELECT that DuckDB could not run (unknown column, type mismatch, memory limit)."""

    slug = "query-failed"
    title = "Query failed"


class QueryTimedOut(InvalidInput):
    slug = "query-timed-out"
    title = "Query timed out"


@dataclass(frozen=True)
class EncryptedTable:
    """One dataset version: its encrypted Parquet file and the tenant's Parquet crypto."""

    path: Path
    crypto: ParquetCrypto


@dataclass(frozen=True)
class QueryResult:
    columns: list[str]
    rows: list[tuple[Any, ...]]
    truncated: bool


def _lockdown(memory_limit: str, threads: int) -> list[str]:
    # Order matters: temp_directory cannot change once external access is off, and
    # nothing can change once the configuration is locked.
    return [
        "SET temp_directory = ''",
        "SET max_temp_directory_size = '0B'",
        # Nor may SQL learn the server's file layout from settings (they default to
        # paths under the service account's home directory).
        "SET secret_directory = ''",
        "SET extension_directory = ''",
        "SET home_directory = ''",
        "SET autoinstall_known_extensions = false",
        "SET autoload_known_extensions = false",
        "SET enable_external_access = false",
        f"SET memory_limit = '{memory_limit}'",
        f"SET threads = {int(threads)}",
    ]


def open_sandbox(
    tables: dict[str, EncryptedTable],
    memory_limit: str = "1GB",
    threads: int = 2,
    *,
    materialise: bool = False,
) -> duckdb.DuckDBPyConnection:
    """A locked, in-memory DuckDB connection seeing only ``tables``, each as ``ds_<name>``."""
    if not memory_limit.replace(" ", "").upper().rstrip("BKMGTI").isdigit():
        raise InvalidInput("memory_limit must look like 512MB or 1GB")
    if threads < 1:
        raise InvalidInput("threads must be at least 1")
    conn = duckdb.connect(":memory:")
    try:
        # Limits first, so loading runs under them too; the lock comes last.
        for statement in _lockdown(memory_limit, threads):
            conn.execute(statement)
        for dataset, table in tables.items():
            view = table_name(dataset)
            arrow = ds.dataset(table.path, format=table.crypto.dataset_format())
            if materialise:
                source = f"__load_{view}"
                conn.register(source, arrow)
                target, origin = quote_identifier(view), quote_identifier(source)
                # Both names passed table_name's pattern; no value from a client is spliced.
                load = f"CREATE TABLE {target} AS SELECT * FROM {origin}"  # noqa: S608  # nosec B608
                conn.execute(load)
                conn.unregister(source)
            else:
                conn.register(view, arrow)
        conn.execute("SET lock_configuration = true")
    except BaseException:
        conn.close()
        raise
    return conn


def check_read_only_sql(sql: str) -> str:
    """``sql`` if DuckDB parses it as exactly one SELECT statement; otherwise SqlRefused."""
    try:
        statements = duckdb.extract_statements(sql)
    except (duckdb.Error, TypeError, UnicodeError):
        # TypeError: DuckDB's binding refuses text that is not valid Unicode.
        raise SqlRefused("the SQL does not parse") from None
    if len(statements) != 1:
        raise SqlRefused(f"exactly one statement is allowed; found {len(statements)}")
    [statement] = statements
    if statement.type != duckdb.StatementType.SELECT:
        raise SqlRefused(f"only SELECT is allowed; this is a {statement.type.name} statement")
    return sql


def _query_error(error: duckdb.Error) -> InvalidInput:
    """Our error for DuckDB's; its text can quote stored values (conversions), so choose."""
    if isinstance(error, duckdb.PermissionException):
        return SqlRefused("the sandbox has no access to files, the network or extensions")
    if isinstance(error, duckdb.InterruptException):
        return QueryTimedOut("the query ran past its time limit and was stopped")
    if isinstance(error, duckdb.OutOfMemoryException):
        return QueryFailed("the query needs more memory than the sandbox allows")
    if isinstance(error, duckdb.InvalidInputException) and "locked" in str(error):
        return SqlRefused("the sandbox configuration is locked")
    if isinstance(error, duckdb.ParserException | duckdb.BinderException | duckdb.CatalogException):
        # These describe the SQL the client sent (names, syntax), not stored data.
        return QueryFailed(str(error).splitlines()[0])
    return QueryFailed(f"the query failed ({type(error).__name__})")


def run_query(
    conn: duckdb.DuckDBPyConnection,
    sql: str,
    params: Sequence[object] | dict[str, object] | None = None,
    row_cap: int = DEFAULT_ROW_CAP,
    timeout_seconds: float = DEFAULT_TIMEOUT_SECONDS,
) -> QueryResult:
    """Run one read-only SELECT with a row cap and a time limit."""
    check_read_only_sql(sql)
    timer = threading.Timer(timeout_seconds, conn.interrupt)
    timer.daemon = True
    timer.start()
    try:
        cursor = conn.execute(sql, params)
        columns = [column[0] for column in cursor.description or []]
        rows = cursor.fetchmany(row_cap + 1)
    except duckdb.Error as error:
        raise _query_error(error) from None
    finally:
        timer.cancel()
    truncated = len(rows) > row_cap
    return QueryResult(columns, [tuple(row) for row in rows[:row_cap]], truncated)
