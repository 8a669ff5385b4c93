"""The catalog: datasets per tenant, soft delete with the name typed back, restore, purge."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable

import pytest
import sqlalchemy as sa
from tests.unit.datasets.test_jobs import customers_csv
from tests.unit.datasets.test_uploads import ANALYST, audit_tags, upload_bytes

from strongroom.datasets import catalog, jobs
from strongroom.datasets.errors import (
    BadDatasetName,
    BuildRunning,
    DatasetExists,
    DatasetNotFound,
    DeleteNotConfirmed,
    RecoveryWindowPassed,
)
from strongroom.datasets.models import Dataset, DatasetVersion
from strongroom.deployment import Deployment
from strongroom.tenancy.models import Tenant

T0 = dt.datetime(2026, 11, 1, 12, 0, tzinfo=dt.UTC)


@pytest.fixture
def tenant(make_tenant: Callable[[str], Tenant]) -> Tenant:
    return make_tenant("acme")


def create(deployment: Deployment, tenant: Tenant, name: str = "customers") -> str:
    with deployment.transaction() as session:
        return catalog.create_dataset(session, deployment, tenant, ANALYST, name).id


def delete(deployment: Deployment, tenant: Tenant, dataset_id: str, confirm: str,
           now: dt.datetime = T0, window: dt.timedelta | None = None) -> Dataset:
    with deployment.transaction() as session:
        return catalog.delete_dataset(session, deployment, tenant, ANALYST, dataset_id,
                                      confirm_name=confirm, now=now, window=window)


def test_datasets_are_listed_per_tenant_and_names_are_unique(
    deployment: Deployment, make_tenant: Callable[[str], Tenant], tenant: Tenant
) -> None:
    other = make_tenant("globex")
    ours = create(deployment, tenant, "customers")
    create(deployment, tenant, "accounts")
    theirs = create(deployment, other, "customers")  # the same name in another tenant is fine
    with pytest.raises(DatasetExists):
        create(deployment, tenant, " customers ")
    for bad in ("", " ", "x" * 101, "tab\tname"):
        with pytest.raises(BadDatasetName):
            create(deployment, tenant, bad)
    with deployment.transaction() as session:
        assert [d.name for d in catalog.list_datasets(session, tenant)] == [
            "accounts", "customers"]
        assert catalog.get_dataset(session, tenant, ours).name == "customers"
        with pytest.raises(DatasetNotFound):
            catalog.get_dataset(session, tenant, theirs)
        with pytest.raises(DatasetNotFound):
            catalog.get_dataset(session, other, ours)
        with pytest.raises(DatasetNotFound):
            catalog.list_versions(session, other, ours)
        with pytest.raises(DatasetNotFound):
            catalog.get_dataset(session, tenant, "../../etc")
    assert [tag for tag, _ in audit_tags(deployment, tenant)] == ["user:dataset:create"] * 2


def test_delete_needs_the_name_typed_back_and_restore_brings_it_back(
    deployment: Deployment, tenant: Tenant
) -> None:
    dataset_id = create(deployment, tenant)
    with pytest.raises(DeleteNotConfirmed) as refused:
        delete(deployment, tenant, dataset_id, "Customers")
    assert refused.value.status == 422
    with deployment.transaction() as session:
        assert catalog.get_dataset(session, tenant, dataset_id).deleted_at is None

    deleted = delete(deployment, tenant, dataset_id, "customers")
    assert deleted.purge_after == T0 + dt.timedelta(days=14)
    with deployment.transaction() as session:
        assert catalog.list_datasets(session, tenant) == []
        assert [d.id for d in catalog.list_datasets(session, tenant, deleted=True)] == [dataset_id]
        with pytest.raises(DatasetNotFound):
            catalog.get_dataset(session, tenant, dataset_id)
    with deployment.transaction() as session:
        restored = catalog.restore_dataset(session, deployment, tenant, ANALYST, dataset_id,
                                           now=T0 + dt.timedelta(days=13))
    assert restored.deleted_at is None
    assert restored.purge_after is None
    with deployment.transaction() as session:
        assert catalog.get_dataset(session, tenant, dataset_id).name == "customers"
    tags = [tag for tag, _ in audit_tags(deployment, tenant)]
    assert tags == ["user:dataset:create", "user:dataset:delete", "user:dataset:restore"]


def test_restore_refuses_after_the_window_or_when_the_name_was_taken(
    deployment: Deployment, tenant: Tenant
) -> None:
    first = create(deployment, tenant)
    delete(deployment, tenant, first, "customers", window=dt.timedelta(days=3))
    with deployment.transaction() as session, pytest.raises(RecoveryWindowPassed):
        catalog.restore_dataset(session, deployment, tenant, ANALYST, first,
                                now=T0 + dt.timedelta(days=3))
    create(deployment, tenant)  # the name is free again once the first is deleted
    with deployment.transaction() as session, pytest.raises(DatasetExists):
        catalog.restore_dataset(session, deployment, tenant, ANALYST, first,
                                now=T0 + dt.timedelta(days=1))


def test_purge_removes_only_datasets_past_their_window_with_their_parquet_files(
    deployment: Deployment, make_tenant: Callable[[str], Tenant], tenant: Tenant
) -> None:
    upload_id = upload_bytes(deployment, tenant, customers_csv(50), parts=1)
    doomed = create(deployment, tenant, "doomed")
    kept = create(deployment, tenant, "kept")
    version = jobs.run_build(deployment, tenant.id, doomed, upload_id, ANALYST)
    other_version = jobs.run_build(deployment, tenant.id, kept, upload_id, ANALYST)
    blob, other_blob = catalog.version_blob(version), catalog.version_blob(other_version)
    assert blob is not None
    assert other_blob is not None
    delete(deployment, tenant, doomed, "doomed")
    delete(deployment, tenant, kept, "kept", now=T0 + dt.timedelta(days=10))

    assert catalog.purge_expired(deployment, now=T0 + dt.timedelta(days=13)) == 0
    assert b"".join(deployment.store.read(blob))
    assert catalog.purge_expired(deployment, now=T0 + dt.timedelta(days=14)) == 1
    with deployment.transaction() as session:
        assert session.get(Dataset, doomed) is None
        assert session.get(DatasetVersion, version.id) is None
        assert session.get(Dataset, kept) is not None
        assert session.scalar(sa.select(sa.func.count()).select_from(DatasetVersion)) == 1
        with pytest.raises(DatasetNotFound):
            catalog.restore_dataset(session, deployment, tenant, ANALYST, doomed)
    with pytest.raises(Exception, match="missing"):
        b"".join(deployment.store.read(blob))
    assert b"".join(deployment.store.read(other_blob))
    assert ("system:dataset:purge", "success") in audit_tags(deployment, tenant)


def test_build_locks_are_per_dataset_and_audited_once_per_change(
    deployment: Deployment, make_tenant: Callable[[str], Tenant], tenant: Tenant
) -> None:
    dataset_id = create(deployment, tenant)
    other = make_tenant("globex")
    with deployment.transaction() as session:
        assert catalog.lock_builds(session, deployment, tenant, ANALYST, dataset_id).build_locked
        catalog.lock_builds(session, deployment, tenant, ANALYST, dataset_id)
        with pytest.raises(DatasetNotFound):
            catalog.unlock_builds(session, deployment, other, ANALYST, dataset_id)
    with deployment.transaction() as session:
        assert catalog.get_dataset(session, tenant, dataset_id).build_locked
        unlocked = catalog.unlock_builds(session, deployment, tenant, ANALYST, dataset_id)
        assert not unlocked.build_locked
    tags = [tag for tag, _ in audit_tags(deployment, tenant)]
    assert tags == ["user:dataset:create", "user:dataset:lock", "user:dataset:unlock"]


def test_a_dataset_with_a_running_build_cannot_be_deleted(
    deployment: Deployment, tenant: Tenant
) -> None:
    upload_id = upload_bytes(deployment, tenant, customers_csv(5), parts=1)
    dataset_id = create(deployment, tenant)
    with deployment.transaction() as session:
        jobs.start_build(session, deployment, tenant, ANALYST, dataset_id, upload_id)
    with pytest.raises(BuildRunning):
        delete(deployment, tenant, dataset_id, "customers")
    with pytest.raises(BuildRunning):
        jobs.run_build(deployment, tenant.id, dataset_id, upload_id, ANALYST)


def test_purging_a_tenant_takes_its_uploads_datasets_and_versions(
    deployment: Deployment, tenant: Tenant
) -> None:
    from strongroom.datasets.models import Upload, UploadPart
    from strongroom.tenancy.deletion import purge_tenant

    upload_id = upload_bytes(deployment, tenant, customers_csv(5), parts=2)
    jobs.run_build(deployment, tenant.id, create(deployment, tenant), upload_id, ANALYST)
    with deployment.transaction() as session:
        purge_tenant(session, session.get_one(Tenant, tenant.id))
    with deployment.transaction() as session:
        for model in (Upload, UploadPart, Dataset, DatasetVersion):
            assert session.scalar(sa.select(sa.func.count()).select_from(model)) == 0
