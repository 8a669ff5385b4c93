"""Dataset housekeeping: builds interrupted by a dead process, abandoned uploads, purges.

A build holds an exclusive lock on its lock file for as long as it may run
(:class:`~strongroom.datasets.jobs.BuildLocks`); the kernel drops the lock when
the process dies, however it dies. :func:`recover_interrupted_builds` marks
every *building* version whose lock nobody holds as failed ("interrupted") and
removes its unfinished output, so the dataset can be built again.
:func:`sweep_abandoned_uploads` aborts uploads that stopped receiving chunks
longer ago than the setting upload_abandon_hours and removes their encrypted
parts. :func:`~strongroom.datasets.catalog.purge_expired` removes deleted
datasets past their recovery window.

``strongroom serve`` runs the recovery once before it starts listening, then
:func:`start_maintenance` runs all three hourly on a daemon thread. Every run
that changes something is audited, and so is the start-up recovery always.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import logging
import re
import threading
from collections.abc import Callable

import sqlalchemy as sa

from strongroom.audit import Actor, EventTag, Outcome
from strongroom.datasets.catalog import purge_expired
from strongroom.datasets.errors import UploadNotReceiving
from strongroom.datasets.jobs import BuildLocks, builds_dir
from strongroom.datasets.models import (
    DatasetVersion,
    Upload,
    UploadPart,
    UploadStatus,
    VersionStatus,
)
from strongroom.datasets.uploads import abort_upload, remove_objects
from strongroom.db import utcnow
from strongroom.deployment import Deployment
from strongroom.storage.models import StoredObject
from strongroom.tenancy.models import Tenant

logger = logging.getLogger("strongroom.datasets")
INTERVAL_SECONDS = 3600.0
INTERRUPTED = {
    "error": {
        "type": "interrupted",
        "detail": "the build was interrupted: the process running it stopped; build again",
    }
}
_VERSION_FILE = re.compile(r"\.?(?P<id>[0-9a-f]{32})\.")


@dataclasses.dataclass(frozen=True)
class MaintenanceRun:
    """What one run did (counts only)."""

    interrupted_builds: int = 0
    build_files_removed: int = 0
    abandoned_uploads: int = 0
    purged_datasets: int = 0
    purged_exports: int = 0  # export files downloaded or past their link's expiry
    purged_usage_events: int = 0  # telemetry past telemetry_retention_days

    def changed(self) -> bool:
        return any(dataclasses.astuple(self))


def _remove_build_files(deployment: Deployment) -> int:
    """Remove lock files and unfinished outputs of builds no live process holds."""
    removed = 0
    for path in builds_dir(deployment).iterdir():
        match = _VERSION_FILE.match(path.name)
        if match is None or BuildLocks.alive(deployment, match["id"]):
            continue
        path.unlink(missing_ok=True)
        removed += 1
    return removed


def recover_interrupted_builds(deployment: Deployment) -> tuple[int, int]:
    """Mark builds left *building* by a dead process as failed (interrupted), audited, and
    remove the files of dead builds. Returns (versions recovered, files removed)."""
    with deployment.transaction() as session:
        building = list(session.scalars(
            sa.select(DatasetVersion.id).where(
                DatasetVersion.status == VersionStatus.BUILDING.value
            )
        ))
    recovered = 0
    for version_id in building:
        if BuildLocks.alive(deployment, version_id):
            continue
        with deployment.transaction() as session:
            version = session.get(DatasetVersion, version_id, with_for_update=True)
            if version is None or version.status != VersionStatus.BUILDING.value:
                continue  # finished meanwhile
            version.status = VersionStatus.FAILED.value
            version.finished_at = utcnow()
            version.report = json.dumps(INTERRUPTED, sort_keys=True)
            deployment.audit.record_event(
                session, EventTag.DATASET_BUILD_INTERRUPTED, actor=Actor.system(),
                tenant=version.tenant_id, target=version.id, outcome=Outcome.FAILURE,
                reason="interrupted",
                details={"dataset": version.dataset_id, "version": version.number,
                         "rows_read": version.progress_rows},
            )
        recovered += 1
    return recovered, _remove_build_files(deployment)


def sweep_abandoned_uploads(
    deployment: Deployment, older_than: dt.timedelta | None = None,
    *, now: dt.datetime | None = None,
) -> int:
    """Abort uploads still receiving whose last chunk (or creation) is older than
    ``older_than`` (default: the setting upload_abandon_hours); their parts go. Audited."""
    idle = older_than or dt.timedelta(hours=deployment.settings.upload_abandon_hours)
    cutoff = (now or utcnow()) - idle
    with deployment.transaction() as session:
        rows = session.execute(
            sa.select(Upload.id, Upload.tenant_id, Upload.created_at,
                      sa.func.max(StoredObject.created_at))
            .outerjoin(UploadPart, UploadPart.upload_id == Upload.id)
            .outerjoin(StoredObject, StoredObject.id == UploadPart.object_id)
            .where(Upload.status == UploadStatus.RECEIVING.value, Upload.created_at < cutoff)
            .group_by(Upload.id, Upload.tenant_id, Upload.created_at)
        ).all()
    abandoned = [(upload_id, tenant_id) for upload_id, tenant_id, created, last_part in rows
                 if max(created, last_part or created) < cutoff]
    swept = 0
    for upload_id, tenant_id in abandoned:
        try:
            with deployment.transaction() as session:
                tenant = session.get_one(Tenant, tenant_id)
                objects = abort_upload(session, deployment, tenant, Actor.system(), upload_id,
                                       tag=EventTag.DATASET_UPLOAD_ABANDON)
        except UploadNotReceiving:
            continue  # completed or aborted meanwhile
        remove_objects(deployment.store, objects)
        swept += 1
    return swept


def _audit_run(deployment: Deployment, run: MaintenanceRun, phase: str) -> None:
    with deployment.transaction() as session:
        deployment.audit.record_event(
            session, EventTag.DATASET_MAINTENANCE, actor=Actor.system(),
            details={"phase": phase, **dataclasses.asdict(run)},
        )


def recover_at_start(deployment: Deployment) -> MaintenanceRun:
    """The recovery ``serve`` runs before it listens; always audited."""
    interrupted, removed = recover_interrupted_builds(deployment)
    run = MaintenanceRun(interrupted_builds=interrupted, build_files_removed=removed)
    _audit_run(deployment, run, "start")
    if interrupted:
        logger.warning("%d interrupted dataset builds marked failed", interrupted)
    return run


def run_maintenance(deployment: Deployment, *, now: dt.datetime | None = None) -> MaintenanceRun:
    """One periodic run: recovery, abandoned uploads, expired datasets, spent export files;
    audited if it did anything."""
    from strongroom.exports.services import purge_exports  # exports import the catalog
    from strongroom.telemetry.services import purge_expired_usage

    interrupted, removed = recover_interrupted_builds(deployment)
    run = MaintenanceRun(
        interrupted_builds=interrupted,
        build_files_removed=removed,
        abandoned_uploads=sweep_abandoned_uploads(deployment, now=now),
        purged_datasets=purge_expired(deployment, now=now),
        purged_exports=purge_exports(deployment, now=now),
        purged_usage_events=purge_expired_usage(deployment, now=now),
    )
    if run.changed():
        _audit_run(deployment, run, "periodic")
    return run


class Maintenance:
    """Runs :func:`run_maintenance` now and then every ``interval`` seconds until :meth:`stop`."""

    def __init__(
        self, deployment: Deployment, interval: float = INTERVAL_SECONDS,
        clock: Callable[[], dt.datetime] = utcnow,
    ) -> None:
        self._deployment = deployment
        self._interval = interval
        self._clock = clock
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.runs = 0

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                run_maintenance(self._deployment, now=self._clock())
            except Exception as exc:  # noqa: BLE001 - the server must keep serving
                logger.error("dataset maintenance failed: %s", type(exc).__name__)
            self.runs += 1
            self._stop.wait(self._interval)

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name="strongroom-maintenance",
                                        daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()


def start_maintenance(deployment: Deployment, interval: float = INTERVAL_SECONDS) -> Maintenance:
    """Start the hourly dataset maintenance thread of ``serve``."""
    maintenance = Maintenance(deployment, interval)
    maintenance.start()
    return maintenance
