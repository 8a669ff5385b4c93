"""Export benchmark: rows/s of encrypted exports beside DuckDB ``COPY ... TO`` plaintext.

    .venv/bin/python benchmarks/export_bench.py [--rows 1000000] [--threads 2] [--repeats 3]

Generates a customer table, builds it into a dataset of a fresh deployment (encrypted
upload, build job, encrypted Parquet), then, interleaved and repeated:

* plain: DuckDB ``COPY (SELECT ...) TO 'plain.csv'`` from the same data as plain
  Parquet, same thread count: the plaintext baseline;
* export: ``create_export`` end to end, as the route runs it: rows and distinct keys
  in one scan, the keys turned into ledger HMACs, a sample for the byte estimate, the
  velocity check and reservation (the ledger emptied before each run, as for the first
  export of a day), then DuckDB → record batches → CSV writer → streaming AEAD object,
  SHA-256 of the plaintext, export row and audit event;
* pipeline: only the production step of the same export (query → transforms → CSV →
  streaming AEAD into the object store), to show what the velocity bookkeeping costs;
* transformed: ``create_export`` with pseudonym (id), mask (email) and generalise
  (joined → month, age → bands of 10, postcode → outward code) columns.

By default the query cache is off (``query_cache_mb = 0``): each export reads the
encrypted Parquet through the per-request sandbox, the slower path. With
``--query-cache`` the cache is on and warmed by one untimed export first, as it is
on a server where the tenant has just counted or cubed the data it exports. Prints
rows/s and the ratio to plain; the issue's target is untransformed export >= 0.5x plain.
"""

from __future__ import annotations

import argparse
import datetime as dt
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import duckdb

MIB = 1024 * 1024
CHUNK = 16 * MIB
BIG = 10**12
COLUMNS = ["id", "email", "region", "age", "spend", "joined", "postcode"]
TRANSFORMED = [
    {"name": "id", "transform": {"kind": "pseudonym"}},
    {"name": "email", "transform": {"kind": "mask", "keep_first": 2, "keep_last": 4}},
    {"name": "region"},
    {"name": "age", "transform": {"kind": "generalise", "band": 10}},
    {"name": "spend"},
    {"name": "joined", "transform": {"kind": "generalise", "to": "month"}},
    {"name": "postcode", "transform": {"kind": "generalise", "to": "postcode_outward"}},
]
GENERATE = """
COPY (
  SELECT i AS id,
         'user' || i || '@example' || (i % 97) || '.org' AS email,
         ['north', 'south', 'east', 'west'][1 + i % 4] AS region,
         18 + (i * 7919) % 70 AS age,
         round(((i * 104729) % 100000) / 100.0, 2) AS spend,
         DATE '2015-01-01' + CAST((i * 31) % 3650 AS INTEGER) AS joined,
         ['SW1A 1AA', 'M1 1AE', 'B33 8TH', 'CR2 6XH', 'DN55 1PT'][1 + i % 5] AS postcode
  FROM range({rows}) t(i)
) TO '{path}' (HEADER, DELIMITER ',')
"""


def build_deployment(work: Path, csv: Path, cache_mb: int = 0) -> tuple[Any, Any]:
    """A development deployment whose tenant ``bench`` holds ``customers`` built from ``csv``."""
    from strongroom.audit import Actor
    from strongroom.config import Environment, load_settings
    from strongroom.datasets import catalog, jobs, uploads
    from strongroom.datasets.build import SchemaOverrides
    from strongroom.deployment import initialise, open_deployment
    from strongroom.tenancy.services import create_tenant

    caps = {f"export_cap_{m}_per_{w}": BIG for m in ("rows", "bytes", "exports", "subjects")
            for w in ("hour", "day")}
    home = work / "home"
    initialise(home, Environment.DEVELOPMENT,
               extra_settings={**caps, "query_cache_mb": cache_mb,
                               "export_refusal_alert_count": 10})
    deployment = open_deployment(load_settings(home))
    actor = Actor(kind="user", id="bench", role="analyst")
    with deployment.transaction() as session:
        tenant = create_tenant(session, deployment.keys, "bench")
        dataset_id = catalog.create_dataset(session, deployment, tenant, actor, "customers",
                                            key_column="id").id
        upload_id = uploads.create_upload(session, deployment, tenant, actor,
                                          filename="customers.csv", fmt="csv",
                                          max_bytes=csv.stat().st_size).id
    offset = 0
    with csv.open("rb") as handle:
        while chunk := handle.read(CHUNK):
            with deployment.transaction() as session:
                uploads.append_chunk(session, deployment, tenant, actor, upload_id, offset,
                                     [chunk])
            offset += len(chunk)
    with deployment.transaction() as session:
        uploads.complete_upload(session, deployment, tenant, actor, upload_id)
    started = time.perf_counter()
    version = jobs.run_build(deployment, tenant.id, dataset_id, upload_id, actor,
                             overrides=SchemaOverrides(key_column="id"))
    assert version.status == "ready", version.report
    print(f"build: {time.perf_counter() - started:.1f} s", file=sys.stderr)
    return deployment, tenant


def arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--query-cache", action="store_true",
                        help="export through the warm per-tenant query cache")
    return parser.parse_args()


def generate(work: Path, args: argparse.Namespace, plain_parquet: Path) -> Any:
    """The customer CSV (to upload) and the same rows as plain Parquet (for the baseline)."""
    csv = work / "c.csv"
    baseline = duckdb.connect()
    baseline.execute(f"SET threads = {int(args.threads)}")
    baseline.execute(GENERATE.format(rows=int(args.rows), path=csv))
    baseline.execute(f"COPY (SELECT * FROM read_csv('{csv}')) TO '{plain_parquet}'")  # noqa: S608
    return baseline


def warm(deployment: Any, first_export: Callable[[], None]) -> None:
    """Run one export untimed (a miss, answered lazily) and wait for the cache to load."""
    from strongroom.analysis.cache import deployment_query_cache

    started = time.perf_counter()
    first_export()
    cache = deployment_query_cache(deployment)
    assert cache is not None
    cache.wait_for_loads()
    print(f"cache warmed: {time.perf_counter() - started:.1f} s", file=sys.stderr)


def main() -> None:
    args = arguments()

    from strongroom.audit import Actor
    from strongroom.exports import services, velocity
    from strongroom.exports._writers import Encoded
    from strongroom.exports.models import ExportFormat
    from strongroom.storage.services import put_object
    from strongroom.tenancy.models import Tenant

    with tempfile.TemporaryDirectory(prefix="export-bench-") as scratch:
        work = Path(scratch)
        plain_parquet, plain_csv = work / "plain.parquet", work / "plain.csv"
        baseline = generate(work, args, plain_parquet)
        deployment, tenant = build_deployment(work, work / "c.csv",
                                              2048 if args.query_cache else 0)
        (work / "c.csv").unlink()
        requester = services.Requester(tenant.id, "bench",
                                       Actor(kind="user", id="bench", role="analyst"), True)
        keep = [{"name": name} for name in COLUMNS]
        made: dict[str, Any] = {}

        def plain() -> None:
            select = ", ".join(COLUMNS)
            baseline.execute(f"COPY (SELECT {select} FROM read_parquet('{plain_parquet}')) "  # noqa: S608
                             f"TO '{plain_csv}' (HEADER, DELIMITER ',')")

        def forget() -> None:
            # Every export starts with an empty ledger, as the first of its day would: with
            # the caps raised this far, repeated runs would otherwise pile millions of the
            # same subjects into the window (real caps bound that by rows per day).
            with deployment.transaction() as session:
                velocity.prune_ledger(session, services.utcnow() + dt.timedelta(days=2))

        def export(columns: list[dict[str, Any]]) -> Callable[[], None]:
            def run() -> None:
                made[str(columns is keep)] = services.create_export(
                    deployment, requester,
                    services.ExportSpec("customers", columns, ExportFormat.CSV))
            return run

        def pipeline() -> None:
            spec = services.ExportSpec("customers", keep, ExportFormat.CSV)
            prepared = services._prepare(deployment, requester, spec, services.utcnow())
            started = time.perf_counter()
            encoded = Encoded()
            chunks, _ = services._produce(prepared, None, ExportFormat.CSV, encoded)
            with deployment.transaction() as session:
                owner = session.get_one(Tenant, tenant.id)
                ring = deployment.keys.tenant_ring(session, tenant.id)
                put_object(session, deployment.store, ring, owner, chunks, kind="export")
            made["pipeline_seconds"] = time.perf_counter() - started
            made["pipeline_bytes"] = encoded.size

        if args.query_cache:
            warm(deployment, export(keep))

        runs: dict[str, Callable[[], None]] = {
            "plain": plain, "export": export(keep), "pipeline": pipeline,
            "transformed": export(TRANSFORMED),
        }
        times: dict[str, list[float]] = {name: [] for name in runs}
        for _ in range(args.repeats):
            for name, run in runs.items():
                forget()
                started = time.perf_counter()
                run()
                elapsed = time.perf_counter() - started
                if name == "pipeline":  # preparing (resolve, compile) is not production
                    elapsed = made["pipeline_seconds"]
                times[name].append(elapsed)
        deployment.close()

        report(args, times, plain_csv.stat().st_size, made["True"].export)


def report(args: argparse.Namespace, times: dict[str, list[float]], plain_size: int,
           ours: Any) -> None:
    rows = args.rows
    assert ours.rows == rows, (ours.rows, rows)
    print(f"rows: {rows:,}  threads: {args.threads}  repeats: {args.repeats} (median seconds)  "
          f"query cache: {'on, warm' if args.query_cache else 'off'}")
    print(f"plain CSV {plain_size / MIB:.1f} MiB; export CSV {ours.size / MIB:.1f} MiB")
    base = statistics.median(times["plain"])
    for name, label in (("plain", "DuckDB COPY TO plain CSV"),
                        ("export", "export, untransformed (end to end)"),
                        ("pipeline", "export pipeline only (query→CSV→AEAD)"),
                        ("transformed", "export with pseudonym/mask/generalise")):
        seconds = statistics.median(times[name])
        print(f"{label:42s} {seconds:7.2f} s  {rows / seconds:12,.0f} rows/s  "
              f"{base / seconds:5.2f}x plain")

if __name__ == "__main__":
    main()
