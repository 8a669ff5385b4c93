"""Each tenant's datasets loaded once into a locked in-memory DuckDB database, and reused.

Why: a request's fresh sandbox scans the encrypted Parquet through the arrow
bridge, 3-5x slower than DuckDB over plain Parquet (``engine`` explains). A
database that already holds the decrypted tables in DuckDB's own compressed
in-memory storage answers counts and cubes as fast as plain DuckDB, or faster.
The price is the load (decrypt, decode, compress) and the memory it holds, so
the load happens once per tenant and dataset version, not once per request.

The rules:

* A tenant's database holds exactly the dataset versions it was loaded from
  (its key: the set of ``(name, version id)`` a request resolved), and only a
  request resolving exactly that set uses it. A new ready version, a deleted or
  a new dataset changes the set, so the old database is never asked again (it
  is retired at once when it holds a superseded version, else it idles out).
  A tenant may have a few, since routes resolve only the datasets they need (a
  count its base and linked datasets, SQL all). A request therefore never sees
  a dataset its own resolution left out, and never another tenant's: each
  database is a separate ``duckdb.connect(":memory:")`` instance.
* A database is locked down exactly like the per-request sandbox
  (:func:`engine._lockdown`: no temp directory, no spilling, external access
  and extension loading off; then ``lock_configuration``), so plaintext lives in
  this process's memory only. Requests get a fresh cursor of it.
* A miss is answered by the per-request lazy sandbox while the database loads
  on a background thread (one load per tenant at a time): no request waits for
  a load.
* The memory budget (``query_cache_mb``) bounds the sum of the databases'
  measured sizes; the least recently used are evicted to make room, and a
  tenant whose data alone exceeds the budget is served lazily. Databases unused
  for ``query_cache_idle_minutes`` are closed. An evicted database in use closes
  when its last cursor is returned.
"""

from __future__ import annotations

import itertools
import logging
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import duckdb
import pyarrow as pa
import pyarrow.dataset as ds

from strongroom.analysis.engine import EncryptedTable, _lockdown, open_sandbox
from strongroom.analysis.selections import quote_identifier, table_name
from strongroom.errors import InvalidInput

if TYPE_CHECKING:
    from strongroom.deployment import Deployment

__all__ = ["MASK", "QueryCache", "deployment_query_cache", "materialise"]

logger = logging.getLogger("strongroom.analysis")

MIB = 1024 * 1024
LOAD_CHUNK_ROWS = 1_000_000  # rows loaded, then compressed, at a time
MASK = "\u2022\u2022\u2022"  # "•••", what a masked personal value reads as
# Per dataset: its name, its version id and the personal columns masked in it.
Key = frozenset[tuple[str, str, frozenset[str]]]
Sandbox = Callable[[], AbstractContextManager[duckdb.DuckDBPyConnection]]


@dataclass(eq=False)
class _Database:
    tenant_id: str
    key: Key
    conn: duckdb.DuckDBPyConnection
    size: int
    last_used: float
    leases: int = 0
    retired: bool = False


@dataclass(eq=False)
class _Slot:
    """A tenant's databases by key; ``lock`` is held while one of them loads."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    databases: dict[Key, _Database] = field(default_factory=dict)
    loading: set[Key] = field(default_factory=set)
    # Too big for the budget, or failed to load: served lazily, retried after the idle time.
    refused: dict[Key, float] = field(default_factory=dict)


def _key(
    tables: Mapping[str, EncryptedTable], versions: Mapping[str, str],
    masked: Mapping[str, frozenset[str]],
) -> Key:
    if set(tables) != set(versions) or not set(masked) <= set(tables):
        raise InvalidInput("every table needs its version id, and only those")
    return frozenset(
        (name, version, frozenset(masked.get(name, ()))) for name, version in versions.items()
    )


def _masked(key: Key) -> dict[str, frozenset[str]]:
    return {name: columns for name, _version, columns in key if columns}


def _memory_used(conn: duckdb.DuckDBPyConnection) -> int:
    [(used,)] = conn.execute(
        "SELECT coalesce(sum(memory_usage_bytes), 0) FROM duckdb_memory()"
    ).fetchall()
    return int(used)


def _load_table(
    conn: duckdb.DuckDBPyConnection, dataset: str, table: EncryptedTable, personal: frozenset[str],
    chunk_rows: int,
) -> None:
    view = table_name(dataset)
    fmt = table.crypto.dataset_format()
    full = ds.dataset(table.path, format=fmt)
    # Masked: the personal columns are left out of the scan, so they are never read.
    kept = pa.schema([f for f in full.schema if f.name not in personal])
    scan = ds.dataset(table.path, format=fmt, schema=kept) if personal else full
    source, target = f"__load_{view}", f"__public_{view}" if personal else view
    # Every name passed table_name's pattern or comes from the file's schema, quoted; the
    # mask is our constant. No value from a client is spliced.
    into, origin = quote_identifier(target), quote_identifier(source)
    conn.register(source, scan)
    conn.execute(f"CREATE TABLE {into} AS SELECT * FROM {origin} LIMIT 0")  # noqa: S608  # nosec B608
    conn.unregister(source)
    # In chunks, each compressed before the next: the uncompressed peak is one chunk's.
    pending: list[pa.RecordBatch] = []
    rows = 0
    batches = scan.to_batches(batch_size=min(chunk_rows, 65_536))
    for batch in itertools.chain(batches, [None]):
        if batch is not None:
            pending.append(batch)
            rows += batch.num_rows
        if pending and (batch is None or rows >= chunk_rows):
            conn.register(source, pa.Table.from_batches(pending, schema=scan.schema))
            conn.execute(f"INSERT INTO {into} SELECT * FROM {origin}")  # noqa: S608  # nosec B608
            conn.unregister(source)
            conn.execute("CHECKPOINT")
            pending, rows = [], 0
    if personal:
        mask = "'" + MASK.replace("'", "''") + "'"
        select = ", ".join(
            f"{mask} AS {quote_identifier(f.name)}" if f.name in personal
            else quote_identifier(f.name)
            for f in full.schema
        )
        conn.execute(f"CREATE VIEW {quote_identifier(view)} AS SELECT {select} "  # noqa: S608
                     f"FROM {quote_identifier(target)}")  # nosec B608


def materialise(
    tables: Mapping[str, EncryptedTable], load_limit_bytes: int, query_limit_bytes: int,
    threads: int, masked: Mapping[str, frozenset[str]] | None = None,
    chunk_rows: int = LOAD_CHUNK_ROWS,
) -> tuple[duckdb.DuckDBPyConnection, int]:
    """A locked in-memory database holding ``tables`` as ``ds_<name>``, and its size in bytes.

    The tables are loaded ``chunk_rows`` rows at a time, each chunk compressed
    (``CHECKPOINT``: an in-memory database compresses its tables then, typically
    4-6x) before the next, so the uncompressed peak is one chunk's, not a
    table's. The memory limit is then set to
    the data's size plus ``query_limit_bytes`` of working memory for queries.
    A table with ``masked`` columns holds no personal column at all; its
    ``ds_<name>`` is a view reading :data:`MASK` in their place (as the lazy
    sandbox's masking does).
    """
    conn = duckdb.connect(":memory:")
    try:
        for statement in _lockdown(f"{load_limit_bytes // MIB}MiB", threads):
            conn.execute(statement)
        for dataset, table in tables.items():
            personal = (masked or {}).get(dataset, frozenset())
            _load_table(conn, dataset, table, personal, chunk_rows)
        size = _memory_used(conn)
        conn.execute(f"SET memory_limit = '{(size + query_limit_bytes) // MIB + 1}MiB'")
        conn.execute("SET lock_configuration = true")
    except BaseException:
        conn.close()
        raise
    return conn, size


class QueryCache:
    """Per-tenant materialised databases under a memory budget, with idle expiry.

    ``connection(tenant_id, tables, versions)`` is the one entry point for
    queries; :meth:`load` warms a tenant synchronously (tests, benchmarks);
    :meth:`invalidate` drops a tenant (suspended, deleted).
    """

    def __init__(
        self,
        budget_bytes: int,
        idle_seconds: float,
        *,
        memory_limit_bytes: int = 1024 * MIB,
        threads: int = 2,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if budget_bytes < 1 or idle_seconds <= 0 or memory_limit_bytes < MIB or threads < 1:
            raise InvalidInput("the query cache needs a budget, an idle time, memory and threads")
        self.budget_bytes = budget_bytes
        self.idle_seconds = idle_seconds
        self.memory_limit_bytes = memory_limit_bytes
        self.threads = threads
        self._clock = clock
        self._lock = threading.Lock()  # guards the slots and every database's bookkeeping
        self._slots: dict[str, _Slot] = {}
        self._loaders: set[threading.Thread] = set()
        self._stop = threading.Event()
        self._reaper: threading.Thread | None = None
        self._closed = False

    # -- queries -------------------------------------------------------------------------

    @contextmanager
    def connection(
        self, tenant_id: str, tables: Mapping[str, EncryptedTable], versions: Mapping[str, str],
        *, masked: Mapping[str, frozenset[str]] | None = None, lazy: Sandbox | None = None,
    ) -> Iterator[duckdb.DuckDBPyConnection]:
        """A cursor of a database holding exactly ``versions``, or else ``lazy()``'s sandbox.

        ``versions`` maps each of ``tables``' names to its dataset version id;
        ``masked`` names the personal columns to read as :data:`MASK` (a
        separate database, holding none of them). On a miss a database starts
        loading in the background, for the next request, and ``lazy`` (by
        default a plain lazy sandbox; it must mask as asked) answers this one.
        Use the connection only inside the block.
        """
        key = _key(tables, versions, masked or {})
        database = self._lease(tenant_id, key)
        if database is None:
            fallback = lazy or self._lazy(tables, masked or {})
            self._start_load(tenant_id, key, tables)
            with fallback() as sandbox:
                yield sandbox
            return
        try:
            cursor = database.conn.cursor()
            try:
                yield cursor
            finally:
                cursor.close()
        finally:
            self._release(database)

    def _lazy(
        self, tables: Mapping[str, EncryptedTable], masked: Mapping[str, frozenset[str]]
    ) -> Sandbox:
        if any(masked.values()):
            raise InvalidInput("a masked request needs a lazy sandbox that masks")

        @contextmanager
        def sandbox() -> Iterator[duckdb.DuckDBPyConnection]:
            conn = open_sandbox(dict(tables), memory_limit=f"{self.memory_limit_bytes // MIB}MiB",
                                threads=self.threads)
            try:
                yield conn
            finally:
                conn.close()

        return sandbox

    def _lease(self, tenant_id: str, key: Key) -> _Database | None:
        with self._lock:
            slot = self._slots.get(tenant_id)
            if slot is None:
                return None
            self._retire_superseded(slot, key)
            database = slot.databases.get(key)
            if database is None:
                return None
            database.leases += 1
            database.last_used = self._clock()
            return database

    def _retire_superseded(self, slot: _Slot, key: Key) -> None:
        """Retire the tenant's databases holding another version of a dataset in ``key``.

        ``key`` holds each dataset's newest ready version, so those can never be
        asked for again (and they hold data the tenant has replaced).
        """
        newest = {name: version for name, version, _masked in key}
        for database in list(slot.databases.values()):
            if any(newest.get(name, version) != version for name, version, _ in database.key):
                self._retire(database)

    def _release(self, database: _Database) -> None:
        with self._lock:
            database.leases -= 1
            database.last_used = self._clock()
            if database.retired and database.leases == 0:
                database.conn.close()

    # -- loading -------------------------------------------------------------------------

    def load(
        self, tenant_id: str, tables: Mapping[str, EncryptedTable], versions: Mapping[str, str],
        *, masked: Mapping[str, frozenset[str]] | None = None,
    ) -> bool:
        """Load a database for exactly ``versions`` now; whether it is cached."""
        return self._load(tenant_id, _key(tables, versions, masked or {}), dict(tables))

    def _start_load(
        self, tenant_id: str, key: Key, tables: Mapping[str, EncryptedTable]
    ) -> None:
        with self._lock:
            if self._closed:
                return
            slot = self._slots.setdefault(tenant_id, _Slot())
            if key in slot.loading or self._refused(slot, key):
                return
            slot.loading.add(key)
            loader = threading.Thread(
                target=self._load_quietly, args=(tenant_id, slot, key, dict(tables)),
                name="strongroom-query-cache-load", daemon=True,
            )
            self._loaders.add(loader)
        loader.start()

    def _load_quietly(
        self, tenant_id: str, slot: _Slot, key: Key, tables: dict[str, EncryptedTable]
    ) -> None:
        try:
            self._load(tenant_id, key, tables, slot)
        except Exception as error:  # noqa: BLE001 - a background load must not kill the thread
            # By type only: DuckDB's messages can quote stored values.
            logger.warning("query cache load failed: %s", type(error).__name__)
        finally:
            with self._lock:
                self._loaders.discard(threading.current_thread())

    def _load(
        self, tenant_id: str, key: Key, tables: dict[str, EncryptedTable],
        queued_in: _Slot | None = None,
    ) -> bool:
        # A queued load keeps the slot it was queued in: if the tenant was invalidated
        # since, the slot is no longer the tenant's and the load is not installed.
        with self._lock:
            slot = queued_in or self._slots.setdefault(tenant_id, _Slot())
        with slot.lock:
            try:
                with self._lock:
                    if key in slot.databases:
                        return True
                    if (self._closed or self._slots.get(tenant_id) is not slot
                            or self._refused(slot, key)):
                        return False
                try:
                    conn, size = materialise(
                        tables, self.budget_bytes + self.memory_limit_bytes,
                        self.memory_limit_bytes, self.threads, _masked(key),
                    )
                except duckdb.OutOfMemoryException:
                    self._refuse(slot, key)
                    return False
                except BaseException:
                    self._refuse(slot, key)
                    raise
                return self._install(slot, _Database(tenant_id, key, conn, size, self._clock()))
            finally:
                with self._lock:
                    slot.loading.discard(key)

    def _refused(self, slot: _Slot, key: Key) -> bool:
        refused_at = slot.refused.get(key)
        return refused_at is not None and self._clock() - refused_at < self.idle_seconds

    def _refuse(self, slot: _Slot, key: Key) -> None:
        with self._lock:
            slot.refused[key] = self._clock()

    def _install(self, slot: _Slot, database: _Database) -> bool:
        with self._lock:
            if self._closed or self._slots.get(database.tenant_id) is not slot:
                database.conn.close()  # closed, or the tenant invalidated while loading
                return False
            if database.size > self.budget_bytes:
                slot.refused[database.key] = self._clock()
                database.conn.close()
                return False
            self._retire_superseded(slot, database.key)
            slot.databases[database.key] = database
            slot.refused.pop(database.key, None)
            self._evict_over_budget(keep=database)
            self._start_reaper()
        return True

    # -- eviction ------------------------------------------------------------------------

    def _live(self) -> list[_Database]:
        return [d for slot in self._slots.values() for d in slot.databases.values()]

    def _retire(self, database: _Database) -> None:
        """Take ``database`` out of use; it closes now, or when its last cursor returns."""
        slot = self._slots.get(database.tenant_id)
        if slot is not None and slot.databases.get(database.key) is database:
            del slot.databases[database.key]
        database.retired = True
        if database.leases == 0:
            database.conn.close()

    def _evict_over_budget(self, keep: _Database) -> None:
        live = self._live()
        total = sum(d.size for d in live)
        for database in sorted(live, key=lambda d: d.last_used):
            if total <= self.budget_bytes:
                break
            if database is not keep:
                self._retire(database)
                total -= database.size

    def expire_idle(self) -> int:
        """Close the databases unused for ``idle_seconds``; how many were closed."""
        now = self._clock()
        with self._lock:
            idle = [
                d for d in self._live()
                if d.leases == 0 and now - d.last_used >= self.idle_seconds
            ]
            for database in idle:
                self._retire(database)
        return len(idle)

    def invalidate(self, tenant_id: str) -> None:
        """Forget the tenant (suspended, deleted): its databases close once not in use."""
        with self._lock:
            slot = self._slots.pop(tenant_id, None)
            for database in list(slot.databases.values()) if slot is not None else []:
                self._retire(database)

    def _start_reaper(self) -> None:
        if self._reaper is not None:
            return
        interval = max(1.0, min(60.0, self.idle_seconds / 4))

        def reap() -> None:
            while not self._stop.wait(interval):
                self.expire_idle()

        self._reaper = threading.Thread(target=reap, name="strongroom-query-cache-idle",
                                        daemon=True)
        self._reaper.start()

    # -- inspection and shutdown ---------------------------------------------------------

    def cached(self) -> dict[str, list[int]]:
        """Tenant id → the sizes in bytes of its cached databases."""
        with self._lock:
            return {t: [d.size for d in s.databases.values()]
                    for t, s in self._slots.items() if s.databases}

    def wait_for_loads(self, timeout: float | None = None) -> None:
        """Wait for background loads to finish (tests and benchmarks)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            with self._lock:
                loaders = list(self._loaders)
            if not loaders:
                return
            for loader in loaders:
                loader.join(None if deadline is None else max(0.0, deadline - time.monotonic()))
            if deadline is not None and time.monotonic() >= deadline:
                return

    def close(self) -> None:
        """Close every database (those in use when their cursors return) and stop the reaper."""
        with self._lock:
            self._closed = True
            for database in self._live():
                self._retire(database)
            self._slots.clear()
        self._stop.set()
        if self._reaper is not None:
            self._reaper.join()
        self.wait_for_loads()


_CREATING = threading.Lock()


def deployment_query_cache(deployment: Deployment) -> QueryCache | None:
    """The deployment's query cache, made on first use; None when ``query_cache_mb`` is 0."""
    settings = deployment.settings
    if settings.query_cache_mb == 0:
        return None
    with _CREATING:
        if deployment.query_cache is None:
            deployment.query_cache = QueryCache(
                settings.query_cache_mb * MIB, settings.query_cache_idle_minutes * 60.0
            )
        return deployment.query_cache

