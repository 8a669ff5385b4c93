"""A build killed with SIGKILL mid-way: recovery fails its version and clears its files.

The build runs in a real subprocess on the same deployment home and database;
it is killed while it holds a half-written (encrypted) output file. Nothing of
the dead process can clean up, so whatever recovery finds is exactly what a
crash leaves behind.
"""

from __future__ import annotations

import json
import os
import queue
import signal
import subprocess
import sys
import textwrap
import threading
from collections.abc import Callable
from pathlib import Path

import pytest
import sqlalchemy as sa

from strongroom.audit.models import AuditEvent
from strongroom.datasets import jobs, maintenance
from strongroom.datasets.models import DatasetVersion
from strongroom.deployment import Deployment
from strongroom.tenancy.models import Tenant
from tests.functional.support import cli_env, serve_subprocess
from tests.unit.datasets.test_jobs import customers_csv, new_dataset
from tests.unit.datasets.test_uploads import ANALYST, audit_tags, upload_bytes

# A guard against hanging forever, not a performance expectation.
DEADLINE_SECONDS = 120

BUILDER = textwrap.dedent("""
    import sys, time
    from pathlib import Path
    from strongroom.audit import Actor
    from strongroom.config import load_settings
    from strongroom.datasets import jobs
    from strongroom.deployment import open_deployment

    home, tenant_id, dataset_id, upload_id = sys.argv[1:]
    deployment = open_deployment(load_settings(Path(home)))

    def stall(rows, _read):
        print("building", rows, flush=True)
        time.sleep(3600)  # killed here, with its output half written

    jobs.run_build(deployment, tenant_id, dataset_id, upload_id,
                   Actor(kind="user", id="analyst-1", role="analyst"), on_progress=stall)
""")


@pytest.fixture
def tenant(make_tenant: Callable[[str], Tenant]) -> Tenant:
    return make_tenant("acme")


def first_line(process: subprocess.Popen[str]) -> str:
    lines: queue.Queue[str] = queue.Queue()
    stdout = process.stdout
    assert stdout is not None
    threading.Thread(target=lambda: lines.put(stdout.readline()), daemon=True).start()
    try:
        return lines.get(timeout=DEADLINE_SECONDS)
    except queue.Empty:
        return ""


def kill_a_build_mid_way(deployment: Deployment, tenant: Tenant) -> tuple[str, str, str]:
    """Start a build in a subprocess, check it is alive and left alone, SIGKILL it.

    Returns (dataset id, upload id, version id)."""
    upload_id = upload_bytes(deployment, tenant, customers_csv(15_000), parts=3)
    dataset_id = new_dataset(deployment, tenant)
    process = subprocess.Popen(
        [sys.executable, "-c", BUILDER, str(deployment.settings.home), tenant.id, dataset_id,
         upload_id],
        env=cli_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        line = first_line(process)
        assert line.startswith("building"), process.stderr.read() if process.stderr else ""
        with deployment.transaction() as session:
            version = session.query(DatasetVersion).one()
            version_id = version.id
            assert version.status == "building"
        names = sorted(path.name for path in jobs.builds_dir(deployment).iterdir())
        assert f"{version_id}.lock" in names
        assert any(name.endswith(".building") for name in names)  # the half-written output
        # The other process holds the build: recovery leaves a live build alone.
        assert jobs.BuildLocks.alive(deployment, version_id)
        assert maintenance.recover_interrupted_builds(deployment) == (0, 0)
        os.kill(process.pid, signal.SIGKILL)
        assert process.wait(timeout=DEADLINE_SECONDS) == -signal.SIGKILL
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        for stream in (process.stdout, process.stderr):
            if stream is not None:
                stream.close()
    assert not jobs.BuildLocks.alive(deployment, version_id)
    return dataset_id, upload_id, version_id


def assert_interrupted(deployment: Deployment, tenant: Tenant, version_id: str) -> None:
    assert list(jobs.builds_dir(deployment).iterdir()) == []
    with deployment.transaction() as session:
        version = session.get_one(DatasetVersion, version_id)
        assert version.status == "failed"
        assert version.parquet_digest is None
        assert json.loads(version.report or "{}")["error"]["type"] == "interrupted"
    assert ("system:dataset:build-interrupted", "failure") in audit_tags(deployment, tenant)


def test_a_build_killed_mid_way_is_recovered_and_the_next_build_succeeds(
    deployment: Deployment, tenant: Tenant
) -> None:
    dataset_id, upload_id, version_id = kill_a_build_mid_way(deployment, tenant)
    recovered, removed = maintenance.recover_interrupted_builds(deployment)
    assert recovered == 1
    assert removed >= 2  # the lock file and the half-written output
    assert_interrupted(deployment, tenant, version_id)

    again = jobs.run_build(deployment, tenant.id, dataset_id, upload_id, ANALYST)
    assert (again.status, again.number, again.row_count) == ("ready", 2, 15_000)
    assert list(jobs.builds_dir(deployment).iterdir()) == []


def test_serve_recovers_a_killed_build_before_it_listens(
    deployment: Deployment, tenant: Tenant, tmp_path: Path
) -> None:
    _, _, version_id = kill_a_build_mid_way(deployment, tenant)
    with serve_subprocess(deployment.settings.home, tmp_path / "serve.log"):
        # The URLs are announced after the start-up recovery ran.
        assert_interrupted(deployment, tenant, version_id)
    with deployment.transaction() as session:
        runs = session.scalars(
            sa.select(AuditEvent.details).where(AuditEvent.tag == "system:dataset:maintenance")
        ).all()
    details = json.loads(runs[0])
    assert (details["phase"], details["interrupted_builds"], details["build_files_removed"]) == (
        "start", 1, 2)
