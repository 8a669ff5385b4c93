"""Resumable, chunked uploads: each chunk is encrypted as it arrives into its own object.

Parts are contiguous: a chunk is accepted only at the offset the upload has
received so far (``received_bytes``), so a client that lost its connection asks
for the status and continues from there. The client's file name is metadata
only: it is sealed with the tenant keyring and never used as a path, and the
audit trail sees it only as a keyed HMAC.
"""

from __future__ import annotations

import bisect
import dataclasses
import json
import re
import uuid
from collections.abc import Generator, Iterable, Iterator
from typing import Any, BinaryIO

import sqlalchemy as sa
from sqlalchemy.orm import Session

from strongroom.audit import Actor, EventTag, Sensitive
from strongroom.crypto.keyring import TenantKeyRing
from strongroom.crypto.streaming import RandomAccessOpener, SeekableView, object_context
from strongroom.datasets.build import CsvOptions
from strongroom.datasets.errors import (
    BadUpload,
    UploadNotFound,
    UploadNotReceiving,
    UploadTooLarge,
    WrongOffset,
)
from strongroom.datasets.models import Upload, UploadFormat, UploadPart, UploadStatus
from strongroom.db import utcnow
from strongroom.deployment import Deployment
from strongroom.storage.errors import ObjectCorrupted
from strongroom.storage.interfaces import BlobRef
from strongroom.storage.local import LocalObjectStore
from strongroom.storage.models import StoredObject
from strongroom.storage.services import put_object, read_object
from strongroom.tenancy.models import Tenant
from strongroom.tenancy.services import require_active

FILENAME_MAX = 255
PART_KIND = "upload-part"
_ID = re.compile(r"[0-9a-f]{32}")


@dataclasses.dataclass(frozen=True)
class UploadState:
    """What a client needs to resume: where to continue, and whether it may."""

    id: str
    status: str
    received_bytes: int
    declared_size: int | None
    max_bytes: int
    parts: int


def _filename_context(ring: TenantKeyRing, upload_id: str) -> bytes:
    env = ring.environment.value
    return f"strongroom/upload-filename/{env}/{ring.tenant_id}/{upload_id}".encode()


def _clean_filename(filename: str) -> str:
    clean = filename.strip()
    if not clean or len(clean) > FILENAME_MAX or not clean.isprintable():
        raise BadUpload(f"the file name must be 1-{FILENAME_MAX} printable characters")
    return clean


def _csv_options(fmt: UploadFormat, options: dict[str, Any] | None) -> dict[str, Any]:
    if fmt is not UploadFormat.CSV:
        if options:
            raise BadUpload("CSV options are only for CSV uploads")
        return {}
    known = {field.name for field in dataclasses.fields(CsvOptions)}
    given = dict(options or {})
    unknown = sorted(set(given) - known)
    if unknown:
        raise BadUpload(f"unknown CSV option {unknown[0]!r}", hint=f"known: {sorted(known)}")
    # CsvOptions validates the values (and raises BadCsv naming what is wrong).
    return dataclasses.asdict(CsvOptions(**given))


def create_upload(
    session: Session,
    deployment: Deployment,
    tenant: Tenant,
    actor: Actor,
    *,
    filename: str,
    fmt: str,
    max_bytes: int,
    csv_options: dict[str, Any] | None = None,
    declared_size: int | None = None,
) -> Upload:
    """Open a chunked upload of at most ``max_bytes`` (the tenant's limit, from the caller)."""
    require_active(tenant)
    try:
        upload_format = UploadFormat(fmt)
    except ValueError:
        raise BadUpload("the format must be csv or parquet") from None
    if max_bytes <= 0:
        raise BadUpload("the upload size limit must be positive")
    if declared_size is not None:
        if declared_size <= 0:
            raise BadUpload("the declared size must be positive")
        if declared_size > max_bytes:
            raise UploadTooLarge(
                f"the declared size is over this tenant's limit of {max_bytes} bytes"
            )
    options = _csv_options(upload_format, csv_options)
    clean = _clean_filename(filename)
    ring = deployment.keys.tenant_ring(session, tenant.id)
    upload_id = uuid.uuid4().hex
    upload = Upload(
        id=upload_id,
        tenant_id=tenant.id,
        created_by=actor.id,
        filename_sealed=ring.encrypt(clean.encode(), _filename_context(ring, upload_id)),
        format=upload_format.value,
        csv_options=json.dumps(options, sort_keys=True),
        declared_size=declared_size,
        max_bytes=max_bytes,
        received_bytes=0,
        status=UploadStatus.RECEIVING.value,
    )
    session.add(upload)
    deployment.audit.record_event(
        session, EventTag.DATASET_UPLOAD, actor=actor, tenant=tenant.id, target=upload_id,
        details={"filename": Sensitive(clean), "format": upload_format.value,
                 "declared_size": declared_size, "max_bytes": max_bytes},
    )
    return upload


def get_upload(session: Session, tenant: Tenant, upload_id: str, *, lock: bool = False) -> Upload:
    """The tenant's upload; another tenant's upload is simply not found."""
    if not _ID.fullmatch(upload_id):
        raise UploadNotFound("no such upload")
    stmt = sa.select(Upload).where(Upload.id == upload_id, Upload.tenant_id == tenant.id)
    if lock:
        stmt = stmt.with_for_update()
    upload = session.scalar(stmt)
    if upload is None:
        raise UploadNotFound("no such upload")
    return upload


def upload_filename(session: Session, deployment: Deployment, upload: Upload) -> str:
    """The file name the client gave, unsealed."""
    ring = deployment.keys.tenant_ring(session, upload.tenant_id)
    return ring.decrypt(upload.filename_sealed, _filename_context(ring, upload.id)).decode()


def upload_options(upload: Upload) -> CsvOptions:
    """The upload's CSV options, as the build reads them."""
    return CsvOptions(**json.loads(upload.csv_options))


def _part_count(session: Session, upload_id: str) -> int:
    return int(session.scalar(
        sa.select(sa.func.count()).select_from(UploadPart).where(UploadPart.upload_id == upload_id)
    ) or 0)


def upload_status(session: Session, tenant: Tenant, upload_id: str) -> UploadState:
    """Where the upload stands; ``received_bytes`` is the offset to resume from."""
    upload = get_upload(session, tenant, upload_id)
    return UploadState(
        id=upload.id, status=upload.status, received_bytes=upload.received_bytes,
        declared_size=upload.declared_size, max_bytes=upload.max_bytes,
        parts=_part_count(session, upload.id),
    )


def _receiving(upload: Upload) -> None:
    if upload.status != UploadStatus.RECEIVING.value:
        raise UploadNotReceiving(f"the upload is {upload.status}; it takes no more chunks")


def _limited(
    chunks: Iterable[bytes], start: int, limit: int, counter: list[int]
) -> Iterator[bytes]:
    """Pass chunks through, refusing (mid-stream) as soon as the total would exceed ``limit``."""
    for chunk in chunks:
        counter[0] += len(chunk)
        if start + counter[0] > limit:
            raise UploadTooLarge(f"the upload is over this tenant's limit of {limit} bytes")
        if chunk:
            yield chunk


def _record_part(
    session: Session, deployment: Deployment, tenant: Tenant, actor: Actor, upload: Upload,
    offset: int, size: int, stored: StoredObject,
) -> None:
    """Record a stored chunk as the upload's next part, if the upload is still at ``offset``."""
    if size == 0:
        raise BadUpload("the chunk is empty")
    number = _part_count(session, upload.id) + 1
    # Compare-and-set on the offset: a concurrent append to the same offset loses here.
    moved = session.execute(
        sa.update(Upload)
        .where(Upload.id == upload.id, Upload.received_bytes == offset)
        .values(received_bytes=offset + size)
        .execution_options(synchronize_session=False)
    )
    if getattr(moved, "rowcount", 0) != 1:
        session.refresh(upload)
        raise WrongOffset(
            "another chunk was stored at this offset meanwhile",
            expected_offset=upload.received_bytes,
        )
    session.add(UploadPart(upload_id=upload.id, number=number, object_id=stored.id,
                           offset=offset, size=size))
    deployment.audit.record_event(
        session, EventTag.DATASET_UPLOAD_PART, actor=actor, tenant=tenant.id, target=upload.id,
        details={"part": number, "offset": offset, "size": size},
    )


def append_chunk(
    session: Session,
    deployment: Deployment,
    tenant: Tenant,
    actor: Actor,
    upload_id: str,
    offset: int,
    chunks: Iterable[bytes],
) -> UploadState:
    """Encrypt and store one chunk at ``offset``, which must be the bytes received so far.

    A wrong offset is refused with :class:`WrongOffset` carrying the offset to
    resume from; a chunk that takes the upload over its limit with
    :class:`UploadTooLarge`. Either way nothing of the chunk is kept.
    """
    require_active(tenant)
    upload = get_upload(session, tenant, upload_id, lock=True)
    _receiving(upload)
    if offset != upload.received_bytes:
        raise WrongOffset(
            f"the upload continues at offset {upload.received_bytes}, not {offset}",
            expected_offset=upload.received_bytes,
            hint="ask for the upload's status and continue from its received_bytes",
        )
    limit = min(upload.max_bytes, upload.declared_size or upload.max_bytes)
    counter = [0]
    ring = deployment.keys.tenant_ring(session, tenant.id)
    stored = put_object(
        session, deployment.store, ring, tenant, _limited(chunks, offset, limit, counter),
        kind=PART_KIND,
    )
    try:
        _record_part(session, deployment, tenant, actor, upload, offset, counter[0], stored)
    except BaseException:
        # The row goes with the rolled-back transaction; its file must go too, or a chunk
        # that lost the race for this offset (or was empty) would stay on disk unreferenced.
        remove_objects(deployment.store, [stored])
        raise
    session.refresh(upload)
    return upload_status(session, tenant, upload.id)


def complete_upload(
    session: Session, deployment: Deployment, tenant: Tenant, actor: Actor, upload_id: str
) -> Upload:
    """Close the upload for building; a declared size must have been received in full."""
    require_active(tenant)
    upload = get_upload(session, tenant, upload_id, lock=True)
    _receiving(upload)
    if upload.received_bytes == 0:
        raise BadUpload("the upload has no data", hint="send at least one chunk first")
    if upload.declared_size is not None and upload.received_bytes != upload.declared_size:
        raise BadUpload(
            f"received {upload.received_bytes} of the {upload.declared_size} bytes declared",
            hint="continue the upload from its received_bytes",
        )
    upload.status = UploadStatus.COMPLETE.value
    upload.finished_at = utcnow()
    deployment.audit.record_event(
        session, EventTag.DATASET_UPLOAD_COMPLETE, actor=actor, tenant=tenant.id,
        target=upload.id, details={"size": upload.received_bytes},
    )
    return upload


def abort_upload(
    session: Session, deployment: Deployment, tenant: Tenant, actor: Actor, upload_id: str,
    *, tag: EventTag = EventTag.DATASET_UPLOAD_ABORT,
) -> list[StoredObject]:
    """Abort a receiving upload and drop its parts' rows.

    Returns the parts' object records (already deleted from the session); the
    caller removes their files with :func:`remove_objects` after commit.
    """
    upload = get_upload(session, tenant, upload_id, lock=True)
    _receiving(upload)
    parts = list(session.scalars(sa.select(UploadPart).where(UploadPart.upload_id == upload.id)))
    objects = [session.get_one(StoredObject, part.object_id) for part in parts]
    for part in parts:
        session.delete(part)
    session.flush()
    for record in objects:
        session.delete(record)
    upload.status = UploadStatus.ABORTED.value
    upload.finished_at = utcnow()
    upload.received_bytes = 0
    deployment.audit.record_event(
        session, tag, actor=actor, tenant=tenant.id, target=upload.id,
        details={"parts": len(parts)},
    )
    return objects


def remove_objects(store: LocalObjectStore, objects: Iterable[StoredObject]) -> None:
    """Remove the files of objects whose rows are gone (call after the commit)."""
    for record in objects:
        store.delete(BlobRef(record.tenant_id, record.digest, record.size))


def upload_objects(session: Session, tenant: Tenant, upload: Upload) -> list[StoredObject]:
    """The upload's part objects in order."""
    if upload.tenant_id != tenant.id:
        raise UploadNotFound("no such upload")
    rows = session.scalars(
        sa.select(StoredObject)
        .join(UploadPart, UploadPart.object_id == StoredObject.id)
        .where(UploadPart.upload_id == upload.id, StoredObject.tenant_id == tenant.id)
        .order_by(UploadPart.number)
    )
    return list(rows)


def iter_upload_plaintext(
    session: Session, store: LocalObjectStore, ring: TenantKeyRing, tenant: Tenant, upload: Upload
) -> Generator[bytes]:
    """The upload's decrypted bytes across its parts in order, never written to disk.

    The parts are looked up now, in ``session``; the bytes are read as the
    result is iterated, so it may be consumed after the session has closed.
    """
    objects = upload_objects(session, tenant, upload)

    def stream() -> Generator[bytes]:
        for record in objects:
            yield from read_object(store, ring, record)

    return stream()


class UploadView(SeekableView):
    """The upload's plaintext as one seekable, read-only file over its encrypted parts.

    Each part is an object of its own; reads decrypt only the segments they
    touch (:class:`~strongroom.crypto.streaming.RandomAccessOpener`). For
    readers that need to seek, such as ``pyarrow.parquet.ParquetFile``.
    """

    def __init__(self, parts: list[RandomAccessOpener], handles: list[BinaryIO]) -> None:
        super().__init__()
        self._parts = parts
        self._handles = handles
        self._starts: list[int] = []
        total = 0
        for part in parts:
            self._starts.append(total)
            total += part.length
        self.length = total
        self._position = 0

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        view = memoryview(buffer).cast("B")
        filled = 0
        while filled < len(view) and self._position < self.length:
            index = bisect.bisect_right(self._starts, self._position) - 1
            part = self._parts[index]
            part.seek(self._position - self._starts[index])
            count = part.readinto(view[filled:])
            if not count:
                break
            filled += count
            self._position += count
        return filled

    def close(self) -> None:
        for handle in self._handles:
            handle.close()
        super().close()


def _open_part(ring: TenantKeyRing, record: StoredObject, handle: BinaryIO) -> RandomAccessOpener:
    data_key = ring.open_data_key(record.wrapped_key, record.id)
    context = object_context(ring.environment, record.tenant_id, record.id)
    part = data_key.open_random_access(context, handle, record.size)
    if part.length != record.plaintext_size:
        raise ObjectCorrupted("an upload part is not the size it was recorded with")
    return part


def open_upload_random_access(
    session: Session, store: LocalObjectStore, ring: TenantKeyRing, tenant: Tenant, upload: Upload
) -> UploadView:
    """A seekable plaintext view of the upload; close it when done.

    Every part's stored bytes are first checked against their recorded digest;
    each segment read is then authenticated as it is decrypted, in memory.
    """
    handles: list[BinaryIO] = []
    parts: list[RandomAccessOpener] = []
    try:
        for record in upload_objects(session, tenant, upload):
            ref = BlobRef(record.tenant_id, record.digest, record.size)
            handles.append(store.verified_path(ref).open("rb"))
            parts.append(_open_part(ring, record, handles[-1]))
    except BaseException:
        for opened in handles:
            opened.close()
        raise
    return UploadView(parts, handles)
