"""Sustained audited events per second, each in its own committed transaction.

For each metadata database (SQLite in a real deployment home; PostgreSQL when it
answers) this initialises a real deployment and measures, in the same run:

* audited: ``AuditTrail.record_event`` (hash chain, HMAC seal, head row,
  checkpoints every ``audit_checkpoint_every_events``), one event per committed
  transaction opened with ``Deployment.transaction()``;
* plain: the same row (built by ``AuditTrail.event_row``: same columns, details
  and address already HMACed) inserted into a plain table with the same indexes
  but no chain, also one insert per committed transaction through
  ``Deployment.transaction()``. The difference is the cost of the chain: moving
  the head row, hashing, sealing, and the checkpoints.

Rounds alternate plain and audited so that drift (page cache, WAL growth,
autovacuum) hits both alike; the median round is reported. SQLite runs in WAL mode
with ``synchronous=FULL`` (the deployment's own settings), so every commit is
fsynced: on a disk the figure is bounded by the storage's fsync latency, which is
probed and printed. ``--dir /dev/shm`` runs the same code on tmpfs, where fsync is
free, to show the CPU cost of the code itself (not a durable configuration).

At the end the whole chain is verified with ``verify_log``.

    .venv/bin/python benchmarks/audit_bench.py [--events N] [--rounds R] [--dir DIR]
"""

from __future__ import annotations

import argparse
import os
import sqlite3
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from strongroom.audit import Actor, EventTag, Sensitive
from strongroom.audit.models import AuditEvent
from strongroom.audit.verify import verify_log
from strongroom.config import Environment, load_settings
from strongroom.deployment import Deployment, initialise, open_deployment

PG_URL = os.environ.get(
    "STRONGROOM_BENCH_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)
TARGET_EVENTS_PER_SECOND = 5_000
TARGET_OVERHEAD = 0.20
ACTOR = Actor(kind="user", id="u-0001", role="analyst", session="s-0001",
              address="203.0.113.9", user_agent="bench/1.0")


def plain_table(metadata: sa.MetaData) -> sa.Table:
    """A table with exactly the audit columns and equivalent indexes, but no chain."""
    source = AuditEvent.__table__
    table = sa.Table("bench_plain_events", metadata,
                     *(column._copy() for column in source.columns))
    sa.Index("ix_bench_plain_tenant_seq", table.c.tenant_id, table.c.seq)
    sa.Index("ix_bench_plain_occurred_at", table.c.occurred_at)
    return table


def details(i: int) -> dict[str, Any]:
    return {"dataset": "ds-42", "rows": i, "filter": Sensitive(f"person{i}@example.com")}


Timing = tuple[float, float]  # (wall seconds, this process's CPU seconds)


def run_audited(dep: Deployment, count: int) -> Timing:
    audit = dep.audit
    start, cpu = time.perf_counter(), time.process_time()
    for i in range(count):
        with dep.transaction() as session:
            audit.record_event(session, EventTag.DATASET_READ, actor=ACTOR, tenant="t-bench",
                               target="dataset:ds-42", details=details(i))
    return time.perf_counter() - start, time.process_time() - cpu


def run_plain(dep: Deployment, table: sa.Table, count: int, first_seq: int) -> Timing:
    insert = table.insert()
    audit = dep.audit
    start, cpu = time.perf_counter(), time.process_time()
    for i in range(count):
        # The same row, built by the trail itself (details and address HMACed), minus the chain.
        row = audit.event_row(EventTag.DATASET_READ, ACTOR, tenant="t-bench",
                              target="dataset:ds-42", details=details(i))
        row.update(seq=first_seq + i, prev_hash="-", hash="-", mac="-")
        with dep.transaction() as session:
            session.connection().execute(insert, row)
    return time.perf_counter() - start, time.process_time() - cpu


def fsync_latency_ms(directory: Path, samples: int = 100) -> float:
    fd, name = tempfile.mkstemp(dir=directory)
    try:
        start = time.perf_counter()
        for _ in range(samples):
            os.write(fd, b"x" * 4096)
            os.fsync(fd)
        return (time.perf_counter() - start) / samples * 1000
    finally:
        os.close(fd)
        Path(name).unlink()


def run_bare_sqlite(path: Path, count: int) -> Timing:
    """The storage's ceiling: stdlib sqlite3, WAL, synchronous=FULL, one row per commit."""
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=FULL")
        conn.execute("CREATE TABLE IF NOT EXISTS bare (seq INTEGER PRIMARY KEY, row TEXT)")
        payload = "x" * 600  # about the size of an audit row
        start, cpu = time.perf_counter(), time.process_time()
        for _ in range(count):
            conn.execute("BEGIN")
            conn.execute("INSERT INTO bare (row) VALUES (?)", (payload,))
            conn.execute("COMMIT")
        return time.perf_counter() - start, time.process_time() - cpu
    finally:
        conn.close()


def line(name: str, runs: list[Timing], events: int) -> str:
    rates = [events / wall for wall, _cpu in runs]
    cpu_us = statistics.median(cpu for _wall, cpu in runs) / events * 1e6
    return (f"  {name:<15} {statistics.median(rates):9.0f} events/s  {cpu_us:6.0f} us CPU/event"
            "  (rounds: " + ", ".join(f"{r:.0f}" for r in rates) + ")")


def bench(
    label: str, dep: Deployment, events: int, rounds: int, bare: Path | None = None
) -> dict[str, float]:
    metadata = sa.MetaData()
    table = plain_table(metadata)
    metadata.create_all(dep.engine)
    # Warm-up: first connections, statement caches, key objects.
    run_audited(dep, 50)
    run_plain(dep, table, 50, first_seq=1)
    bare_runs: list[Timing] = []
    plain_runs: list[Timing] = []
    audited_runs: list[Timing] = []
    next_seq = 1_000
    # Alternating, so that the storage's moods (fsync latency varies a lot on shared
    # disks) fall on all alike; each round's ratio compares neighbours in time.
    for _ in range(rounds):
        if bare is not None:
            bare_runs.append(run_bare_sqlite(bare, events))
        plain_runs.append(run_plain(dep, table, events, next_seq))
        next_seq += events
        audited_runs.append(run_audited(dep, events))
    with dep.transaction() as session:
        report = verify_log(session, dep.audit.keys)
    if not report.ok:
        sys.exit(f"{label}: the chain did not verify after the run: {report.summary()}")
    ratios = [a[0] / p[0] - 1 for p, a in zip(plain_runs, audited_runs, strict=True)]
    overhead = statistics.median(ratios)
    plain = statistics.median(events / wall for wall, _cpu in plain_runs)
    audited = statistics.median(events / wall for wall, _cpu in audited_runs)
    print(label)
    if bare_runs:
        print(line("bare sqlite3", bare_runs, events) + "  <- no SQLAlchemy, no audit")
    print(line("plain inserts", plain_runs, events))
    print(line("audited events", audited_runs, events))
    print(f"  chaining costs  {overhead:+9.1%} time per event over plain inserts, median of "
          "rounds (" + ", ".join(f"{r:+.0%}" for r in ratios) + "); target <= "
          f"{TARGET_OVERHEAD:.0%}: {'met' if overhead <= TARGET_OVERHEAD else 'MISSED'}")
    print(f"  rate target     >= {TARGET_EVENTS_PER_SECOND} audited events/s: "
          f"{'met' if audited >= TARGET_EVENTS_PER_SECOND else 'MISSED'}")
    print(f"  verify_log      {report.summary()}")
    return {"plain": plain, "audited": audited, "overhead": overhead}


def with_deployment(
    home: Path, database_url: str, run: Callable[[Deployment], dict[str, float]]
) -> dict[str, float]:
    initialise(home, Environment.DEVELOPMENT, database_url)
    dep = open_deployment(load_settings(home))
    try:
        return run(dep)
    finally:
        dep.close()


def postgres_schema() -> tuple[str, sa.Engine] | None:
    admin = sa.create_engine(PG_URL, connect_args={"connect_timeout": 3})
    try:
        with admin.connect() as conn:
            conn.execute(sa.text("SELECT 1"))
    except sa.exc.OperationalError:
        admin.dispose()
        return None
    schema = "bench_" + uuid.uuid4().hex[:12]
    with admin.begin() as conn:
        conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    return schema, admin


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=2000, help="events per round")
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds")
    parser.add_argument("--dir", type=Path, default=None,
                        help="where the SQLite home goes (default: a temp dir under benchmarks/)")
    parser.add_argument("--no-postgres", action="store_true", help="skip PostgreSQL")
    args = parser.parse_args()

    base = args.dir or Path(__file__).resolve().parent
    with tempfile.TemporaryDirectory(dir=base, prefix="audit-bench-") as tmp:
        root = Path(tmp)
        print(f"audit benchmark: {args.events} events x {args.rounds} rounds, "
              "one event per committed transaction")
        print(f"fsync latency in {base}: {fsync_latency_ms(root):.2f} ms "
              "(bounds per-commit durable writes on SQLite)")
        with_deployment(
            root / "sqlite", "",
            lambda dep: bench("SQLite (WAL, synchronous=FULL)", dep, args.events, args.rounds,
                              bare=root / "bare.db"),
        )
        if args.no_postgres:
            return
        found = postgres_schema()
        if found is None:
            print(f"PostgreSQL: not reachable at {PG_URL}; skipped")
            return
        schema, admin = found
        try:
            url = f"{PG_URL}?options=-csearch_path%3D{schema}"
            with_deployment(
                root / "pg", url,
                lambda dep: bench("PostgreSQL (synchronous_commit as configured)", dep,
                                  args.events, args.rounds),
            )
        finally:
            with admin.begin() as conn:
                conn.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
            admin.dispose()


if __name__ == "__main__":
    main()
