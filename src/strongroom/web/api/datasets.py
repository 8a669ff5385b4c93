"""Datasets and their versions over HTTPS: catalog, soft delete and restore, build locks,
and builds running in the background with their progress.

The app owns one :class:`BuildJobs` (``app.state.build_jobs``): builds run on its
:class:`~strongroom.datasets.jobs.JobRunner`, and when the app shuts down the
builds still running or queued are cancelled (each stops at its next block and
leaves nothing behind) before the runner is waited for.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import datetime as dt
import json
import threading
from collections.abc import Callable, Iterable
from typing import Annotated, Any

import sqlalchemy as sa
from fastapi import APIRouter, Query, Request
from sqlalchemy.orm import Session

from strongroom.audit import Actor
from strongroom.datasets import catalog, jobs
from strongroom.datasets.build import SchemaOverrides
from strongroom.datasets.models import Dataset, DatasetVersion, Upload, VersionStatus
from strongroom.db import utcnow
from strongroom.deployment import Deployment
from strongroom.errors import StrongroomError
from strongroom.identity.permissions import Permission
from strongroom.telemetry import services as telemetry
from strongroom.telemetry.models import UsageFeature
from strongroom.tenancy.models import Tenant
from strongroom.web.api.dataset_schemas import (
    BuildCreate,
    ColumnOut,
    DatasetCreate,
    DatasetDelete,
    DatasetDetail,
    DatasetOut,
    VersionOut,
)
from strongroom.web.auth import current, deployment_of, route_options, tenant_of

router = APIRouter(prefix="/api/v1", tags=["datasets"])
MIB = 1024 * 1024


class BuildJobs:
    """The app's background builds: a JobRunner, and the versions it has not finished."""

    def __init__(self, deployment: Deployment) -> None:
        self.deployment = deployment
        self.runner = jobs.JobRunner(deployment)
        self._lock = threading.Lock()
        self._pending: dict[str, concurrent.futures.Future[DatasetVersion]] = {}

    def submit(
        self, tenant_id: str, dataset_id: str, upload_id: str, actor: Actor,
        overrides: SchemaOverrides | None,
    ) -> str:
        """Record a building version (refusals raise here) and queue its build."""
        version_id, future = self.runner.submit(tenant_id, dataset_id, upload_id, actor,
                                                overrides=overrides)
        with self._lock:
            self._pending[version_id] = future
        future.add_done_callback(lambda _done: self._forget(version_id))
        future.add_done_callback(lambda _done: self._record_usage(version_id, actor, tenant_id))
        return version_id

    def _record_usage(self, version_id: str, actor: Actor, tenant_id: str) -> None:
        """Usage telemetry for a finished build: its duration and size, never its content.

        Best effort: telemetry never fails or delays a build.
        """
        if actor.id is None:
            return
        seconds, size, rows = 0.0, None, None
        with (contextlib.suppress(StrongroomError, sa.exc.SQLAlchemyError),
              self.deployment.transaction() as session):
            version = session.get(DatasetVersion, version_id)
            if (version is None or version.status != VersionStatus.READY.value
                    or version.finished_at is None):
                return
            seconds = (version.finished_at - version.started_at).total_seconds()
            size, rows = version.parquet_size, version.row_count
        if rows is None:
            return
        telemetry.record_soon(self.deployment, telemetry.Subject(actor.id, tenant_id),
                              UsageFeature.DATASET_BUILD, duration_ms=seconds * 1000,
                              rows=rows, bytes=size)

    def _forget(self, version_id: str) -> None:
        with self._lock:
            self._pending.pop(version_id, None)

    def unfinished(self) -> list[str]:
        with self._lock:
            return sorted(self._pending)

    def shutdown(self) -> None:
        """Cancel every build not finished (audited, by the system), then wait for them."""
        for version_id in self.unfinished():
            # A build that finished meanwhile is simply not running any more.
            with contextlib.suppress(StrongroomError), self.deployment.transaction() as session:
                version = session.get(DatasetVersion, version_id)
                tenant = session.get(Tenant, version.tenant_id) if version else None
                if tenant is not None:
                    jobs.cancel_build(session, self.deployment, tenant, Actor.system(),
                                      version_id)
        self.runner.shutdown(wait=True)


def build_jobs(request: Request) -> BuildJobs:
    found: BuildJobs = request.app.state.build_jobs
    return found


# -- answers ------------------------------------------------------------------------------------


def _rate(version: DatasetVersion, now: dt.datetime) -> float | None:
    elapsed = ((version.finished_at or now) - version.started_at).total_seconds()
    if elapsed <= 0 or not version.progress_bytes:
        return None
    return round(version.progress_bytes / MIB / elapsed, 3)


def _percent(version: DatasetVersion, upload_size: int | None) -> float | None:
    if version.status == VersionStatus.READY.value:
        return 100.0
    if not upload_size:
        return None
    return round(min(100.0, 100.0 * version.progress_bytes / upload_size), 2)


def version_out(version: DatasetVersion, upload_size: int | None) -> VersionOut:
    report = catalog.version_report(version)
    columns = json.loads(version.schema_json) if version.schema_json else []
    return VersionOut(
        id=version.id, dataset_id=version.dataset_id, number=version.number,
        status=version.status, progress_rows=version.progress_rows,
        progress_bytes=version.progress_bytes, percent=_percent(version, upload_size),
        mib_per_second=_rate(version, utcnow()), row_count=version.row_count,
        rejected_count=version.rejected_count, size=version.parquet_size,
        columns=[ColumnOut(name=c["name"], type=c["type"], personal=bool(c.get("personal")))
                 for c in columns],
        key_column=report.get("key_column"), report=report, built_by=version.built_by,
        started_at=version.started_at, finished_at=version.finished_at,
    )


def _upload_sizes(session: Session, versions: Iterable[DatasetVersion]) -> dict[str, int]:
    ids = {v.upload_id for v in versions if v.upload_id is not None}
    if not ids:
        return {}
    rows = session.execute(sa.select(Upload.id, Upload.received_bytes).where(Upload.id.in_(ids)))
    return {str(upload_id): int(size) for upload_id, size in rows}


def _versions_out(session: Session, versions: list[DatasetVersion]) -> list[VersionOut]:
    sizes = _upload_sizes(session, versions)
    return [version_out(v, sizes.get(v.upload_id or "")) for v in versions]


def _versions_of(session: Session, tenant: Tenant, datasets: list[Dataset]) -> dict[
        str, list[DatasetVersion]]:
    """Every version of these datasets of the tenant, oldest first, by dataset."""
    found: dict[str, list[DatasetVersion]] = {d.id: [] for d in datasets}
    if not datasets:
        return found
    rows = session.scalars(
        sa.select(DatasetVersion)
        .where(DatasetVersion.tenant_id == tenant.id,
               DatasetVersion.dataset_id.in_(list(found)))
        .order_by(DatasetVersion.dataset_id, DatasetVersion.number)
    )
    for version in rows:
        found[version.dataset_id].append(version)
    return found


def _dataset_fields(dataset: Dataset, latest: VersionOut | None) -> dict[str, Any]:
    return {"id": dataset.id, "name": dataset.name, "key_column": dataset.key_column,
            "build_locked": dataset.build_locked, "created_by": dataset.created_by,
            "created_at": dataset.created_at,
            "deleted_at": dataset.deleted_at, "purge_after": dataset.purge_after,
            "latest_version": latest}


def _dataset_out(session: Session, tenant: Tenant, dataset: Dataset) -> DatasetOut:
    versions = _versions_out(session, _versions_of(session, tenant, [dataset])[dataset.id])
    return DatasetOut(**_dataset_fields(dataset, versions[-1] if versions else None))


# -- datasets -----------------------------------------------------------------------------------


@router.get("/datasets", response_model=list[DatasetOut], **route_options(Permission.COUNT))
def list_datasets(
    request: Request,
    deleted: Annotated[bool, Query(description="List deleted datasets awaiting purge "
                                   "instead")] = False,
) -> list[DatasetOut]:
    """Your tenant's datasets by name, each with its newest version."""
    principal = current(request)
    dep = deployment_of(request)
    with dep.transaction() as session:
        tenant = tenant_of(session, principal)
        datasets = catalog.list_datasets(session, tenant, deleted=deleted)
        by_dataset = _versions_of(session, tenant, datasets)
        latest = [v[-1] for v in by_dataset.values() if v]
        outs = {v.dataset_id: v for v in _versions_out(session, latest)}
        return [DatasetOut(**_dataset_fields(d, outs.get(d.id))) for d in datasets]


@router.post("/datasets", response_model=DatasetOut, status_code=201,
             **route_options(Permission.ANALYSE))
def create_dataset(body: DatasetCreate, request: Request) -> DatasetOut:
    """A new, empty dataset; build an upload into it to give it a first version."""
    principal = current(request)
    dep = deployment_of(request)
    with dep.transaction() as session:
        tenant = tenant_of(session, principal)
        dataset = catalog.create_dataset(session, dep, tenant, principal.actor(), body.name,
                                         key_column=body.key_column)
        session.flush()
        return DatasetOut(**_dataset_fields(dataset, None))


@router.get("/datasets/{dataset_id}", response_model=DatasetDetail,
            **route_options(Permission.COUNT))
def get_dataset(dataset_id: str, request: Request) -> DatasetDetail:
    """One dataset (deleted ones too, until purged) with all its versions."""
    principal = current(request)
    dep = deployment_of(request)
    with dep.transaction() as session:
        tenant = tenant_of(session, principal)
        dataset = catalog.get_dataset(session, tenant, dataset_id, include_deleted=True)
        versions = _versions_out(session, _versions_of(session, tenant, [dataset])[dataset.id])
        return DatasetDetail(**_dataset_fields(dataset, versions[-1] if versions else None),
                             versions=versions)


@router.post("/datasets/{dataset_id}/delete", response_model=DatasetOut,
             **route_options(Permission.ANALYSE))
def delete_dataset(dataset_id: str, body: DatasetDelete, request: Request) -> DatasetOut:
    """Delete a dataset, typing its name back; it can be restored until ``purge_after``."""
    principal = current(request)
    dep = deployment_of(request)
    with dep.transaction() as session:
        tenant = tenant_of(session, principal)
        # Restorable for the deployment's dataset_recovery_days (the catalog's default).
        dataset = catalog.delete_dataset(session, dep, tenant, principal.actor(), dataset_id,
                                         confirm_name=body.confirm_name)
        return _dataset_out(session, tenant, dataset)


def _change(request: Request, dataset_id: str, action: Callable[..., Dataset]) -> DatasetOut:
    """Apply one audited catalog action (restore, lock, unlock) to the caller's dataset."""
    principal = current(request)
    dep = deployment_of(request)
    with dep.transaction() as session:
        tenant = tenant_of(session, principal)
        dataset = action(session, dep, tenant, principal.actor(), dataset_id)
        return _dataset_out(session, tenant, dataset)


@router.post("/datasets/{dataset_id}/restore", response_model=DatasetOut,
             **route_options(Permission.ANALYSE))
def restore_dataset(dataset_id: str, request: Request) -> DatasetOut:
    """Bring back a deleted dataset within its recovery window."""
    return _change(request, dataset_id, catalog.restore_dataset)


@router.post("/datasets/{dataset_id}/lock", response_model=DatasetOut,
             **route_options(Permission.ANALYSE))
def lock_dataset(dataset_id: str, request: Request) -> DatasetOut:
    """Prevent builds of the dataset until it is unlocked."""
    return _change(request, dataset_id, catalog.lock_builds)


@router.post("/datasets/{dataset_id}/unlock", response_model=DatasetOut,
             **route_options(Permission.ANALYSE))
def unlock_dataset(dataset_id: str, request: Request) -> DatasetOut:
    """Allow builds of the dataset again."""
    return _change(request, dataset_id, catalog.unlock_builds)


# -- builds and versions ------------------------------------------------------------------------


def _overrides(body: BuildCreate, dataset: Dataset) -> SchemaOverrides | None:
    if body.types is None and body.key_column is None and body.personal is None:
        return None  # the build then uses the dataset's own key column
    return SchemaOverrides(types=dict(body.types or {}),
                           key_column=body.key_column or dataset.key_column,
                           personal=frozenset(body.personal or ()))


@router.post("/datasets/{dataset_id}/builds", response_model=VersionOut, status_code=202,
             **route_options(Permission.ANALYSE))
def start_build(dataset_id: str, body: BuildCreate, request: Request) -> VersionOut:
    """Build a complete upload into a new version of the dataset, in the background.

    Answered at once with the *building* version; poll it for progress. Refused
    (409) while the dataset is locked against builds or already building.
    """
    principal = current(request)
    dep = deployment_of(request)
    with dep.transaction() as session:
        dataset = catalog.get_dataset(session, tenant_of(session, principal), dataset_id)
        overrides = _overrides(body, dataset)
    version_id = build_jobs(request).submit(principal.tenant_id, dataset_id, body.upload_id,
                                            principal.actor(), overrides)
    with dep.transaction() as session:
        tenant = tenant_of(session, principal)
        return _versions_out(session, [catalog.get_version(session, tenant, version_id)])[0]


@router.get("/versions/{version_id}", response_model=VersionOut,
            **route_options(Permission.COUNT))
def get_version(version_id: str, request: Request) -> VersionOut:
    """A dataset version: its build's progress (rows, bytes, percent, MiB/s), then its
    columns, counts and build report."""
    principal = current(request)
    dep = deployment_of(request)
    with dep.transaction() as session:
        tenant = tenant_of(session, principal)
        return _versions_out(session, [catalog.get_version(session, tenant, version_id)])[0]


@router.post("/versions/{version_id}/cancel", response_model=VersionOut,
             **route_options(Permission.ANALYSE))
def cancel_build(version_id: str, request: Request) -> VersionOut:
    """Cancel a running build: it stops at its next block and leaves nothing behind."""
    principal = current(request)
    dep = deployment_of(request)
    with dep.transaction() as session:
        tenant = tenant_of(session, principal)
        version = jobs.cancel_build(session, dep, tenant, principal.actor(), version_id)
        return _versions_out(session, [version])[0]
