"""The dataset catalog: datasets, their versions, soft delete, restore, purge, build locks.

Delete is soft: a deleted dataset keeps its versions and can be restored
within a recovery window (the setting dataset_recovery_days); after that
:func:`purge_expired` removes its rows and its versions' encrypted Parquet files
(whose data keys live, wrapped, in the files' own footers, so they go with them).
"""

from __future__ import annotations

import datetime as dt
import json
import re
import uuid
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from strongroom.audit import Actor, EventTag, Sensitive
from strongroom.datasets.errors import (
    BadDatasetName,
    BuildRunning,
    DatasetExists,
    DatasetNotFound,
    DeleteNotConfirmed,
    RecoveryWindowPassed,
    VersionNotFound,
)
from strongroom.datasets.models import Dataset, DatasetVersion, VersionStatus
from strongroom.db import utcnow
from strongroom.deployment import Deployment
from strongroom.storage.interfaces import BlobRef
from strongroom.tenancy.models import Tenant
from strongroom.tenancy.services import require_active

# The default of the setting dataset_recovery_days, which delete_dataset uses when no
# window is given; kept for callers that name it.
RECOVERY_WINDOW = dt.timedelta(days=14)
NAME_MAX = 100
_ID = re.compile(r"[0-9a-f]{32}")


def _clean_name(name: str) -> str:
    clean = name.strip()
    if not clean or len(clean) > NAME_MAX or not clean.isprintable():
        raise BadDatasetName(f"a dataset name must be 1-{NAME_MAX} printable characters")
    return clean


def _audit(
    session: Session, deployment: Deployment, tag: EventTag, actor: Actor, dataset: Dataset,
    **details: Any,
) -> None:
    deployment.audit.record_event(
        session, tag, actor=actor, tenant=dataset.tenant_id, target=dataset.id, details=details,
    )


def _live_name_taken(session: Session, tenant_id: str, name: str) -> bool:
    return session.scalar(
        sa.select(Dataset.id).where(
            Dataset.tenant_id == tenant_id, Dataset.name == name, Dataset.deleted_at.is_(None)
        )
    ) is not None


def create_dataset(
    session: Session, deployment: Deployment, tenant: Tenant, actor: Actor, name: str,
    *, key_column: str | None = None,
) -> Dataset:
    """A new, empty dataset; its name is unique among the tenant's datasets not deleted."""
    require_active(tenant)
    clean = _clean_name(name)
    if key_column is not None and not (0 < len(key_column) <= 200):
        raise BadDatasetName("the key column name must be 1-200 characters")
    if _live_name_taken(session, tenant.id, clean):
        raise DatasetExists("a dataset with this name already exists")
    dataset = Dataset(
        id=uuid.uuid4().hex, tenant_id=tenant.id, name=clean, key_column=key_column,
        build_locked=False, created_by=actor.id,
    )
    session.add(dataset)
    _audit(session, deployment, EventTag.DATASET_CREATE, actor, dataset, name=Sensitive(clean))
    return dataset


def list_datasets(session: Session, tenant: Tenant, *, deleted: bool = False) -> list[Dataset]:
    """The tenant's datasets by name: live ones, or with ``deleted`` those awaiting purge."""
    condition = Dataset.deleted_at.is_not(None) if deleted else Dataset.deleted_at.is_(None)
    stmt = (
        sa.select(Dataset)
        .where(Dataset.tenant_id == tenant.id, condition)
        .order_by(Dataset.name, Dataset.id)
    )
    return list(session.scalars(stmt))


def get_dataset(
    session: Session, tenant: Tenant, dataset_id: str, *, include_deleted: bool = False,
    lock: bool = False,
) -> Dataset:
    """The tenant's dataset; another tenant's (or a deleted one) is simply not found."""
    if not _ID.fullmatch(dataset_id):
        raise DatasetNotFound("no such dataset")
    stmt = sa.select(Dataset).where(Dataset.id == dataset_id, Dataset.tenant_id == tenant.id)
    if lock:
        stmt = stmt.with_for_update()
    dataset = session.scalar(stmt)
    if dataset is None or (dataset.deleted_at is not None and not include_deleted):
        raise DatasetNotFound("no such dataset")
    return dataset


def list_versions(session: Session, tenant: Tenant, dataset_id: str) -> list[DatasetVersion]:
    """The dataset's versions, oldest first."""
    dataset = get_dataset(session, tenant, dataset_id)
    stmt = (
        sa.select(DatasetVersion)
        .where(DatasetVersion.dataset_id == dataset.id, DatasetVersion.tenant_id == tenant.id)
        .order_by(DatasetVersion.number)
    )
    return list(session.scalars(stmt))


def get_version(session: Session, tenant: Tenant, version_id: str) -> DatasetVersion:
    """The tenant's dataset version; another tenant's is simply not found."""
    if not _ID.fullmatch(version_id):
        raise VersionNotFound("no such dataset version")
    version = session.get(DatasetVersion, version_id)
    if version is None or version.tenant_id != tenant.id:
        raise VersionNotFound("no such dataset version")
    return version


def latest_ready_version(session: Session, tenant: Tenant, dataset_id: str) -> DatasetVersion:
    """The newest version that finished building."""
    dataset = get_dataset(session, tenant, dataset_id)
    version = session.scalar(
        sa.select(DatasetVersion)
        .where(DatasetVersion.dataset_id == dataset.id,
               DatasetVersion.status == VersionStatus.READY.value)
        .order_by(DatasetVersion.number.desc())
        .limit(1)
    )
    if version is None:
        raise VersionNotFound("the dataset has no ready version yet")
    return version


def version_blob(version: DatasetVersion) -> BlobRef | None:
    """Where the version's encrypted Parquet file is in the object store, once it is ready."""
    if version.parquet_digest is None or version.parquet_size is None:
        return None
    return BlobRef(version.tenant_id, version.parquet_digest, version.parquet_size)


def version_report(version: DatasetVersion) -> dict[str, Any]:
    """The stored build report (empty while building)."""
    return dict(json.loads(version.report)) if version.report else {}


def _building(session: Session, dataset: Dataset) -> bool:
    return session.scalar(
        sa.select(DatasetVersion.id).where(
            DatasetVersion.dataset_id == dataset.id,
            DatasetVersion.status == VersionStatus.BUILDING.value,
        ).limit(1)
    ) is not None


def delete_dataset(
    session: Session, deployment: Deployment, tenant: Tenant, actor: Actor, dataset_id: str,
    *, confirm_name: str, now: dt.datetime | None = None, window: dt.timedelta | None = None,
) -> Dataset:
    """Soft-delete a dataset; its name must be typed back. Restorable for ``window``
    (default: the setting dataset_recovery_days)."""
    require_active(tenant)
    dataset = get_dataset(session, tenant, dataset_id, lock=True)
    if confirm_name != dataset.name:
        raise DeleteNotConfirmed(
            "the name typed back does not match the dataset's; nothing was deleted",
            hint="type the dataset's name exactly",
        )
    if _building(session, dataset):
        raise BuildRunning("a build of this dataset is running", hint="cancel it first")
    moment = now or utcnow()
    dataset.deleted_at = moment
    if window is None:
        window = dt.timedelta(days=deployment.settings.dataset_recovery_days)
    dataset.purge_after = moment + window
    _audit(session, deployment, EventTag.DATASET_DELETE, actor, dataset,
           purge_after=dataset.purge_after.isoformat())
    return dataset


def restore_dataset(
    session: Session, deployment: Deployment, tenant: Tenant, actor: Actor, dataset_id: str,
    *, now: dt.datetime | None = None,
) -> Dataset:
    """Bring back a soft-deleted dataset within its recovery window."""
    require_active(tenant)
    dataset = get_dataset(session, tenant, dataset_id, include_deleted=True, lock=True)
    if dataset.deleted_at is None or dataset.purge_after is None:
        raise DatasetNotFound("no such deleted dataset")
    if (now or utcnow()) >= dataset.purge_after:
        raise RecoveryWindowPassed("the recovery window of this dataset has passed")
    if _live_name_taken(session, tenant.id, dataset.name):
        raise DatasetExists(
            "another dataset now has this name", hint="rename or delete the other dataset first"
        )
    dataset.deleted_at = None
    dataset.purge_after = None
    _audit(session, deployment, EventTag.DATASET_RESTORE, actor, dataset)
    return dataset


def purge_expired(
    deployment: Deployment, *, now: dt.datetime | None = None, actor: Actor | None = None
) -> int:
    """Remove datasets deleted longer than their recovery window: rows, then Parquet files.

    The rows go in one audited transaction; the files after it commits (a crash
    in between leaves only unreferenced ciphertext). Returns how many datasets went.
    """
    moment = now or utcnow()
    who = actor or Actor.system()
    blobs: list[BlobRef] = []
    with deployment.transaction() as session:
        expired = list(session.scalars(
            sa.select(Dataset).where(Dataset.deleted_at.is_not(None), Dataset.purge_after <= moment)
        ))
        for dataset in expired:
            versions = list(session.scalars(
                sa.select(DatasetVersion).where(DatasetVersion.dataset_id == dataset.id)
            ))
            blobs += [ref for ref in map(version_blob, versions) if ref is not None]
            for version in versions:
                session.delete(version)
            session.flush()
            _audit(session, deployment, EventTag.DATASET_PURGE, who, dataset,
                   versions=len(versions))
            session.delete(dataset)
    for ref in blobs:
        deployment.store.delete(ref)
    return len(expired)


def _set_lock(
    session: Session, deployment: Deployment, tenant: Tenant, actor: Actor, dataset_id: str,
    locked: bool,
) -> Dataset:
    require_active(tenant)
    dataset = get_dataset(session, tenant, dataset_id, lock=True)
    if dataset.build_locked != locked:
        dataset.build_locked = locked
        tag = EventTag.DATASET_LOCK if locked else EventTag.DATASET_UNLOCK
        _audit(session, deployment, tag, actor, dataset)
    return dataset


def lock_builds(
    session: Session, deployment: Deployment, tenant: Tenant, actor: Actor, dataset_id: str
) -> Dataset:
    """Prevent builds of the dataset until unlocked ("prevent build")."""
    return _set_lock(session, deployment, tenant, actor, dataset_id, True)


def unlock_builds(
    session: Session, deployment: Deployment, tenant: Tenant, actor: Actor, dataset_id: str
) -> Dataset:
    """Allow builds of the dataset again."""
    return _set_lock(session, deployment, tenant, actor, dataset_id, False)
