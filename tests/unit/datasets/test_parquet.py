"""Parquet uploads: read in place over the encrypted parts, typed, rebuilt under our encryption.

And what is not Parquet (a ZIP archive, text, a truncated file, someone else's
encrypted Parquet, a column of a type a dataset cannot hold) is refused with a
precise 422 before any version exists.
"""

from __future__ import annotations

import base64
import datetime as dt
import decimal
import io
import zipfile
from collections.abc import Callable
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pyarrow.parquet.encryption as pqe
import pytest
import sqlalchemy as sa
from tests.unit.datasets.test_jobs import new_dataset, read_version
from tests.unit.datasets.test_uploads import ANALYST, FILENAME, object_files, send

from strongroom.crypto.parquet import ParquetCrypto
from strongroom.crypto.streaming import SEGMENT_BYTES
from strongroom.datasets import catalog, jobs, uploads
from strongroom.datasets.build import ColumnType, SchemaOverrides
from strongroom.datasets.errors import (
    BadOverride,
    DatasetError,
    EncryptedParquet,
    NotParquet,
    UnsupportedColumnType,
)
from strongroom.datasets.models import DatasetVersion
from strongroom.datasets.parquet_input import build_parquet_dataset
from strongroom.deployment import Deployment
from strongroom.tenancy.models import Tenant

CANARY = "canary-parquet-41b7@example.org"


@pytest.fixture
def tenant(make_tenant: Callable[[str], Tenant]) -> Tenant:
    return make_tenant("acme")


def parquet_bytes(table: pa.Table, **kwargs: object) -> bytes:
    sink = io.BytesIO()
    pq.write_table(table, sink, **kwargs)  # type: ignore[arg-type]
    return sink.getvalue()


def upload_file(deployment: Deployment, tenant: Tenant, data: bytes, parts: int = 3) -> str:
    """A complete Parquet upload of ``data`` in ``parts`` chunks of uneven size."""
    with deployment.transaction() as session:
        upload_id = uploads.create_upload(
            session, deployment, tenant, ANALYST, filename=FILENAME, fmt="parquet",
            max_bytes=64 << 20,
        ).id
    step = max(1, -(-len(data) // parts) + 1234)
    for offset in range(0, len(data), step):
        send(deployment, tenant, upload_id, offset, data[offset : offset + step])
    with deployment.transaction() as session:
        uploads.complete_upload(session, deployment, tenant, ANALYST, upload_id)
    return upload_id


def versions(deployment: Deployment) -> int:
    with deployment.transaction() as session:
        return int(session.scalar(sa.select(sa.func.count()).select_from(DatasetVersion)) or 0)


ROWS = 3000


def typed_table(rows: int = ROWS) -> pa.Table:
    day = dt.date(2024, 1, 1)
    return pa.table({
        "id": pa.array(range(1, rows + 1), pa.int32()),
        "small": pa.array([i % 100 for i in range(rows)], pa.uint8()),
        "score": pa.array([i / 4 for i in range(rows)], pa.float32()),
        "amount": pa.array([decimal.Decimal(i) / 100 for i in range(rows)], pa.decimal128(10, 2)),
        "born": pa.array([day + dt.timedelta(days=i % 365) for i in range(rows)], pa.date32()),
        "seen": pa.array([1_700_000_000_000_000_123 + i for i in range(rows)],
                         pa.timestamp("ns", tz="UTC")),
        "active": pa.array([i % 3 == 0 for i in range(rows)], pa.bool_()),
        "email": pa.array([None if i % 10 == 0 else f"{CANARY}-{i}" for i in range(rows)]),
        "city": pa.array([f"town {i % 7}" for i in range(rows)], pa.large_string()),
        "tier": pa.array([["gold", "silver"][i % 2] for i in range(rows)]).dictionary_encode(),
    })


def test_a_parquet_upload_builds_typed_into_a_ready_encrypted_version(
    deployment: Deployment, tenant: Tenant
) -> None:
    table = typed_table()
    data = parquet_bytes(table, row_group_size=700, compression="none")
    upload_id = upload_file(deployment, tenant, data)
    dataset_id = new_dataset(deployment, tenant)
    overrides = SchemaOverrides(key_column="id", personal=frozenset({"email"}),
                                types={"small": ColumnType.TEXT})
    version = jobs.run_build(deployment, tenant.id, dataset_id, upload_id, ANALYST,
                             overrides=overrides)
    assert (version.status, version.row_count, version.rejected_count) == ("ready", ROWS, 0)
    assert version.progress_bytes == len(data)
    report = catalog.version_report(version)
    assert [(c["name"], c["type"], c["personal"]) for c in report["columns"]] == [
        ("id", "integer", False), ("small", "text", False), ("score", "float", False),
        ("amount", "float", False), ("born", "date", False), ("seen", "timestamp", False),
        ("active", "boolean", False), ("email", "text", True), ("city", "text", False),
        ("tier", "text", False),
    ]
    got = read_version(deployment, tenant, version)
    assert got.column("id").to_pylist() == list(range(1, ROWS + 1))
    assert got.column("small").to_pylist()[:3] == ["0", "1", "2"]
    assert got.column("amount").to_pylist()[5] == 0.05
    assert got.column("born").to_pylist()[400] == dt.date(2024, 2, 5)
    # Nanoseconds are truncated to our microseconds; the zone is dropped (values are UTC).
    assert got.column("seen").to_pylist()[0] == dt.datetime(2023, 11, 14, 22, 13, 20)  # noqa: DTZ001
    assert got.column("email").to_pylist()[:2] == [None, f"{CANARY}-1"]
    assert got.column("city").to_pylist()[8] == "town 1"
    assert got.column("tier").to_pylist()[:3] == ["gold", "silver", "gold"]
    assert got.schema.field("email").metadata[b"strongroom.personal"] == b"true"


def test_values_that_do_not_fit_reject_their_rows_by_number(
    deployment: Deployment, tenant: Tenant
) -> None:
    table = pa.table({
        "id": pa.array([1, 2, 2**64 - 1, 4, 5], pa.uint64()),  # row 3 overflows our integer
        "code": pa.array(["10", "x-secret", "30", None, "50"]),
    })
    upload_id = upload_file(deployment, tenant, parquet_bytes(table, row_group_size=2), parts=1)
    version = jobs.run_build(
        deployment, tenant.id, new_dataset(deployment, tenant), upload_id, ANALYST,
        overrides=SchemaOverrides(key_column="id", types={"code": ColumnType.INTEGER}),
    )
    assert (version.status, version.row_count) == ("ready", 3)
    report = catalog.version_report(version)
    assert [(r["row"], r["reason"]) for r in report["rejections"]] == [
        (2, "bad integer in column code"), (3, "bad integer in column id"),
    ]
    assert "x-secret" not in (version.report or "")
    assert read_version(deployment, tenant, version).column("code").to_pylist() == [10, None, 50]


def zipped_parquet() -> bytes:
    sink = io.BytesIO()
    with zipfile.ZipFile(sink, "w") as archive:
        archive.writestr("data.parquet", parquet_bytes(typed_table(10)))
    return sink.getvalue()


def foreign_encrypted_parquet(*, plaintext_footer: bool = False) -> bytes:
    class PlainKms(pqe.KmsClient):  # type: ignore[misc]
        def __init__(self, _config: object) -> None:
            super().__init__()

        def wrap_key(self, key: bytes, _master: str) -> str:
            return base64.b64encode(key).decode()

        def unwrap_key(self, wrapped: str, _master: str) -> bytes:
            return base64.b64decode(wrapped)

    factory = pqe.CryptoFactory(PlainKms)
    properties = factory.file_encryption_properties(
        pqe.KmsConnectionConfig(),
        pqe.EncryptionConfiguration(footer_key="k", column_keys={"k2": ["id"]},
                                    plaintext_footer=plaintext_footer),
    )
    sink = io.BytesIO()
    with pq.ParquetWriter(sink, pa.schema([("id", pa.int64()), ("b", pa.int64())]),
                          encryption_properties=properties) as writer:
        writer.write_table(pa.table({"id": [1, 2], "b": [3, 4]}))
    return sink.getvalue()


GOOD = parquet_bytes(typed_table(50))


@pytest.mark.parametrize(
    ("make", "error", "message"),
    [
        (zipped_parquet, NotParquet, r"the file is not Parquet \(it starts like a ZIP archive\)"),
        (lambda: b"id,name\n1,Ann\n", NotParquet, "it starts like text"),
        (lambda: GOOD[:-100], NotParquet, "does not end like it"),
        (lambda: b"\x1f\x8b" + GOOD[2:], NotParquet, "gzip"),
        (foreign_encrypted_parquet, EncryptedParquet, "encrypted Parquet"),
        (lambda: foreign_encrypted_parquet(plaintext_footer=True), EncryptedParquet,
         "encrypted Parquet columns"),
        (lambda: parquet_bytes(pa.table({"id": [1], "tags": [[1, 2]]})), UnsupportedColumnType,
         r"column 'tags' has type list<element: int64>"),
        (lambda: parquet_bytes(pa.table({"id": [1], "blob": [b"\x00"]})), UnsupportedColumnType,
         "column 'blob' has type binary"),
    ],
    ids=["zip", "csv", "truncated", "gzip", "foreign-encrypted", "foreign-encrypted-columns",
         "list-column", "binary-column"],
)
def test_what_is_not_buildable_parquet_is_refused_before_any_version(
    deployment: Deployment, tenant: Tenant, make: Callable[[], bytes],
    error: type[DatasetError], message: str,
) -> None:
    upload_id = upload_file(deployment, tenant, make(), parts=2)
    dataset_id = new_dataset(deployment, tenant)
    files = object_files(deployment, tenant)
    with pytest.raises(error, match=message) as caught:
        jobs.run_build(deployment, tenant.id, dataset_id, upload_id, ANALYST)
    assert caught.value.status == 422
    assert versions(deployment) == 0
    assert object_files(deployment, tenant) == files
    assert not any((deployment.store.root / ".incoming").iterdir())


def test_overrides_naming_unknown_columns_are_refused_before_any_version(
    deployment: Deployment, tenant: Tenant
) -> None:
    upload_id = upload_file(deployment, tenant, GOOD)
    with pytest.raises(BadOverride, match="'nope'"):
        jobs.run_build(deployment, tenant.id, new_dataset(deployment, tenant), upload_id, ANALYST,
                       overrides=SchemaOverrides(personal=frozenset({"nope"})))
    assert versions(deployment) == 0


def test_a_parquet_build_leaves_no_plaintext_on_disk(
    deployment: Deployment, tenant: Tenant
) -> None:
    # Uncompressed and several MiB: plaintext written anywhere would show the canary.
    data = parquet_bytes(typed_table(40_000), compression="none", row_group_size=10_000)
    assert len(data) > 2 * SEGMENT_BYTES
    upload_id = upload_file(deployment, tenant, data)
    version = jobs.run_build(deployment, tenant.id, new_dataset(deployment, tenant), upload_id,
                             ANALYST)
    assert version.status == "ready"
    root = deployment.settings.home
    found = [p for p in root.rglob("*")
             if p.is_file() and CANARY.encode() in p.read_bytes()]
    assert found == []


def test_cancel_midway_leaves_nothing(crypto: ParquetCrypto, tmp_path: Path) -> None:
    data = parquet_bytes(typed_table(), row_group_size=500)
    seen: list[int] = []

    def progress(rows: int, _read: int) -> None:
        seen.append(rows)

    out = tmp_path / "out" / "d.parquet"
    out.parent.mkdir()
    with pytest.raises(Exception, match="cancelled"):
        build_parquet_dataset(io.BytesIO(data), len(data), crypto, out, progress=progress,
                              cancel=lambda: len(seen) >= 2)
    assert seen == [500, 1000]
    assert list(out.parent.iterdir()) == []


def test_damage_found_mid_build_leaves_a_failed_version_and_no_object(
    deployment: Deployment, tenant: Tenant
) -> None:
    table = pa.table({"id": list(range(1, 100_001)), "b": [f"x{i}" for i in range(100_000)]})
    data = bytearray(parquet_bytes(table, row_group_size=20_000))
    middle = len(data) // 2  # a later row group's pages; the footer and the first are intact
    for i in range(middle, middle + 2000):
        data[i] ^= 0x5A
    upload_id = upload_file(deployment, tenant, bytes(data))
    files = object_files(deployment, tenant)
    version = jobs.run_build(deployment, tenant.id, new_dataset(deployment, tenant), upload_id,
                             ANALYST)
    assert version.status == "failed"
    assert (version.parquet_digest, version.row_count) == (None, None)
    assert catalog.version_report(version)["error"]["type"] == "dataset-bad-parquet"
    assert object_files(deployment, tenant) == files
    assert list(jobs.builds_dir(deployment).iterdir()) == []
