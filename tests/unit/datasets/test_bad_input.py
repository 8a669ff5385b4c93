"""The issue's bad-input list, end to end: upload (encrypted), then build.

Each input gets a precise 4xx before any version exists, or a version whose
report says what was wrong (rejected rows with numbers, or the error), and
never a half-built version: no Parquet object, no leftover file.
"""

from __future__ import annotations

import json
from collections.abc import Callable

import pytest
import sqlalchemy as sa
from tests.unit.datasets.test_jobs import new_dataset
from tests.unit.datasets.test_uploads import ANALYST, FILENAME, object_files, send

from strongroom.datasets import catalog, jobs, uploads
from strongroom.datasets.build import MAX_COLUMNS, MAX_FIELD_BYTES
from strongroom.datasets.errors import (
    BadCsv,
    BadEncoding,
    BadUpload,
    DatasetError,
    EmptyFile,
    TooManyColumns,
    WrongDelimiter,
)
from strongroom.datasets.models import DatasetVersion
from strongroom.deployment import Deployment
from strongroom.tenancy.models import Tenant

SECRET = "s3cret-field-value"
BIG = (SECRET + "y" * (1 << 20)).encode()  # a 1 MiB single field


@pytest.fixture
def tenant(make_tenant: Callable[[str], Tenant]) -> Tenant:
    return make_tenant("acme")


def upload(deployment: Deployment, tenant: Tenant, data: bytes, **csv: object) -> str:
    with deployment.transaction() as session:
        upload_id = uploads.create_upload(
            session, deployment, tenant, ANALYST, filename=FILENAME, fmt="csv",
            max_bytes=16 << 20, csv_options=dict(csv) or None,
        ).id
    step = 1 << 20
    for offset in range(0, len(data), step):
        send(deployment, tenant, upload_id, offset, data[offset : offset + step])
    with deployment.transaction() as session:
        uploads.complete_upload(session, deployment, tenant, ANALYST, upload_id)
    return upload_id


def versions(deployment: Deployment) -> list[DatasetVersion]:
    with deployment.transaction() as session:
        return list(session.scalars(sa.select(DatasetVersion)))


def nothing_left(deployment: Deployment, tenant: Tenant, files: list[object]) -> None:
    assert object_files(deployment, tenant) == files
    assert not any((deployment.store.root / ".incoming").iterdir())
    assert list(jobs.builds_dir(deployment).iterdir()) == []


def test_an_empty_upload_cannot_even_be_completed(deployment: Deployment, tenant: Tenant) -> None:
    with deployment.transaction() as session:
        upload_id = uploads.create_upload(session, deployment, tenant, ANALYST,
                                          filename=FILENAME, fmt="csv", max_bytes=1024).id
    with pytest.raises(BadUpload, match="no data"), deployment.transaction() as session:
        uploads.complete_upload(session, deployment, tenant, ANALYST, upload_id)


WIDE = ",".join(f"c{i}" for i in range(10_000)).encode() + b"\n" + b"1," * 9_999 + b"1\n"


@pytest.mark.parametrize(
    ("data", "options", "error", "message"),
    [
        (b"\n\n", {}, EmptyFile, "the file is empty"),
        (WIDE, {}, TooManyColumns, f"10000 columns; at most {MAX_COLUMNS}"),
        (b"id,\xffname\n1,a\n", {}, BadEncoding, "header is not valid UTF-8"),
        (b"id;name\n1;Ann\n2;Bob\n", {}, WrongDelimiter, "at the semicolon"),
        (BIG + b"\n1\n", {}, BadCsv, "longer than 200 characters"),
        (b"id,id\n1,2\n", {}, BadCsv, "twice"),
    ],
    ids=["blank-lines", "10k-columns", "bad-utf8-header", "wrong-delimiter", "huge-header",
         "duplicate-column"],
)
def test_input_refused_before_any_version_exists(
    deployment: Deployment, tenant: Tenant, data: bytes, options: dict[str, object],
    error: type[DatasetError], message: str,
) -> None:
    upload_id = upload(deployment, tenant, data, **options)
    dataset_id = new_dataset(deployment, tenant)
    files = object_files(deployment, tenant)
    with pytest.raises(error, match=message) as caught:
        jobs.run_build(deployment, tenant.id, dataset_id, upload_id, ANALYST)
    assert caught.value.status == 422
    assert SECRET not in caught.value.one_line()
    assert versions(deployment) == []
    nothing_left(deployment, tenant, files)


def test_a_1_mib_field_rejects_only_its_row_with_a_precise_reason(
    deployment: Deployment, tenant: Tenant
) -> None:
    data = b"id,note\n1,short\n2," + BIG + b"\n3,fine\n"
    upload_id = upload(deployment, tenant, data)
    version = jobs.run_build(deployment, tenant.id, new_dataset(deployment, tenant), upload_id,
                             ANALYST)
    assert (version.status, version.row_count, version.rejected_count) == ("ready", 2, 1)
    report = catalog.version_report(version)
    assert report["rejections"] == [
        {"row": 2, "reason": f"field in column note is longer than {MAX_FIELD_BYTES} bytes"}
    ]
    assert SECRET not in (version.report or "")


@pytest.mark.parametrize(
    ("data", "slug", "rejected"),
    [
        (b"id,note\n1," + BIG + b"\n", "dataset-no-rows", 1),  # its only row rejected
        (b"id,name\n" + b"".join(b"%d,n%d\n" % (i, i) for i in range(200_000))
         + b"7,\xc3\x28\n", "dataset-encoding", None),  # invalid UTF-8 late in the file
        (b"id,name\n", "dataset-no-rows", None),  # a header alone
    ],
    ids=["only-row-rejected", "bad-utf8-late", "header-only"],
)
def test_input_that_fails_mid_build_leaves_a_failed_version_with_its_report(
    deployment: Deployment, tenant: Tenant, data: bytes, slug: str, rejected: int | None
) -> None:
    upload_id = upload(deployment, tenant, data)
    files = object_files(deployment, tenant)
    version = jobs.run_build(deployment, tenant.id, new_dataset(deployment, tenant), upload_id,
                             ANALYST)
    assert version.status == "failed"
    assert (version.parquet_digest, version.row_count) == (None, None)
    report = json.loads(version.report or "{}")
    assert report["error"]["type"] == slug
    assert report.get("rows_rejected") == rejected
    assert SECRET not in (version.report or "")
    nothing_left(deployment, tenant, files)


def test_ragged_rows_stay_rejected_rows_in_the_report(
    deployment: Deployment, tenant: Tenant
) -> None:
    data = b"id;name\n1;Ann\n2\n3;Cy;" + SECRET.encode() + b"\n4;Dee\n"
    upload_id = upload(deployment, tenant, data, delimiter=";")
    version = jobs.run_build(deployment, tenant.id, new_dataset(deployment, tenant), upload_id,
                             ANALYST)
    assert (version.status, version.row_count, version.rejected_count) == ("ready", 2, 2)
    reasons = [r["reason"] for r in catalog.version_report(version)["rejections"]]
    assert reasons == ["wrong column count: expected 2, got 1",
                       "wrong column count: expected 2, got 3"]
    assert SECRET not in (version.report or "")
