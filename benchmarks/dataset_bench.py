"""Build and query benchmark: encrypted datasets beside the plaintext DuckDB baseline.

    .venv/bin/python benchmarks/dataset_bench.py [--rows 2000000] [--threads 2]
    .venv/bin/python benchmarks/dataset_bench.py --rows 10000000   # the issue's size
    .venv/bin/python benchmarks/dataset_bench.py --rows 24000000 --build-only  # a 2 GiB CSV

Generates a customer CSV, then in two fresh subprocesses (so each peak RSS is
its own):

* ours: CSV bytes → ``build_dataset`` → Parquet encrypted with a tenant key
  (AES-GCM, 256-bit data keys); then the query battery through the per-tenant
  query cache (``analysis.cache``: the cold load once, then warm requests, each
  a lease, a fresh cursor and ``run_query``, as a route runs it) and through the
  per-request lazy sandbox (what a cache miss is answered with);
* plain: DuckDB ``read_csv`` → plain Parquet (``COPY ... TO``); then the same
  SQL and parameters with DuckDB reading that Parquet.

* over HTTPS (unless ``--no-https``): a real ``strongroom serve`` on a new home,
  a tenant analyst uploading the CSV in 64 MiB chunks (MiB/s), building it (the
  server's MiB/s), then the same counts and cubes as HTTP requests once the
  server's query cache has loaded, timed end to end.

The battery is what the routes run: counts compiled from JSON selections
(``count_query``) and cubes from cube specifications (``compile_cube``), plus a
bare ``count(*)``. Both sides get the same thread count and the same SQL; the
answers are compared. Prints MiB/s, peak memory, the cache's load time and
size, median latencies and the ratios the issue sets targets for. The default
is 2M rows to keep a run short; the issue asks for 10M.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import random
import re
import resource
import secrets
import ssl
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx

MIB = 1024 * 1024
REPEATS = 7

TODAY = "2024-10-01"
COLUMNS = {
    "id": "integer", "email": "text", "first_name": "text", "city": "text", "region": "text",
    "age": "integer", "spend": "float", "joined": "date", "last_seen": "timestamp",
    "opted_in": "boolean",
}
SELECTIONS: dict[str, object] = {
    "count_ranges": {"and": [{"field": "age", "op": "between", "value": [30, 49]},
                             {"field": "region", "op": "in", "value": ["north", "east"]},
                             {"field": "opted_in", "op": "eq", "value": True}]},
    "count_text": {"or": [{"field": "email", "op": "starts_with", "value": "ann."},
                          {"field": "city", "op": "contains", "value": "er"}]},
    "count_dates": {"and": [{"field": "last_seen", "op": "within_last", "value": {"days": 90}},
                            {"not": {"field": "joined", "op": "before", "value": "2015-01-01"}}]},
}
CUBES: dict[str, object] = {
    "cube_1d": {"dataset": "customers", "dimensions": [{"field": "region"}],
                "measures": [{"fn": "count"}]},
    "cube_2d": {"dataset": "customers",
                "dimensions": [{"field": "region"}, {"field": "age", "band": {"width": 10}}],
                "measures": [{"fn": "count"}, {"fn": "sum", "field": "spend"},
                             {"fn": "mean", "field": "spend"}]},
    "cube_3d": {"dataset": "customers",
                "selection": {"field": "opted_in", "op": "eq", "value": True},
                "dimensions": [{"field": "region"},
                               {"field": "age", "band": {"edges": [25, 40, 60]}},
                               {"field": "joined", "date_part": "year"}],
                "measures": [{"fn": "count"}, {"fn": "mean", "field": "spend"},
                             {"fn": "max", "field": "last_seen"}]},
}


def battery() -> list[tuple[str, str, list[object]]]:
    """(name, SQL, parameters) of every query, compiled as the routes compile them."""
    import datetime as dt

    from strongroom.analysis import (
        DatasetSchema,
        Schema,
        compile_cube,
        compile_selection,
        count_query,
    )

    schema = Schema({"customers": DatasetSchema(COLUMNS, "id")})  # type: ignore[arg-type]
    today = dt.date.fromisoformat(TODAY)
    queries: list[tuple[str, str, list[object]]] = [
        ("count_all", "SELECT count(*) FROM ds_customers", [])
    ]
    for name, selection in SELECTIONS.items():
        sql, params = count_query(compile_selection(selection, schema, "customers", today=today),
                                  "customers")
        queries.append((name, sql, params))
    for name, spec in CUBES.items():
        cube = compile_cube(spec, schema, today=today)
        queries.append((name, cube.sql, cube.params))
    return queries


def same_answers(ours: list[list[object]], plain: list[list[object]]) -> bool:
    if len(ours) != len(plain):
        return False
    for mine, theirs in zip(ours, plain, strict=True):
        for a, b in zip(mine, theirs, strict=True):
            if isinstance(a, float) and isinstance(b, float):
                if not math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-6):
                    return False
            elif a != b:
                return False
    return True


FIRST = ["Ann", "Bob", "Chloë", "Dev", "Eve", "Farah", "Gus", "Hana", "Ivan", "Jo"]
CITIES = ["Leeds", "York", "Bath", "Hull", "Derby", "Ely", "Wells", "Truro", "Ripon", "Perth"]
REGIONS = ["north", "south", "east", "west", "midlands"]


def generate(path: Path, rows: int) -> None:
    rng = random.Random(5)  # noqa: S311 - test data, not secrets
    with path.open("w", encoding="utf-8", newline="") as out:
        out.write("id,email,first_name,city,region,age,spend,joined,last_seen,opted_in\n")
        lines: list[str] = []
        for i in range(rows):
            first = rng.choice(FIRST)
            lines.append(
                f"{i},{first.lower()}.{i}@example.com,{first},{rng.choice(CITIES)},"
                f"{rng.choice(REGIONS)},{rng.randint(18, 90)},{rng.randint(0, 99999) / 100},"
                f"20{rng.randint(10, 24)}-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d},"
                f"2024-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}T"
                f"{rng.randint(0, 23):02d}:{rng.randint(0, 59):02d}:00,"
                f"{'true' if rng.random() < 0.6 else 'false'}\n"
            )
            if len(lines) == 50_000:
                out.writelines(lines)
                lines.clear()
        out.writelines(lines)


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def file_chunks(path: Path, size: int = MIB) -> Iterator[bytes]:
    with path.open("rb") as source:
        while chunk := source.read(size):
            yield chunk


def interleaved(runs: dict[str, Callable[[], object]], repeats: int) -> dict[str, float]:
    """Median seconds of each run, taking turns, so a busy machine slows every side alike."""
    for run in runs.values():
        run()  # warm-up: caches, key unwrapping
    times: dict[str, list[float]] = {name: [] for name in runs}
    for _ in range(repeats):
        for name, run in runs.items():
            started = time.perf_counter()
            run()
            times[name].append(time.perf_counter() - started)
    return {name: statistics.median(values) for name, values in times.items()}


def child_ours(
    csv: Path, work: Path, threads: int, build_only: bool = False
) -> dict[str, object]:
    import duckdb

    from strongroom.analysis.cache import MIB as CACHE_MIB
    from strongroom.analysis.cache import QueryCache
    from strongroom.analysis.engine import EncryptedTable, open_sandbox, run_query
    from strongroom.config import Environment
    from strongroom.crypto.keyring import TenantKeyRing
    from strongroom.crypto.parquet import ParquetCrypto
    from strongroom.datasets.build import CsvOptions, build_dataset

    crypto = ParquetCrypto(TenantKeyRing.generate(Environment.TEST, uuid.uuid4().hex))
    out = work / "ours.parquet"
    started = time.perf_counter()
    report = build_dataset(file_chunks(csv), CsvOptions(), crypto, out)
    build_seconds = time.perf_counter() - started
    result: dict[str, object] = {
        "build_seconds": build_seconds,
        "build_peak_mib": peak_rss_mib(),
        "rows": report.rows_loaded,
        "rejected": report.rows_rejected,
        "parquet_mib": out.stat().st_size / MIB,
    }
    if build_only:
        return result
    tables = {"customers": EncryptedTable(out, crypto)}
    versions = {"customers": "v1"}

    # The baseline: DuckDB over the plain Parquet the plain child wrote, same threads.
    plain = duckdb.connect(":memory:")
    plain.execute(f"SET threads = {threads}")
    plain.execute(f"CREATE VIEW ds_customers AS SELECT * FROM read_parquet('{work / 'plain.parquet'}')")  # noqa: E501, S608

    # The cache as the server runs it, with room for 10M rows: the cold load once, then
    # warm requests (lease, fresh cursor, run_query). A miss is served by the lazy sandbox.
    cache = QueryCache(8192 * CACHE_MIB, 1800.0, memory_limit_bytes=2048 * CACHE_MIB,
                       threads=threads)
    started = time.perf_counter()
    assert cache.load("tenant", tables, versions)
    result["cache_load_seconds"] = time.perf_counter() - started
    [size] = cache.cached()["tenant"]
    result["cache_mib"] = size / MIB
    result["peak_mib_with_cache"] = peak_rss_mib()
    started = time.perf_counter()
    lazy = open_sandbox(tables, memory_limit="4GB", threads=threads)
    result["lazy_open_seconds"] = time.perf_counter() - started

    def cached_request(sql: str, params: list[object]) -> list[tuple[object, ...]]:
        with cache.connection("tenant", tables, versions) as conn:
            return run_query(conn, sql, params, row_cap=100_000).rows

    answers: dict[str, object] = {}
    for name, sql, params in battery():
        answers[name] = {
            "plain": [list(row) for row in plain.execute(sql, params).fetchall()],
            "cached": [list(row) for row in cached_request(sql, params)],
            "lazy": [list(row) for row in run_query(lazy, sql, params, row_cap=100_000).rows],
        }
        medians = interleaved({
            "plain": lambda sql=sql, params=params: plain.execute(sql, params).fetchall(),
            "cached": lambda sql=sql, params=params: cached_request(sql, params),
            "lazy": lambda sql=sql, params=params: run_query(lazy, sql, params, row_cap=100_000),
        }, REPEATS)
        for side, seconds in medians.items():
            result[f"{side}_{name}_seconds"] = seconds
    result["answers"] = answers
    lazy.close()
    cache.close()
    plain.close()
    return result


def child_plain(csv: Path, work: Path, threads: int) -> dict[str, object]:
    import duckdb

    out = work / "plain.parquet"
    conn = duckdb.connect(":memory:")
    conn.execute(f"SET threads = {threads}")
    started = time.perf_counter()
    conn.execute(f"COPY (SELECT * FROM read_csv('{csv}')) TO '{out}' (FORMAT parquet)")  # noqa: S608
    build_seconds = time.perf_counter() - started
    result: dict[str, object] = {
        "build_seconds": build_seconds,
        "build_peak_mib": peak_rss_mib(),
        "parquet_mib": out.stat().st_size / MIB,
    }
    [(rows,)] = conn.execute(f"SELECT count(*) FROM read_parquet('{out}')").fetchall()  # noqa: S608
    result["rows"] = rows
    conn.close()
    return result


UPLOAD_CHUNK = 64 * MIB  # the default upload_chunk_max_bytes


@contextlib.contextmanager
def running_server(work: Path) -> Iterator[tuple[httpx.Client, str]]:
    """A real ``strongroom serve`` on a new home (TLS on loopback), and a client logged in
    as a tenant analyst with an API token; yields the client and the API's base URL."""
    strongroom = str(Path(sys.executable).parent / "strongroom")
    password = secrets.token_urlsafe(24)
    home = work / "home"
    env = {k: v for k, v in os.environ.items() if not k.startswith("STRONGROOM_")}
    env["STRONGROOM_RATE_LIMIT_DEFAULT"] = "100000/minute"

    def cli(*args: str, stdin: str | None = None) -> None:
        subprocess.run([strongroom, *args, "--home", str(home)], input=stdin, env=env,
                       check=True, capture_output=True, text=True)

    cli("init", "--environment", "development")
    cli("tenant", "create", "bench")
    cli("user", "create", "--tenant", "bench", "--email", "ann@bench.example", "--role",
        "analyst", "--password-stdin", stdin=password + "\n")
    server = subprocess.Popen(
        [strongroom, "serve", "--home", str(home), "--port", "0", "--operator-port", "0"],
        env=env | {"PYTHONUNBUFFERED": "1"}, stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL, text=True,
    )
    try:
        assert server.stdout is not None
        port = None
        for line in server.stdout:
            found = re.search(r"^Strongroom \(\w+\) at https://[^/]+:(\d+)/", line)
            if found:
                port = int(found[1])
                break
        assert port is not None, "strongroom serve did not announce its URL"
        tls = ssl.create_default_context(cafile=str(home / "tls" / "ca.pem"))
        base = f"https://localhost:{port}/api/v1"
        with httpx.Client(verify=tls, timeout=600) as http:
            login = http.post(f"{base}/login", json={
                "tenant": "bench", "email": "ann@bench.example", "password": password})
            login.raise_for_status()
            token = http.post(f"{base}/tokens", json={"name": "bench", "days": 1},
                              headers={"X-CSRF-Token": login.json()["csrf_token"]})
            token.raise_for_status()
            http.cookies.clear()
            http.headers["Authorization"] = f"Bearer {token.json()['token']}"
            yield http, base
    finally:
        server.terminate()
        server.wait(timeout=60)


def upload(http: httpx.Client, base: str, csv: Path) -> tuple[str, float]:
    """The upload's id and seconds, first chunk to completed upload."""
    created = http.post(f"{base}/uploads", json={
        "filename": "customers.csv", "format": "csv", "size": csv.stat().st_size, "csv": None})
    created.raise_for_status()
    upload_id = str(created.json()["id"])
    started = time.perf_counter()
    offset = 0
    for chunk in file_chunks(csv, UPLOAD_CHUNK):
        put = http.put(f"{base}/uploads/{upload_id}/chunks", params={"offset": offset},
                       content=chunk, headers={"Content-Type": "application/octet-stream"})
        put.raise_for_status()
        offset += len(chunk)
    http.post(f"{base}/uploads/{upload_id}/complete").raise_for_status()
    return upload_id, time.perf_counter() - started


def build(http: httpx.Client, base: str, upload_id: str) -> tuple[float, float]:
    """Seconds to a ready version, and the server's own MiB/s for the build."""
    dataset = http.post(f"{base}/datasets", json={"name": "customers", "key_column": "id"})
    dataset.raise_for_status()
    started = time.perf_counter()
    version = http.post(f"{base}/datasets/{dataset.json()['id']}/builds", json={
        "upload_id": upload_id, "types": None, "key_column": "id", "personal": None})
    version.raise_for_status()
    while (built := http.get(f"{base}/versions/{version.json()['id']}").json())[
            "status"] == "building":
        time.sleep(0.2)
    assert built["status"] == "ready", built["status"]
    return time.perf_counter() - started, float(built["mib_per_second"] or 0)


def over_https(csv: Path, work: Path, warm_seconds: float) -> dict[str, float]:
    """Upload, build and query through a real ``strongroom serve`` as a tenant analyst.

    The upload streams from the socket into the encrypting writer (the rate is
    the client's, at the default chunk size); the build's MiB/s is the server's
    own. Each count and cube of the battery is then an HTTP request timed end to
    end: TLS, authentication, resolving and checking the dataset's file, the
    query, the audit event. The first request misses the query cache and starts
    its load; ``warm_seconds`` later it has loaded.
    """
    result: dict[str, float] = {}
    with running_server(work) as (http, base):
        upload_id, result["upload_seconds"] = upload(http, base, csv)
        result["upload_mib_per_second"] = csv.stat().st_size / MIB / result["upload_seconds"]
        result["server_build_seconds"], result["server_build_mib_per_second"] = build(
            http, base, upload_id)

        def request(name: str) -> None:
            if name in SELECTIONS:
                body = {"dataset": "customers", "selection": SELECTIONS[name]}
                http.post(f"{base}/count", json=body).raise_for_status()
            else:
                http.post(f"{base}/cubes", json=CUBES[name]).raise_for_status()

        started = time.perf_counter()
        request("count_ranges")  # a miss: answered by scanning while the cache loads
        result["http_cold_seconds"] = time.perf_counter() - started
        time.sleep(warm_seconds)
        runs = {name: lambda name=name: request(name) for name in [*SELECTIONS, *CUBES]}
        for name, seconds in interleaved(runs, REPEATS).items():
            result[f"http_{name}_seconds"] = seconds
    return result


def run_child(
    kind: str, csv: Path, work: Path, threads: int, build_only: bool = False
) -> dict[str, Any]:
    command = [sys.executable, __file__, "--child", kind, "--csv", str(csv), "--work", str(work),
               "--threads", str(threads), *(["--build-only"] if build_only else [])]  # fmt: skip
    done = subprocess.run(command, check=True, capture_output=True, text=True)
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))


def report_build(csv_mib: float, plain: dict[str, Any], ours: dict[str, Any],
                 https: dict[str, float] | None) -> None:
    ours_rate = csv_mib / ours["build_seconds"]
    plain_rate = csv_mib / plain["build_seconds"]
    print()
    print(f"{'build':<34}{'ours (encrypted)':>18}{'plain DuckDB':>16}{'ratio':>9}")
    print(f"{'  MiB/s of CSV':<34}{ours_rate:>18.1f}{plain_rate:>16.1f}"
          f"{ours_rate / plain_rate:>8.2f}x  (target >= 0.8x)")  # fmt: skip
    print(f"{'  seconds':<34}{ours['build_seconds']:>18.2f}{plain['build_seconds']:>16.2f}")
    print(f"{'  peak RSS MiB':<34}{ours['build_peak_mib']:>18.0f}{plain['build_peak_mib']:>16.0f}")
    print(f"{'  Parquet MiB':<34}{ours['parquet_mib']:>18.1f}{plain['parquet_mib']:>16.1f}")
    if https is not None:
        print(f"{'upload over HTTPS':<34}{https['upload_mib_per_second']:>12.1f} MiB/s "
              f"({https['upload_seconds']:.1f} s, {UPLOAD_CHUNK // MIB} MiB chunks)")
        print(f"{'build in the server':<34}{https['server_build_mib_per_second']:>12.1f} MiB/s "
              f"({https['server_build_seconds']:.1f} s to ready)")


def report_queries(ours: dict[str, Any], https: dict[str, float] | None) -> None:
    print()
    print(f"query (median of {REPEATS}, interleaved, ms){'plain DuckDB':>14}{'ours cached':>13}"
          f"{'ratio':>8}{'ours lazy':>11}{'ratio':>8}")  # fmt: skip
    print(f"  cache cold load {ours['cache_load_seconds']:.2f} s, {ours['cache_mib']:.0f} MiB held "
          f"(peak RSS {ours['peak_mib_with_cache']:.0f} MiB); lazy sandbox open "
          f"{ours['lazy_open_seconds'] * 1000:.0f} ms")  # fmt: skip
    worst = 0.0
    for name, _sql, _params in battery():
        base = ours[f"plain_{name}_seconds"] * 1000
        cached = ours[f"cached_{name}_seconds"] * 1000
        lazy = ours[f"lazy_{name}_seconds"] * 1000
        answers = ours["answers"][name]
        same = all(same_answers(answers[side], answers["plain"]) for side in ("cached", "lazy"))
        worst = max(worst, cached / base)
        print(f"  {name:<38}{base:>12.1f}{cached:>13.1f}{cached / base:>7.2f}x"
              f"{lazy:>11.1f}{lazy / base:>7.2f}x{'' if same else '  ANSWERS DIFFER'}")  # fmt: skip
    print(f"  worst cached ratio {worst:.2f}x (target <= 1.25x)")
    if https is None:
        return
    print()
    print(f"over HTTPS, end to end (median of {REPEATS}, interleaved, ms; beside plain DuckDB "
          "in process)")  # fmt: skip
    print(f"  first request (cache miss, lazy scan) {https['http_cold_seconds'] * 1000:.0f}")
    for name in [*SELECTIONS, *CUBES]:
        base = ours[f"plain_{name}_seconds"] * 1000
        http = https[f"http_{name}_seconds"] * 1000
        print(f"  {name:<38}{base:>12.1f}{http:>13.1f}{http / base:>7.2f}x")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=2_000_000)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--no-https", action="store_true",
                        help="skip upload, build and queries over HTTPS (a real strongroom serve)")
    parser.add_argument("--build-only", action="store_true",
                        help="measure only the builds (e.g. peak memory on a 2 GiB CSV: "
                             "--rows 24000000 --build-only)")
    parser.add_argument("--child", choices=["ours", "plain"])
    parser.add_argument("--csv", type=Path)
    parser.add_argument("--work", type=Path)
    args = parser.parse_args()
    if args.child:
        result = (child_ours(args.csv, args.work, args.threads, args.build_only)
                  if args.child == "ours" else child_plain(args.csv, args.work, args.threads))
        print(json.dumps(result, default=str))
        return

    with tempfile.TemporaryDirectory(prefix="strongroom-bench-") as tmp:
        work = Path(tmp)
        csv = work / "customers.csv"
        started = time.perf_counter()
        generate(csv, args.rows)
        csv_mib = csv.stat().st_size / MIB
        print(f"generated {args.rows:,} rows, {csv_mib:,.1f} MiB CSV "
              f"in {time.perf_counter() - started:.1f} s; threads={args.threads}")  # fmt: skip
        plain = run_child("plain", csv, work, args.threads)
        ours = run_child("ours", csv, work, args.threads, args.build_only)
        if args.build_only:
            assert ours["rows"] == plain["rows"] == args.rows, (ours["rows"], plain["rows"])
            report_build(csv_mib, plain, ours, None)
            return
        # The server loads as the bench child did; give it that long twice, and 10 s more.
        warm = 2 * float(ours["cache_load_seconds"]) + 10
        https = None if args.no_https else over_https(csv, work, warm)

    assert ours["rows"] == plain["rows"] == args.rows, (ours["rows"], plain["rows"])
    report_build(csv_mib, plain, ours, https)
    report_queries(ours, https)


if __name__ == "__main__":
    main()
