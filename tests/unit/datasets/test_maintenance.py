"""Dataset maintenance: interrupted builds recovered, abandoned uploads swept, settings honoured.

A build whose process died is simulated here by releasing its lock (which is
what the kernel does for a dead process); tests/functional/test_build_recovery.py
kills a real build with SIGKILL.
"""

from __future__ import annotations

import datetime as dt
import json
import time
from collections.abc import Callable

import pytest
import sqlalchemy as sa
from tests.unit.datasets.test_jobs import customers_csv, new_dataset
from tests.unit.datasets.test_uploads import (
    ANALYST,
    audit_tags,
    object_files,
    send,
    start_upload,
    upload_bytes,
)

from strongroom.audit.models import AuditEvent
from strongroom.config import Settings
from strongroom.datasets import catalog, jobs, maintenance
from strongroom.datasets.errors import BuildRunning
from strongroom.datasets.models import DatasetVersion, Upload
from strongroom.db import utcnow
from strongroom.deployment import Deployment, open_deployment
from strongroom.tenancy.models import Tenant
from strongroom.tenancy.services import create_tenant


@pytest.fixture
def tenant(make_tenant: Callable[[str], Tenant]) -> Tenant:
    return make_tenant("acme")


def upload_state(deployment: Deployment, upload_id: str) -> str:
    with deployment.transaction() as session:
        return session.get_one(Upload, upload_id).status


def test_abandoned_uploads_are_aborted_with_their_parts_and_audited(
    deployment: Deployment, tenant: Tenant
) -> None:
    before = object_files(deployment, tenant)
    idle = start_upload(deployment, tenant)
    send(deployment, tenant, idle, 0, b"id,name\n1,a\n")
    complete = upload_bytes(deployment, tenant, customers_csv(5), parts=1)
    assert len(object_files(deployment, tenant)) == len(before) + 2
    now = utcnow()
    # Not idle long enough: nothing happens.
    assert maintenance.sweep_abandoned_uploads(deployment, now=now + dt.timedelta(hours=47)) == 0
    assert upload_state(deployment, idle) == "receiving"
    assert maintenance.sweep_abandoned_uploads(deployment, now=now + dt.timedelta(hours=49)) == 1
    assert upload_state(deployment, idle) == "aborted"
    assert upload_state(deployment, complete) == "complete"
    assert len(object_files(deployment, tenant)) == len(before) + 1  # the complete one's part
    assert ("system:dataset:upload-abandon", "success") in audit_tags(deployment, tenant)
    assert maintenance.sweep_abandoned_uploads(deployment, now=now + dt.timedelta(hours=99)) == 0


def test_a_recent_chunk_keeps_an_old_upload_alive(deployment: Deployment, tenant: Tenant) -> None:
    upload_id = start_upload(deployment, tenant)
    with deployment.transaction() as session:
        session.get_one(Upload, upload_id).created_at = utcnow() - dt.timedelta(days=10)
    send(deployment, tenant, upload_id, 0, b"id\n1\n")
    assert maintenance.sweep_abandoned_uploads(deployment, dt.timedelta(hours=1)) == 0
    assert upload_state(deployment, upload_id) == "receiving"


@pytest.fixture
def short_settings(make_home: Callable[..., Settings], db_url: str) -> Settings:
    return make_home(database_url=db_url, upload_abandon_hours=1, dataset_recovery_days=3)


def test_the_settings_set_the_idle_time_and_the_recovery_window(
    short_settings: Settings,
) -> None:
    deployment = open_deployment(short_settings)
    try:
        with deployment.transaction() as session:
            tenant = create_tenant(session, deployment.keys, "acme")
        upload_id = start_upload(deployment, tenant)
        send(deployment, tenant, upload_id, 0, b"id\n1\n")
        swept = maintenance.sweep_abandoned_uploads(deployment,
                                                    now=utcnow() + dt.timedelta(minutes=61))
        assert swept == 1
        dataset_id = new_dataset(deployment, tenant)
        moment = utcnow()
        with deployment.transaction() as session:
            deleted = catalog.delete_dataset(session, deployment, tenant, ANALYST, dataset_id,
                                             confirm_name="customers", now=moment)
            assert deleted.purge_after == moment + dt.timedelta(days=3)
        run = maintenance.run_maintenance(deployment, now=moment + dt.timedelta(days=3))
        assert run.purged_datasets == 1
    finally:
        deployment.close()


def version_of(deployment: Deployment, version_id: str) -> DatasetVersion:
    with deployment.transaction() as session:
        return session.get_one(DatasetVersion, version_id)


def test_a_build_whose_process_died_is_marked_interrupted_and_the_next_build_runs(
    deployment: Deployment, tenant: Tenant
) -> None:
    upload_id = upload_bytes(deployment, tenant, customers_csv(50), parts=1)
    dataset_id = new_dataset(deployment, tenant)
    with deployment.transaction() as session:
        version_id = jobs.start_build(session, deployment, tenant, ANALYST, dataset_id,
                                      upload_id).id
    leftover = jobs.builds_dir(deployment) / f".{version_id}.parquet.0123.building"
    leftover.write_bytes(b"unfinished ciphertext")
    # Its process (this one) holds the lock: the build is alive and left alone.
    assert maintenance.recover_interrupted_builds(deployment) == (0, 0)
    assert version_of(deployment, version_id).status == "building"
    assert leftover.exists()
    with pytest.raises(BuildRunning):
        jobs.run_build(deployment, tenant.id, dataset_id, upload_id, ANALYST)

    jobs.BuildLocks.release(deployment, version_id)  # what the kernel does when it dies
    assert maintenance.recover_interrupted_builds(deployment) == (1, 1)
    version = version_of(deployment, version_id)
    assert version.status == "failed"
    assert version.finished_at is not None
    assert json.loads(version.report or "{}")["error"]["type"] == "interrupted"
    assert list(jobs.builds_dir(deployment).iterdir()) == []
    assert ("system:dataset:build-interrupted", "failure") in audit_tags(deployment, tenant)
    assert maintenance.recover_interrupted_builds(deployment) == (0, 0)

    again = jobs.run_build(deployment, tenant.id, dataset_id, upload_id, ANALYST)
    assert (again.status, again.number, again.row_count) == ("ready", 2, 50)
    assert list(jobs.builds_dir(deployment).iterdir()) == []


def test_a_finished_build_leaves_no_lock_or_output_behind(
    deployment: Deployment, tenant: Tenant
) -> None:
    upload_id = upload_bytes(deployment, tenant, customers_csv(20), parts=1)
    version = jobs.run_build(deployment, tenant.id, new_dataset(deployment, tenant), upload_id,
                             ANALYST)
    assert version.status == "ready"
    assert list(jobs.builds_dir(deployment).iterdir()) == []
    assert not jobs.BuildLocks.alive(deployment, version.id)


def test_start_up_recovery_is_always_audited_and_the_thread_runs_and_stops(
    deployment: Deployment,
) -> None:
    run = maintenance.recover_at_start(deployment)
    assert not run.changed()
    with deployment.transaction() as session:
        details = session.scalars(
            sa.select(AuditEvent.details).where(AuditEvent.tag == "system:dataset:maintenance")
        ).all()
    assert len(details) == 1
    assert json.loads(details[0])["phase"] == "start"
    thread = maintenance.start_maintenance(deployment, interval=0.05)
    try:
        deadline = time.monotonic() + 30
        while thread.runs < 2 and time.monotonic() < deadline:
            time.sleep(0.01)
    finally:
        thread.stop()
    assert thread.runs >= 2
