"""Build jobs: upload → encrypted Parquet version, reports, failures, cancel, locks, canaries."""

from __future__ import annotations

import base64
import json
import os
from collections.abc import Callable
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import sqlalchemy as sa
from tests.unit.datasets.test_uploads import ANALYST, audit_tags, object_files, upload_bytes

from strongroom.config import Settings
from strongroom.crypto.parquet import ParquetCrypto
from strongroom.datasets import catalog, jobs
from strongroom.datasets.errors import BuildNotRunning, DatasetLocked, UploadNotReceiving
from strongroom.datasets.models import DatasetVersion
from strongroom.deployment import Deployment
from strongroom.tenancy.models import Tenant

CANARY = "canary-5e8a0c@example.org"


def customers_csv(rows: int = 200) -> bytes:
    lines = ["id,email,joined"]
    lines += [f"{i},{CANARY}-{i},2024-02-{i % 28 + 1:02d}" for i in range(1, rows + 1)]
    return ("\n".join(lines) + "\n").encode()


@pytest.fixture
def tenant(make_tenant: Callable[[str], Tenant]) -> Tenant:
    return make_tenant("acme")


def new_dataset(deployment: Deployment, tenant: Tenant, name: str = "customers") -> str:
    with deployment.transaction() as session:
        return catalog.create_dataset(session, deployment, tenant, ANALYST, name,
                                      key_column="id").id


def read_version(deployment: Deployment, tenant: Tenant, version: DatasetVersion) -> pa.Table:
    ref = catalog.version_blob(version)
    assert ref is not None
    data = b"".join(deployment.store.read(ref))
    with deployment.transaction() as session:
        ring = deployment.keys.tenant_ring(session, tenant.id)
    return pq.read_table(
        pa.BufferReader(data), decryption_properties=ParquetCrypto(ring).decryption_properties()
    )


def test_a_small_csv_upload_builds_into_a_ready_encrypted_version(
    deployment: Deployment, tenant: Tenant
) -> None:
    data = customers_csv()
    upload_id = upload_bytes(deployment, tenant, data, parts=3)
    dataset_id = new_dataset(deployment, tenant)
    seen: list[int] = []
    version = jobs.run_build(deployment, tenant.id, dataset_id, upload_id, ANALYST,
                             on_progress=lambda rows, _read: seen.append(rows))
    assert (version.status, version.number, version.row_count, version.rejected_count) == (
        "ready", 1, 200, 0)
    assert version.progress_rows == 200
    assert version.progress_bytes == len(data)
    assert seen
    assert seen[-1] == 200
    assert version.finished_at is not None
    assert version.built_by == ANALYST.id
    schema = json.loads(version.schema_json or "[]")
    assert [(c["name"], c["type"]) for c in schema] == [
        ("id", "integer"), ("email", "text"), ("joined", "date")]

    table = read_version(deployment, tenant, version)
    expected = [line.split(",") for line in data.decode().splitlines()[1:]]
    got = table.to_pylist()
    assert [[str(r["id"]), r["email"], r["joined"].isoformat()] for r in got] == expected
    ref = catalog.version_blob(version)
    assert ref is not None
    with pytest.raises(OSError, match=r"(?i)encrypt"):  # no keys, no footer
        pq.read_table(pa.BufferReader(b"".join(deployment.store.read(ref))))
    assert not any((deployment.store.root / ".incoming").iterdir())
    with deployment.transaction() as session:
        assert [v.id for v in catalog.list_versions(session, tenant, dataset_id)] == [version.id]
        assert catalog.latest_ready_version(session, tenant, dataset_id).id == version.id
    tags = audit_tags(deployment, tenant)
    assert ("user:dataset:build", "success") in tags
    assert ("user:dataset:build-finish", "success") in tags


def test_rejected_rows_are_reported_with_numbers_and_reasons_without_values(
    deployment: Deployment, tenant: Tenant
) -> None:
    data = (
        "id,email,joined\n1,a@x.org,2024-01-01\n2,b@x.org,not-a-date-secret\n"
        "3,c@x.org,2024-01-03\n4,ragged\n5,e@x.org,2024-01-05\n"
        + "".join(f"{i},z@x.org,2024-03-01\n" for i in range(6, 400))
    ).encode()
    upload_id = upload_bytes(deployment, tenant, data, parts=1)
    version = jobs.run_build(deployment, tenant.id, new_dataset(deployment, tenant), upload_id,
                             ANALYST)
    assert (version.status, version.row_count, version.rejected_count) == ("ready", 397, 2)
    report = catalog.version_report(version)
    assert [r["row"] for r in report["rejections"]] == [2, 4]
    assert "date" in report["rejections"][0]["reason"]
    assert "column count" in report["rejections"][1]["reason"]
    assert "not-a-date-secret" not in (version.report or "")
    assert report["rejections_truncated"] is False


def test_a_failing_build_leaves_a_failed_version_and_no_object(
    deployment: Deployment, tenant: Tenant
) -> None:
    upload_id = upload_bytes(deployment, tenant, b"id,email\n", parts=1)
    dataset_id = new_dataset(deployment, tenant)
    files = object_files(deployment, tenant)
    version = jobs.run_build(deployment, tenant.id, dataset_id, upload_id, ANALYST)
    assert version.status == "failed"
    assert version.parquet_digest is None
    assert catalog.version_blob(version) is None
    assert catalog.version_report(version)["error"]["type"] == "dataset-no-rows"
    assert object_files(deployment, tenant) == files
    assert not any((deployment.store.root / ".incoming").iterdir())
    assert ("user:dataset:build-finish", "failure") in audit_tags(deployment, tenant)
    with deployment.transaction() as session, pytest.raises(Exception, match="ready version"):
        catalog.latest_ready_version(session, tenant, dataset_id)


def test_a_build_needs_a_complete_upload(deployment: Deployment, tenant: Tenant) -> None:
    from tests.unit.datasets.test_uploads import start_upload

    upload_id = start_upload(deployment, tenant)
    with pytest.raises(UploadNotReceiving):
        jobs.run_build(deployment, tenant.id, new_dataset(deployment, tenant), upload_id, ANALYST)
    with deployment.transaction() as session:
        assert session.scalar(sa.select(sa.func.count()).select_from(DatasetVersion)) == 0


def test_cancel_stops_the_running_build_and_leaves_nothing(
    deployment: Deployment, tenant: Tenant
) -> None:
    upload_id = upload_bytes(deployment, tenant, customers_csv(), parts=2)
    dataset_id = new_dataset(deployment, tenant)
    files = object_files(deployment, tenant)
    with deployment.transaction() as session:
        version_id = jobs.start_build(session, deployment, tenant, ANALYST, dataset_id,
                                      upload_id).id

    def cancel_after_first_block(_rows: int, _read: int) -> None:
        with deployment.transaction() as session:
            jobs.cancel_build(session, deployment, tenant, ANALYST, version_id)

    version = jobs.execute_build(deployment, version_id, on_progress=cancel_after_first_block)
    assert version.status == "cancelled"
    assert version.cancel_requested
    assert version.parquet_digest is None
    assert version.row_count is None
    assert object_files(deployment, tenant) == files
    assert not any((deployment.store.root / ".incoming").iterdir())
    with deployment.transaction() as session, pytest.raises(BuildNotRunning):
        jobs.cancel_build(session, deployment, tenant, ANALYST, version_id)
    tags = audit_tags(deployment, tenant)
    assert ("user:dataset:build-cancel", "success") in tags
    assert ("user:dataset:build-finish", "failure") in tags


def test_a_locked_dataset_refuses_builds_and_the_denial_is_audited(
    deployment: Deployment, tenant: Tenant
) -> None:
    upload_id = upload_bytes(deployment, tenant, customers_csv(20), parts=1)
    dataset_id = new_dataset(deployment, tenant)
    with deployment.transaction() as session:
        catalog.lock_builds(session, deployment, tenant, ANALYST, dataset_id)
    with pytest.raises(DatasetLocked):
        jobs.run_build(deployment, tenant.id, dataset_id, upload_id, ANALYST)
    with deployment.transaction() as session:
        assert catalog.list_versions(session, tenant, dataset_id) == []
    assert ("user:dataset:build", "denied") in audit_tags(deployment, tenant)
    with deployment.transaction() as session:
        catalog.unlock_builds(session, deployment, tenant, ANALYST, dataset_id)
    version = jobs.run_build(deployment, tenant.id, dataset_id, upload_id, ANALYST)
    assert version.status == "ready"
    tags = [tag for tag, _ in audit_tags(deployment, tenant)]
    assert "user:dataset:lock" in tags
    assert "user:dataset:unlock" in tags


def test_another_tenant_cannot_build_from_or_into_what_is_not_theirs(
    deployment: Deployment, make_tenant: Callable[[str], Tenant], tenant: Tenant
) -> None:
    other = make_tenant("globex")
    upload_id = upload_bytes(deployment, tenant, customers_csv(5), parts=1)
    dataset_id = new_dataset(deployment, tenant)
    other_dataset = new_dataset(deployment, other)
    with pytest.raises(Exception, match="no such upload"):
        jobs.run_build(deployment, other.id, other_dataset, upload_id, ANALYST)
    with pytest.raises(Exception, match="no such dataset"):
        jobs.run_build(deployment, other.id, dataset_id, upload_id, ANALYST)
    version = jobs.run_build(deployment, tenant.id, dataset_id, upload_id, ANALYST)
    with deployment.transaction() as session, pytest.raises(Exception, match="no such"):
        jobs.cancel_build(session, deployment, other, ANALYST, version.id)


def test_the_job_runner_builds_in_the_background_with_progress_on_the_row(
    deployment: Deployment, tenant: Tenant
) -> None:
    upload_id = upload_bytes(deployment, tenant, customers_csv(), parts=2)
    dataset_id = new_dataset(deployment, tenant)
    runner = jobs.JobRunner(deployment)
    try:
        version_id, future = runner.submit(tenant.id, dataset_id, upload_id, ANALYST)
        done = future.result(timeout=120)
    finally:
        runner.shutdown()
    assert done.id == version_id
    assert done.status == "ready"
    with deployment.transaction() as session:
        row = session.get_one(DatasetVersion, version_id)
    assert (row.progress_rows, row.row_count) == (200, 200)


def _files(root: Path) -> list[Path]:
    return [Path(d) / n for d, _, names in os.walk(root) for n in names
            if (Path(d) / n).is_file() and not (Path(d) / n).is_symlink()]


def test_no_plaintext_canary_anywhere_in_the_home_after_upload_build_delete_restore(
    deployment: Deployment, settings: Settings, tenant: Tenant
) -> None:
    upload_id = upload_bytes(deployment, tenant, customers_csv(2000), parts=4)
    dataset_id = new_dataset(deployment, tenant)
    version = jobs.run_build(deployment, tenant.id, dataset_id, upload_id, ANALYST)
    assert version.status == "ready"
    assert CANARY in read_version(deployment, tenant, version).column("email")[0].as_py()
    with deployment.transaction() as session:
        catalog.delete_dataset(session, deployment, tenant, ANALYST, dataset_id,
                               confirm_name="customers")
    with deployment.transaction() as session:
        catalog.restore_dataset(session, deployment, tenant, ANALYST, dataset_id)
    needles = [CANARY.encode(), base64.b64encode(CANARY.encode())]
    files = _files(settings.home)
    assert len(files) > 5
    found = [p for p in files if any(n in p.read_bytes() for n in needles)]
    assert found == []
