"""Login latency, and authenticated request throughput against an unauthenticated baseline.

Initialises a real deployment (SQLite in its home by default; ``--postgres`` for a fresh
schema in the local PostgreSQL, dropped afterwards), makes a tenant and a user through
the identity services, and starts the real ``strongroom serve`` in a subprocess: real
TLS (the deployment's own CA), real Argon2id, real sessions. Then, in the same run:

* login latency: ``--logins`` sequential POST /api/v1/login over one keep-alive
  connection, each with the right password, so each costs one Argon2id verification
  (plus the session, the audit event and the throttle reset); p50 and p95 are
  reported next to the cost of one bare ``verify_password`` in this process;
* throughput: ``--threads`` clients, each on its own keep-alive connection, send GET
  /api/v1/me with a session cookie (authenticated: session look-up, user, tenant,
  allow-list, role) or GET /healthz (no authentication) for ``--seconds`` per round.
  Rounds alternate so drift hits both alike; the median round of each is reported,
  with their ratio.

    .venv/bin/python benchmarks/auth_bench.py [--logins N] [--threads T] [--seconds S]
                                              [--postgres]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import selectors
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import sqlalchemy as sa

from strongroom.config import Environment, load_settings
from strongroom.deployment import initialise, open_deployment
from strongroom.identity import passwords
from strongroom.identity import services as identity
from strongroom.identity.models import Role
from strongroom.tenancy.services import create_tenant

STRONGROOM = Path(sys.executable).with_name("strongroom")
PG_URL = os.environ.get(
    "STRONGROOM_BENCH_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)
PASSWORD = "violet kettle orbit lantern 42"  # noqa: S105 - the benchmark's own test user
EMAIL = "analyst@bench.example"
# The benchmark is one client address sending thousands of requests: lift the limits.
SETTINGS = {"rate_limit_default": "100000000/minute", "rate_limit_login": "100000000/minute"}
_PORT_LINES = {"tenant": re.compile(r"^Strongroom \(\w+\) at https://[^/]+:(\d+)/"),
               "operator": re.compile(r"^operator API at https://[^/]+:(\d+)/")}


@contextlib.contextmanager
def database(postgres: bool) -> Iterator[str]:
    """'' for SQLite in the home, or the URL of a fresh PostgreSQL schema, dropped after."""
    if not postgres:
        yield ""
        return
    admin = sa.create_engine(PG_URL, connect_args={"connect_timeout": 3})
    schema = "bench_" + uuid.uuid4().hex[:12]
    with admin.begin() as conn:
        conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    try:
        yield f"{PG_URL}?options=-csearch_path%3D{schema}"
    finally:
        with admin.begin() as conn:
            conn.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


def prepare(home: Path, database_url: str) -> None:
    initialise(home, Environment.DEVELOPMENT, database_url, extra_settings=dict(SETTINGS))
    deployment = open_deployment(load_settings(home))
    try:
        with deployment.transaction() as session:
            tenant = create_tenant(session, deployment.keys, "bench")
            identity.create_user(session, deployment.keys, tenant, EMAIL, Role.ANALYST,
                                 PASSWORD)
    finally:
        deployment.close()


@contextlib.contextmanager
def serve(home: Path) -> Iterator[int]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("STRONGROOM_")}
    process = subprocess.Popen(
        [str(STRONGROOM), "serve", "--home", str(home), "--port", "0", "--operator-port", "0"],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=env)
    assert process.stdout is not None
    ports: dict[str, int] = {}
    deadline = time.monotonic() + 60
    with selectors.DefaultSelector() as selector:
        selector.register(process.stdout, selectors.EVENT_READ)
        while len(ports) < 2 and time.monotonic() < deadline:
            if not selector.select(timeout=1):
                continue
            line = process.stdout.readline()
            if not line:
                break
            for plane, pattern in _PORT_LINES.items():
                if match := pattern.search(line):
                    ports[plane] = int(match[1])
    try:
        if "tenant" not in ports:
            raise SystemExit("strongroom serve did not start")
        yield ports["tenant"]
    finally:
        process.terminate()
        process.wait(timeout=30)
        process.stdout.close()


def client(port: int, ca: Path) -> httpx.Client:
    return httpx.Client(base_url=f"https://localhost:{port}", verify=str(ca), timeout=60)


def login(http: httpx.Client) -> None:
    response = http.post("/api/v1/login",
                         json={"tenant": "bench", "email": EMAIL, "password": PASSWORD})
    response.raise_for_status()


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


def measure_logins(port: int, ca: Path, count: int) -> list[float]:
    with client(port, ca) as http:
        login(http)  # warm up the connection and the server's first-use caches
        times = []
        for _ in range(count):
            start = time.perf_counter()
            login(http)
            times.append(time.perf_counter() - start)
    return times


def measure_argon2(count: int) -> list[float]:
    stored = passwords.hash_password(PASSWORD)
    times = []
    for _ in range(count):
        start = time.perf_counter()
        assert passwords.verify_password(stored, PASSWORD)
        times.append(time.perf_counter() - start)
    return times


def throughput(path: str, seconds: float, sessions: list[httpx.Client]) -> float:
    """Requests per second over ``seconds`` with ``threads`` keep-alive clients."""
    threads = len(sessions)
    counts = [0] * threads
    failures: list[str] = []
    start_line = threading.Barrier(threads + 1)
    stop = threading.Event()

    def work(n: int) -> None:
        http = sessions[n]
        start_line.wait()
        while not stop.is_set():
            response = http.get(path)
            if response.status_code != 200:
                failures.append(f"{response.status_code} {response.text[:200]}")
                return
            counts[n] += 1

    workers = [threading.Thread(target=work, args=(n,)) for n in range(threads)]
    for worker in workers:
        worker.start()
    start_line.wait()
    began = time.perf_counter()
    time.sleep(seconds)
    stop.set()
    for worker in workers:
        worker.join()
    elapsed = time.perf_counter() - began
    if failures:
        raise SystemExit(f"{path} failed: {failures[0]}")
    return sum(counts) / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--logins", type=int, default=20)
    parser.add_argument("--threads", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=3.0, help="per throughput round")
    parser.add_argument("--rounds", type=int, default=3, help="rounds of each kind")
    parser.add_argument("--postgres", action="store_true",
                        help="use a fresh schema in the local PostgreSQL instead of SQLite")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="auth-bench-") as tmp, \
            database(args.postgres) as url:
        home = Path(tmp) / "home"
        prepare(home, url)
        ca = home / "tls" / "ca.pem"
        kind = "PostgreSQL" if url else "SQLite"
        print(f"auth benchmark: real TLS to strongroom serve, {kind}, "
              f"Argon2id m={passwords.ARGON2_MEMORY_COST_KIB} KiB "
              f"t={passwords.ARGON2_TIME_COST} p={passwords.ARGON2_PARALLELISM}")
        argon2 = measure_argon2(args.logins)
        print(f"  Argon2id verify in-process: p50 {statistics.median(argon2) * 1000:7.1f} ms  "
              f"p95 {percentile(argon2, 0.95) * 1000:7.1f} ms")
        with serve(home) as port:
            logins = measure_logins(port, ca, args.logins)
            print(f"  login over HTTPS ({args.logins}): "
                  f"p50 {statistics.median(logins) * 1000:7.1f} ms  "
                  f"p95 {percentile(logins, 0.95) * 1000:7.1f} ms  "
                  f"max {max(logins) * 1000:7.1f} ms")
            sessions = [client(port, ca) for _ in range(args.threads)]
            try:
                for http in sessions:
                    login(http)
                    http.get("/healthz").raise_for_status()
                rates: dict[str, list[float]] = {"/healthz": [], "/api/v1/me": []}
                for _ in range(args.rounds):
                    for path, found in rates.items():
                        found.append(throughput(path, args.seconds, sessions))
            finally:
                for http in sessions:
                    http.close()
        health = statistics.median(rates["/healthz"])
        me = statistics.median(rates["/api/v1/me"])
        print(f"  throughput, {args.threads} keep-alive clients, median of {args.rounds} "
              f"rounds of {args.seconds:g} s:")
        print(f"    GET /healthz    (no authentication)   {health:8.0f} requests/s")
        print(f"    GET /api/v1/me  (session cookie)      {me:8.0f} requests/s")
        print(f"    authenticated / unauthenticated: {me / health:.2f}")


if __name__ == "__main__":
    main()
