"""Build jobs: an upload built into a new dataset version, in the background, cancellable.

:func:`start_build` first checks what the upload's head already shows
(:func:`preflight`: empty, not Parquet, a bad header, a wrong delimiter...; a
422 and no version), then records a *building* version (audited) in the
caller's transaction. :func:`execute_build` runs
:func:`~strongroom.datasets.build.build_dataset` over the decrypted CSV stream,
or :func:`~strongroom.datasets.parquet_input.build_parquet_dataset` over a
seekable view of a Parquet upload, into a temporary file under ``OBJECTS/.builds``
(not the store's ``.incoming``, which another process's start-up clears),
publishes the encrypted Parquet file as an immutable object, and marks the
version ready, failed or cancelled (audited). Progress is written to the version
row as blocks are read; :func:`cancel_build` sets a flag that the running build
reads between blocks. While a build may run, its process holds the build's lock
(:class:`BuildLocks`), which is how crash recovery tells a dead build from a live one.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import dataclasses
import fcntl
import json
import logging
import os
import shutil
import threading
import uuid
from collections.abc import Callable, Generator
from pathlib import Path
from typing import Any, BinaryIO

import sqlalchemy as sa
from sqlalchemy.orm import Session

from strongroom.audit import Actor, EventTag, Outcome
from strongroom.crypto.keyring import TenantKeyRing
from strongroom.crypto.parquet import ParquetCrypto
from strongroom.datasets.build import (
    BLOCK_BYTES,
    BuildReport,
    ChunkReader,
    SchemaOverrides,
    build_dataset,
    check_csv_head,
)
from strongroom.datasets.catalog import get_dataset, get_version
from strongroom.datasets.errors import (
    BuildCancelled,
    BuildNotRunning,
    BuildRunning,
    DatasetError,
    DatasetLocked,
    NoDataRows,
    UploadNotReceiving,
)
from strongroom.datasets.models import (
    Dataset,
    DatasetVersion,
    Upload,
    UploadFormat,
    UploadStatus,
    VersionStatus,
)
from strongroom.datasets.parquet_input import build_parquet_dataset, inspect_parquet
from strongroom.datasets.uploads import (
    UploadView,
    get_upload,
    iter_upload_plaintext,
    open_upload_random_access,
    upload_options,
)
from strongroom.db import utcnow
from strongroom.deployment import Deployment
from strongroom.errors import NotFound
from strongroom.storage.interfaces import BlobRef
from strongroom.tenancy.models import Tenant
from strongroom.tenancy.services import require_active

logger = logging.getLogger("strongroom.datasets")
REASON_MAX = 200
BUILDS = ".builds"  # beside the object store's areas: build locks and unfinished outputs


def builds_dir(deployment: Deployment) -> Path:
    """Where builds keep their lock files and unfinished (encrypted) output."""
    directory = deployment.store.root / BUILDS
    directory.mkdir(mode=0o700, exist_ok=True)
    return directory


class BuildLocks:
    """The builds this process may run, each holding an exclusive lock on its lock file.

    The kernel drops a lock when its process dies, so a *building* version
    whose lock nobody holds was left by a dead process
    (:func:`strongroom.datasets.maintenance.recover_interrupted_builds`). The lock
    is taken before the version is committed, so there is no moment at which a
    live build looks dead.
    """

    _held: dict[str, int] = {}  # noqa: RUF012 - process-wide on purpose
    _guard = threading.Lock()

    @classmethod
    def hold(cls, deployment: Deployment, version_id: str) -> None:
        with cls._guard:
            if version_id in cls._held:
                return
            fd = os.open(builds_dir(deployment) / f"{version_id}.lock",
                         os.O_WRONLY | os.O_CREAT, 0o600)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                raise BuildRunning("this build is running in another process") from None
            cls._held[version_id] = fd

    @classmethod
    def release(cls, deployment: Deployment, version_id: str) -> None:
        with cls._guard:
            fd = cls._held.pop(version_id, None)
            if fd is not None:
                (builds_dir(deployment) / f"{version_id}.lock").unlink(missing_ok=True)
                os.close(fd)

    @staticmethod
    def alive(deployment: Deployment, version_id: str) -> bool:
        """Whether some live process (this one included) holds the build's lock."""
        try:
            fd = os.open(builds_dir(deployment) / f"{version_id}.lock", os.O_RDONLY)
        except FileNotFoundError:
            return False
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        finally:
            os.close(fd)
        return False


def _tenant(session: Session, tenant_id: str) -> Tenant:
    tenant = session.get(Tenant, tenant_id)
    if tenant is None:
        raise NotFound("no such tenant")
    require_active(tenant)
    return tenant


def _overrides(dataset: Dataset, overrides: SchemaOverrides | None) -> SchemaOverrides:
    if overrides is None:
        return SchemaOverrides(key_column=dataset.key_column)
    return overrides


def preflight(
    session: Session, deployment: Deployment, tenant: Tenant, upload: Upload,
    overrides: SchemaOverrides,
) -> None:
    """Refuse, before any version exists, an upload whose first block (CSV) or footer
    (Parquet) already shows it cannot be built: empty, not Parquet, a bad header, too
    many columns, a wrong delimiter, an unsupported column type, unknown override names."""
    ring = deployment.keys.tenant_ring(session, tenant.id)
    if upload.format == UploadFormat.PARQUET.value:
        with open_upload_random_access(session, deployment.store, ring, tenant, upload) as view:
            inspect_parquet(view, view.length, overrides)
        return
    chunks = iter_upload_plaintext(session, deployment.store, ring, tenant, upload)
    with contextlib.closing(chunks):
        head = ChunkReader(chunks).read_up_to(BLOCK_BYTES)
    check_csv_head(head, upload_options(upload), overrides)


def start_build(
    session: Session, deployment: Deployment, tenant: Tenant, actor: Actor, dataset_id: str,
    upload_id: str, *, overrides: SchemaOverrides | None = None,
) -> DatasetVersion:
    """Record a new *building* version of the dataset from a complete CSV or Parquet upload.

    Refuses a dataset locked against builds (:class:`DatasetLocked`), a dataset
    already building, an upload that is not complete, and (by :func:`preflight`)
    an upload whose head already shows it cannot be built.
    """
    require_active(tenant)
    dataset = get_dataset(session, tenant, dataset_id, lock=True)
    upload = get_upload(session, tenant, upload_id)
    if dataset.build_locked:
        raise DatasetLocked("the dataset is locked against builds", hint="unlock it first")
    if upload.status != UploadStatus.COMPLETE.value:
        raise UploadNotReceiving(f"the upload is {upload.status}, not complete")
    running = session.scalar(
        sa.select(DatasetVersion.id).where(
            DatasetVersion.dataset_id == dataset.id,
            DatasetVersion.status == VersionStatus.BUILDING.value,
        ).limit(1)
    )
    if running is not None:
        raise BuildRunning("a build of this dataset is already running")
    preflight(session, deployment, tenant, upload, _overrides(dataset, overrides))
    last = session.scalar(
        sa.select(sa.func.max(DatasetVersion.number)).where(DatasetVersion.dataset_id == dataset.id)
    )
    version_id = uuid.uuid4().hex
    # Held by this process until the build ends; the caller releases it if the commit fails.
    BuildLocks.hold(deployment, version_id)
    try:
        return _record_version(session, deployment, tenant, actor, dataset, upload, version_id,
                               int(last or 0) + 1)
    except BaseException:
        BuildLocks.release(deployment, version_id)
        raise


def _record_version(
    session: Session, deployment: Deployment, tenant: Tenant, actor: Actor, dataset: Dataset,
    upload: Upload, version_id: str, number: int,
) -> DatasetVersion:
    version = DatasetVersion(
        id=version_id, tenant_id=tenant.id, dataset_id=dataset.id,
        number=number, status=VersionStatus.BUILDING.value, upload_id=upload.id,
        built_by=actor.id, started_at=utcnow(), progress_rows=0, progress_bytes=0,
        cancel_requested=False,
    )
    session.add(version)
    deployment.audit.record_event(
        session, EventTag.DATASET_BUILD, actor=actor, tenant=tenant.id, target=version.id,
        details={"dataset": dataset.id, "upload": upload.id, "version": version.number},
    )
    return version


def cancel_build(
    session: Session, deployment: Deployment, tenant: Tenant, actor: Actor, version_id: str
) -> DatasetVersion:
    """Ask a running build to stop; it stops at its next block and leaves nothing behind."""
    version = get_version(session, tenant, version_id)
    if version.status != VersionStatus.BUILDING.value:
        raise BuildNotRunning(f"the build is {version.status}, not running")
    version.cancel_requested = True
    deployment.audit.record_event(
        session, EventTag.DATASET_BUILD_CANCEL, actor=actor, tenant=tenant.id, target=version.id,
        details={"dataset": version.dataset_id},
    )
    return version


def report_json(report: BuildReport | None, error: DatasetError | None = None) -> dict[str, Any]:
    """The stored report: counts, columns and at most the listed rejections, no values."""
    out: dict[str, Any] = {}
    if report is not None:
        out.update(
            columns=[dataclasses.asdict(column) for column in report.columns],
            key_column=report.key_column,
            rows_loaded=report.rows_loaded,
            rows_rejected=report.rows_rejected,
            rejections=[
                {"row": rejection.row, "reason": rejection.reason[:REASON_MAX]}
                for rejection in report.rejections
            ],
            rejections_truncated=report.rejections_truncated,
            bytes_read=report.bytes_read,
            output_bytes=report.output_bytes,
            row_groups=report.row_groups,
        )
    if error is not None:
        out["error"] = {"type": error.slug, "detail": error.detail[:REASON_MAX]}
    return out


@dataclasses.dataclass(frozen=True)
class _Finish:
    status: VersionStatus
    outcome: Outcome
    report: dict[str, Any]
    reason: str | None = None
    blob: BlobRef | None = None
    counts: BuildReport | None = None


def _finish(deployment: Deployment, version_id: str, actor: Actor, end: _Finish) -> None:
    with deployment.transaction() as session:
        version = session.get_one(DatasetVersion, version_id, with_for_update=True)
        version.status = end.status.value
        version.finished_at = utcnow()
        version.report = json.dumps(end.report, sort_keys=True)
        if end.blob is not None and end.counts is not None:
            version.parquet_digest = end.blob.digest
            version.parquet_size = end.blob.size
            version.row_count = end.counts.rows_loaded
            version.rejected_count = end.counts.rows_rejected
            version.schema_json = json.dumps(end.report.get("columns", []))
        elif end.counts is not None:
            version.rejected_count = end.counts.rows_rejected
        deployment.audit.record_event(
            session, EventTag.DATASET_BUILD_FINISH, actor=actor, tenant=version.tenant_id,
            target=version.id, outcome=end.outcome, reason=end.reason,
            details={"dataset": version.dataset_id, "status": end.status.value,
                     "rows": version.row_count, "rejected": version.rejected_count},
        )


def _cancel_flag(deployment: Deployment, version_id: str) -> Callable[[], bool]:
    def cancelled() -> bool:
        with deployment.transaction() as session:
            flag = session.scalar(
                sa.select(DatasetVersion.cancel_requested).where(DatasetVersion.id == version_id)
            )
        return bool(flag)

    return cancelled


def _progress(
    deployment: Deployment, version_id: str, hook: Callable[[int, int], None] | None
) -> Callable[[int, int], None]:
    def progress(rows: int, read: int) -> None:
        with deployment.transaction() as session:
            session.execute(
                sa.update(DatasetVersion)
                .where(DatasetVersion.id == version_id)
                .values(progress_rows=rows, progress_bytes=read)
            )
        if hook is not None:
            hook(rows, read)

    return progress


def _publish(
    deployment: Deployment, prefix: str, path: Path, cancelled: Callable[[], bool]
) -> BlobRef:
    """Copy the finished file into the object store, unless cancelled at the last moment."""
    if cancelled():
        raise BuildCancelled("the build was cancelled")

    def copy(sink: BinaryIO) -> None:
        with path.open("rb") as source:
            shutil.copyfileobj(source, sink, 1 << 20)

    return deployment.store.put(prefix, copy)


class _Source:
    """The upload to build, opened while the session is at hand, read after it closed."""

    def __init__(
        self, session: Session, deployment: Deployment, ring: TenantKeyRing, tenant: Tenant,
        upload: Upload,
    ) -> None:
        self.view: UploadView | None = None
        self.chunks: Generator[bytes] | None = None
        if upload.format == UploadFormat.PARQUET.value:
            self.view = open_upload_random_access(session, deployment.store, ring, tenant, upload)
        else:
            self.chunks = iter_upload_plaintext(session, deployment.store, ring, tenant, upload)
            self.options = upload_options(upload)

    def build(
        self, crypto: ParquetCrypto, temp: Path, overrides: SchemaOverrides,
        cancel: Callable[[], bool], progress: Callable[[int, int], None],
    ) -> BuildReport:
        if self.view is not None:
            return build_parquet_dataset(self.view, self.view.length, crypto, temp,
                                         overrides=overrides, cancel=cancel, progress=progress)
        if self.chunks is None:
            raise RuntimeError("an upload source is either Parquet or CSV")
        return build_dataset(self.chunks, self.options, crypto, temp, overrides=overrides,
                             cancel=cancel, progress=progress)

    def close(self) -> None:
        if self.view is not None:
            self.view.close()
        if self.chunks is not None:
            self.chunks.close()


def execute_build(
    deployment: Deployment, version_id: str, *, overrides: SchemaOverrides | None = None,
    on_progress: Callable[[int, int], None] | None = None,
) -> DatasetVersion:
    """Run the build of a *building* version to its end: ready, failed or cancelled.

    Input errors (:class:`DatasetError`) and cancellation are recorded on the
    version, not raised; any other error marks it failed and is raised. The
    encrypted Parquet object exists only if the version is ready.
    """
    with deployment.transaction() as session:
        version = session.get_one(DatasetVersion, version_id)
        if version.status != VersionStatus.BUILDING.value or version.upload_id is None:
            raise BuildNotRunning(f"the build is {version.status}, not running")
        tenant = _tenant(session, version.tenant_id)
        dataset = get_dataset(session, tenant, version.dataset_id)
        upload = get_upload(session, tenant, version.upload_id)
        ring = deployment.keys.tenant_ring(session, tenant.id)
        actor = Actor(kind="user", id=version.built_by)
        overrides = _overrides(dataset, overrides)
        source = _Source(session, deployment, ring, tenant, upload)
    temp = builds_dir(deployment) / f"{version_id}.parquet"
    blob: BlobRef | None = None
    try:
        BuildLocks.hold(deployment, version_id)  # already held when started in this process
    except BaseException:
        source.close()
        raise
    try:
        report = source.build(
            ParquetCrypto(ring), temp, overrides, _cancel_flag(deployment, version_id),
            _progress(deployment, version_id, on_progress),
        )
        blob = _publish(deployment, tenant.id, temp, _cancel_flag(deployment, version_id))
        _finish(deployment, version_id, actor, _Finish(
            VersionStatus.READY, Outcome.SUCCESS, report_json(report), blob=blob, counts=report,
        ))
        blob = None  # now referenced by the ready version
    except BuildCancelled:
        _finish(deployment, version_id, actor, _Finish(
            VersionStatus.CANCELLED, Outcome.FAILURE, {"cancelled": True}, reason="cancelled",
        ))
    except DatasetError as error:
        partial = error.report if isinstance(error, NoDataRows) else None
        _finish(deployment, version_id, actor, _Finish(
            VersionStatus.FAILED, Outcome.FAILURE, report_json(partial, error),
            reason=error.slug, counts=partial,
        ))
    except BaseException as unexpected:
        # The type only: a parser's message or traceback can quote the data being built.
        logger.error("dataset build %s failed: %s", version_id, type(unexpected).__name__)
        with contextlib.suppress(Exception):
            _finish(deployment, version_id, actor, _Finish(
                VersionStatus.FAILED, Outcome.FAILURE,
                {"error": {"type": "internal", "detail": "the build failed unexpectedly"}},
                reason="internal",
            ))
        raise
    finally:
        source.close()
        temp.unlink(missing_ok=True)
        if blob is not None:  # published but never recorded: no half object
            deployment.store.delete(blob)
        BuildLocks.release(deployment, version_id)
    with deployment.transaction() as session:
        return session.get_one(DatasetVersion, version_id)


def _begin(
    deployment: Deployment, tenant_id: str, dataset_id: str, upload_id: str, actor: Actor,
    overrides: SchemaOverrides | None,
) -> str:
    version_id: str | None = None
    try:
        with deployment.transaction() as session:
            tenant = _tenant(session, tenant_id)
            version_id = start_build(session, deployment, tenant, actor, dataset_id, upload_id,
                                     overrides=overrides).id
    except DatasetLocked as denial:
        # Denials are audited with their reason, in a transaction of their own.
        with deployment.transaction() as session:
            deployment.audit.record_event(
                session, EventTag.DATASET_BUILD, actor=actor, tenant=tenant_id,
                target=dataset_id, outcome=Outcome.DENIED, reason=denial.slug,
            )
        raise
    except BaseException:
        if version_id is not None:  # recorded, then the commit failed: no build will run
            BuildLocks.release(deployment, version_id)
        raise
    return version_id


def run_build(
    deployment: Deployment, tenant_id: str, dataset_id: str, upload_id: str, actor: Actor,
    *, overrides: SchemaOverrides | None = None,
    on_progress: Callable[[int, int], None] | None = None,
) -> DatasetVersion:
    """Build the upload into a new version of the dataset, here and now; returns the version."""
    version_id = _begin(deployment, tenant_id, dataset_id, upload_id, actor, overrides)
    return execute_build(deployment, version_id, overrides=overrides, on_progress=on_progress)


class JobRunner:
    """Runs builds in the background on a small thread pool; progress is on the version row."""

    def __init__(self, deployment: Deployment, workers: int = 2) -> None:
        self.deployment = deployment
        self._pool = concurrent.futures.ThreadPoolExecutor(
            max_workers=max(1, min(workers, 2)), thread_name_prefix="strongroom-build"
        )

    def submit(
        self, tenant_id: str, dataset_id: str, upload_id: str, actor: Actor,
        *, overrides: SchemaOverrides | None = None,
    ) -> tuple[str, concurrent.futures.Future[DatasetVersion]]:
        """Start a build: the version is recorded now (refusals raise here), built later."""
        version_id = _begin(self.deployment, tenant_id, dataset_id, upload_id, actor, overrides)
        future = self._pool.submit(
            execute_build, self.deployment, version_id, overrides=overrides
        )
        return version_id, future

    def shutdown(self, wait: bool = True) -> None:
        self._pool.shutdown(wait=wait)
