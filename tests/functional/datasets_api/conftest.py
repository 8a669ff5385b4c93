"""A running tenant plane over real TLS, with the identity world's tenants and accounts.

Chunk bodies are capped at CHUNK_CAP and every other body at MAX_REQUEST (smaller), so
the tests can show the chunk route's own cap is the route's alone.
"""

from __future__ import annotations

import contextlib
import dataclasses
import threading
import time
from collections.abc import Iterator
from concurrent.futures import Future
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from strongroom.identity.models import Role
from strongroom.web.api.datasets import BuildJobs
from tests.conftest import database
from tests.functional.identity.support import Account, World, bearer, build_world
from tests.functional.support import RunningServer, serve_in_thread, verifying_context

CHUNK_CAP = 64 * 1024
MAX_REQUEST = 4096
# A guard against a build that never ends, not a performance expectation.
BUILD_DEADLINE_SECONDS = 60.0


@dataclasses.dataclass
class Site:
    world: World
    server: RunningServer
    app: FastAPI

    def client(self, account: Account) -> httpx.Client:
        return httpx.Client(base_url=self.server.url(""), headers=bearer(account),
                            verify=verifying_context(self.server.ca_file), timeout=30)

    def analyst(self, tenant: str = "alpha") -> Account:
        return self.world.account(tenant, Role.ANALYST)

    def objects(self, tenant_id: str) -> set[Path]:
        """Every encrypted object file of the tenant in the store."""
        root = self.world.deployment.store.root / "tenants" / tenant_id
        return {p for p in root.rglob("*") if p.is_file()} if root.exists() else set()

    @property
    def jobs(self) -> BuildJobs:
        found: BuildJobs = self.app.state.build_jobs
        return found


@pytest.fixture(
    scope="module",
    params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgresql)],
)
def site(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory,
    postgres_available: bool,
) -> Iterator[Site]:
    with database(request.param, postgres_available) as url:
        world = build_world(tmp_path_factory.mktemp("datasets") / "home", url,
                            upload_chunk_max_bytes=CHUNK_CAP, max_request_bytes=MAX_REQUEST)
        apps: list[FastAPI] = []
        try:
            with serve_in_thread(world.deployment, customise=apps.append) as server:
                yield Site(world, server, apps[0])
            # No 500 and no unhandled error, refusals and dropped connections included.
            assert "Traceback" not in server.log_text()
            assert not [r for r in server.records if r.startswith("ERROR")], server.records
        finally:
            world.deployment.close()


# -- helpers ------------------------------------------------------------------------------------

OCTETS = {"content-type": "application/octet-stream"}


def csv_rows(count: int) -> bytes:
    lines = ["id,name,joined,score"]
    lines += [f"{i},name-{i},2024-01-{i % 28 + 1:02d},{i % 7}.5" for i in range(1, count + 1)]
    return ("\n".join(lines) + "\n").encode()


def open_upload(client: httpx.Client, size: int | None = None, **extra: Any) -> dict[str, Any]:
    answer = client.post("/api/v1/uploads", json={"filename": "people.csv", "format": "csv",
                                                  "size": size, **extra})
    assert answer.status_code == 201, answer.text
    return dict(answer.json())


def put_chunk(client: httpx.Client, upload_id: str, offset: int, data: Any,
              headers: dict[str, str] | None = None) -> httpx.Response:
    return client.put(f"/api/v1/uploads/{upload_id}/chunks", params={"offset": offset},
                      content=data, headers={**OCTETS, **(headers or {})})


def upload_file(client: httpx.Client, data: bytes, parts: int = 3) -> str:
    """Upload ``data`` in ``parts`` chunks and complete it; returns the upload id."""
    upload = open_upload(client, size=len(data))
    step = -(-len(data) // parts)
    for offset in range(0, len(data), step):
        answer = put_chunk(client, upload["id"], offset, data[offset:offset + step])
        assert answer.status_code == 200, answer.text
    done = client.post(f"/api/v1/uploads/{upload['id']}/complete")
    assert done.status_code == 200, done.text
    return str(upload["id"])


def new_dataset(client: httpx.Client, name: str) -> str:
    answer = client.post("/api/v1/datasets", json={"name": name})
    assert answer.status_code == 201, answer.text
    return str(answer.json()["id"])


def start_build(client: httpx.Client, dataset_id: str, upload_id: str,
                **overrides: Any) -> httpx.Response:
    return client.post(f"/api/v1/datasets/{dataset_id}/builds",
                       json={"upload_id": upload_id, **overrides})


def wait_built(client: httpx.Client, version_id: str) -> dict[str, Any]:
    """Poll the version until its build has ended (ready, failed or cancelled)."""
    deadline = time.monotonic() + BUILD_DEADLINE_SECONDS
    while time.monotonic() < deadline:
        answer = client.get(f"/api/v1/versions/{version_id}")
        assert answer.status_code == 200, answer.text
        version = dict(answer.json())
        if version["status"] != "building":
            return version
        time.sleep(0.05)
    raise AssertionError(f"the build of {version_id} did not end")


def built_dataset(client: httpx.Client, name: str, rows: int = 20) -> tuple[str, dict[str, Any]]:
    """A dataset with one ready version; returns its id and the version."""
    dataset_id = new_dataset(client, name)
    answer = start_build(client, dataset_id, upload_file(client, csv_rows(rows)))
    assert answer.status_code == 202, answer.text
    version = wait_built(client, answer.json()["id"])
    assert version["status"] == "ready", version
    return dataset_id, version


def _hold(started: threading.Event, gate: threading.Event) -> None:
    started.set()
    gate.wait()


def hold_workers(jobs: BuildJobs, gate: threading.Event) -> list[Future[None]]:
    """Occupy every build worker until ``gate`` is set, so that a build submitted meanwhile
    stays queued: a deterministic "build still running", without timing."""
    pool = jobs.runner._pool
    started = [threading.Event() for _ in range(pool._max_workers)]
    held = [pool.submit(_hold, flag, gate) for flag in started]
    for flag in started:
        assert flag.wait(30)
    return held


@contextlib.contextmanager
def workers_held(jobs: BuildJobs) -> Iterator[threading.Event]:
    """:func:`hold_workers` for the block; the workers are released when it ends."""
    gate = threading.Event()
    try:
        held = hold_workers(jobs, gate)
        yield gate
    finally:
        gate.set()
    for future in held:
        future.result(timeout=30)
