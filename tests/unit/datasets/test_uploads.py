"""Chunked, resumable uploads: encrypted parts, offsets, limits, aborts, tenant separation."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from tests.unit.audit.conftest import break_audit_writes, repair_audit_writes

from strongroom.audit import Actor
from strongroom.audit.errors import AuditUnavailable
from strongroom.audit.models import AuditEvent
from strongroom.datasets import uploads
from strongroom.datasets.errors import (
    BadUpload,
    UploadNotFound,
    UploadNotReceiving,
    UploadTooLarge,
    WrongOffset,
)
from strongroom.datasets.models import Upload, UploadPart, UploadStatus
from strongroom.deployment import Deployment
from strongroom.storage.models import StoredObject
from strongroom.tenancy.models import Tenant

ANALYST = Actor(kind="user", id="analyst-1", role="analyst")
FILENAME = "customers-filename-7f1c.csv"
LIMIT = 1 << 20


def audit_tags(deployment: Deployment, tenant: Tenant) -> list[tuple[str, str]]:
    """(tag, outcome) of the tenant's audit events, in order."""
    with deployment.transaction() as session:
        rows = session.execute(
            sa.select(AuditEvent.tag, AuditEvent.outcome)
            .where(AuditEvent.tenant_id == tenant.id)
            .order_by(AuditEvent.seq)
        )
        return [(tag, outcome) for tag, outcome in rows]


def object_files(deployment: Deployment, tenant: Tenant) -> list[Path]:
    root = deployment.store.root / "tenants" / tenant.id
    return sorted(p for p in root.rglob("*") if p.is_file()) if root.exists() else []


def start_upload(
    deployment: Deployment, tenant: Tenant, *, max_bytes: int = LIMIT,
    declared_size: int | None = None, **csv: object,
) -> str:
    with deployment.transaction() as session:
        upload = uploads.create_upload(
            session, deployment, tenant, ANALYST, filename=FILENAME, fmt="csv",
            max_bytes=max_bytes, declared_size=declared_size, csv_options=dict(csv) or None,
        )
        return upload.id


def send(deployment: Deployment, tenant: Tenant, upload_id: str, offset: int,
         data: bytes) -> uploads.UploadState:
    with deployment.transaction() as session:
        return uploads.append_chunk(
            session, deployment, tenant, ANALYST, upload_id, offset,
            (data[i : i + 1000] for i in range(0, len(data), 1000)),
        )


def upload_bytes(deployment: Deployment, tenant: Tenant, data: bytes, parts: int = 2) -> str:
    """A complete upload of ``data`` in ``parts`` chunks; returns its id."""
    upload_id = start_upload(deployment, tenant)
    step = -(-len(data) // parts)
    for offset in range(0, len(data), step):
        send(deployment, tenant, upload_id, offset, data[offset : offset + step])
    with deployment.transaction() as session:
        uploads.complete_upload(session, deployment, tenant, ANALYST, upload_id)
    return upload_id


def plaintext(deployment: Deployment, tenant: Tenant, upload_id: str) -> bytes:
    with deployment.transaction() as session:
        upload = uploads.get_upload(session, tenant, upload_id)
        ring = deployment.keys.tenant_ring(session, tenant.id)
        stream = uploads.iter_upload_plaintext(session, deployment.store, ring, tenant, upload)
    return b"".join(stream)


@pytest.fixture
def tenant(make_tenant: Callable[[str], Tenant]) -> Tenant:
    return make_tenant("acme")


def test_chunked_upload_resumes_after_a_dropped_connection(
    deployment: Deployment, tenant: Tenant
) -> None:
    data = b"id,name\n" + b"".join(b"%d,name-%d\n" % (i, i) for i in range(3000))
    first, rest = data[:10_000], data[10_000:]
    upload_id = start_upload(deployment, tenant, declared_size=len(data))

    state = send(deployment, tenant, upload_id, 0, first)
    assert (state.received_bytes, state.parts) == (len(first), 1)

    # The connection drops mid-chunk: nothing of that chunk is kept.
    def dropping() -> Iterator[bytes]:
        yield rest[:5000]
        raise ConnectionResetError("client went away")

    with deployment.transaction() as session, pytest.raises(ConnectionResetError):
        uploads.append_chunk(session, deployment, tenant, ANALYST, upload_id, len(first),
                             dropping())
    # The client, unsure what arrived, retries from the start: refused with the offset.
    with pytest.raises(WrongOffset) as refused:
        send(deployment, tenant, upload_id, 0, first)
    assert refused.value.expected_offset == len(first)
    assert refused.value.status == 409

    with deployment.transaction() as session:
        status = uploads.upload_status(session, tenant, upload_id)
    assert (status.received_bytes, status.parts, status.status) == (len(first), 1, "receiving")
    send(deployment, tenant, upload_id, status.received_bytes, rest)
    with deployment.transaction() as session:
        done = uploads.complete_upload(session, deployment, tenant, ANALYST, upload_id)
        assert done.status == UploadStatus.COMPLETE.value
        assert uploads.upload_filename(session, deployment, done) == FILENAME

    assert plaintext(deployment, tenant, upload_id) == data
    assert len(object_files(deployment, tenant)) == 2
    with pytest.raises(UploadNotReceiving):
        send(deployment, tenant, upload_id, len(data), b"more")


def test_parts_are_stored_encrypted_and_the_file_name_sealed(
    deployment: Deployment, tenant: Tenant
) -> None:
    data = b"id,secret\n1,plain-canary-41b2\n"
    upload_id = upload_bytes(deployment, tenant, data, parts=1)
    for path in object_files(deployment, tenant):
        assert b"plain-canary-41b2" not in path.read_bytes()
    with deployment.transaction() as session:
        sealed = session.get_one(Upload, upload_id).filename_sealed
        details = session.scalars(sa.select(AuditEvent.details)).all()
    assert FILENAME.encode() not in sealed
    assert not any(FILENAME in detail for detail in details)
    assert any('"filename":{"hmac"' in detail for detail in details)


def test_another_tenants_upload_is_simply_not_found(
    deployment: Deployment, make_tenant: Callable[[str], Tenant], tenant: Tenant
) -> None:
    other = make_tenant("globex")
    upload_id = upload_bytes(deployment, tenant, b"a,b\n1,2\n", parts=1)
    with deployment.transaction() as session:
        with pytest.raises(UploadNotFound):
            uploads.upload_status(session, other, upload_id)
        with pytest.raises(UploadNotFound):
            uploads.get_upload(session, other, upload_id)
        with pytest.raises(UploadNotFound):
            uploads.upload_status(session, other, "not-an-id")
    with pytest.raises(UploadNotFound):
        send(deployment, other, upload_id, 8, b"x")
    with deployment.transaction() as session, pytest.raises(UploadNotFound):
        uploads.abort_upload(session, deployment, other, ANALYST, upload_id)


def test_the_size_limit_refuses_the_declared_size_and_the_chunk_that_crosses_it(
    deployment: Deployment, tenant: Tenant
) -> None:
    with pytest.raises(UploadTooLarge) as declared:
        start_upload(deployment, tenant, max_bytes=100, declared_size=101)
    assert declared.value.status == 413

    upload_id = start_upload(deployment, tenant, max_bytes=2500)
    send(deployment, tenant, upload_id, 0, b"x" * 2000)
    files = object_files(deployment, tenant)
    with pytest.raises(UploadTooLarge):
        send(deployment, tenant, upload_id, 2000, b"y" * 501)
    with deployment.transaction() as session:
        assert uploads.upload_status(session, tenant, upload_id).received_bytes == 2000
        assert session.scalar(sa.select(sa.func.count()).select_from(StoredObject)) == 1
    assert object_files(deployment, tenant) == files
    assert not any((deployment.store.root / ".incoming").iterdir())
    state = send(deployment, tenant, upload_id, 2000, b"y" * 500)
    assert state.received_bytes == 2500


def test_bad_uploads_are_refused_with_a_reason(deployment: Deployment, tenant: Tenant) -> None:
    with deployment.transaction() as session:
        for kwargs in (
            {"filename": "", "fmt": "csv"},
            {"filename": "a\nb.csv", "fmt": "csv"},
            {"filename": "x.zip", "fmt": "zip"},
            {"filename": "x.csv", "fmt": "csv", "csv_options": {"sep": ";"}},
            {"filename": "x.pq", "fmt": "parquet", "csv_options": {"delimiter": ";"}},
        ):
            with pytest.raises(BadUpload):
                uploads.create_upload(session, deployment, tenant, ANALYST, max_bytes=LIMIT,
                                      **kwargs)  # type: ignore[arg-type]
    upload_id = start_upload(deployment, tenant, delimiter=";", encoding="latin-1")
    with deployment.transaction() as session:
        options = uploads.upload_options(uploads.get_upload(session, tenant, upload_id))
        with pytest.raises(BadUpload):
            uploads.complete_upload(session, deployment, tenant, ANALYST, upload_id)
    assert (options.delimiter, options.encoding) == (";", "latin-1")
    with pytest.raises(BadUpload):
        send(deployment, tenant, upload_id, 0, b"")


def test_abort_leaves_no_parts(deployment: Deployment, tenant: Tenant) -> None:
    upload_id = start_upload(deployment, tenant)
    send(deployment, tenant, upload_id, 0, b"a" * 3000)
    send(deployment, tenant, upload_id, 3000, b"b" * 3000)
    assert len(object_files(deployment, tenant)) == 2
    with deployment.transaction() as session:
        gone = uploads.abort_upload(session, deployment, tenant, ANALYST, upload_id)
    uploads.remove_objects(deployment.store, gone)
    with deployment.transaction() as session:
        assert session.scalar(sa.select(sa.func.count()).select_from(UploadPart)) == 0
        assert session.scalar(sa.select(sa.func.count()).select_from(StoredObject)) == 0
        status = uploads.upload_status(session, tenant, upload_id)
    assert (status.status, status.parts) == ("aborted", 0)
    assert object_files(deployment, tenant) == []
    with pytest.raises(UploadNotReceiving):
        send(deployment, tenant, upload_id, 0, b"c")


def test_every_upload_action_is_audited(deployment: Deployment, tenant: Tenant) -> None:
    upload_bytes(deployment, tenant, b"a,b\n1,2\n3,4\n", parts=2)
    aborted = start_upload(deployment, tenant)
    with deployment.transaction() as session:
        uploads.abort_upload(session, deployment, tenant, ANALYST, aborted)
    tags = [tag for tag, _ in audit_tags(deployment, tenant)]
    assert tags == [
        "user:dataset:upload", "user:dataset:upload-part", "user:dataset:upload-part",
        "user:dataset:upload-complete", "user:dataset:upload", "user:dataset:upload-abort",
    ]
    with deployment.transaction() as session:
        part = session.scalars(
            sa.select(AuditEvent.details).where(AuditEvent.tag == "user:dataset:upload-part")
        ).first()
    assert part is not None
    assert json.loads(part)["offset"] == 0


def test_a_chunk_whose_part_cannot_be_recorded_leaves_no_file(
    deployment: Deployment, tenant: Tenant
) -> None:
    """The chunk's ciphertext is written before its part row; if recording fails (here the
    audit write, as a lost race for the offset would), the file goes with the transaction."""
    upload_id = start_upload(deployment, tenant)
    send(deployment, tenant, upload_id, 0, b"id,name\n1,a\n")
    files_before = object_files(deployment, tenant)
    break_audit_writes(deployment)
    try:
        with pytest.raises(AuditUnavailable):
            send(deployment, tenant, upload_id, 12, b"2,b\n")
    finally:
        repair_audit_writes(deployment)
    assert object_files(deployment, tenant) == files_before
    assert send(deployment, tenant, upload_id, 12, b"2,b\n").received_bytes == 16
