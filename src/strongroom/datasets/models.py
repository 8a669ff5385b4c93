"""Uploads (resumable, chunked, encrypted parts), datasets and their immutable versions."""

from __future__ import annotations

import datetime as dt
from enum import StrEnum

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from strongroom.db import Base, UTCDateTime, utcnow


class UploadStatus(StrEnum):
    RECEIVING = "receiving"
    COMPLETE = "complete"
    ABORTED = "aborted"


class UploadFormat(StrEnum):
    CSV = "csv"
    PARQUET = "parquet"


class VersionStatus(StrEnum):
    BUILDING = "building"
    READY = "ready"
    FAILED = "failed"
    CANCELLED = "cancelled"


class Upload(Base):
    """A chunked upload; ``received_bytes`` is the offset the client resumes from."""

    __tablename__ = "dataset_uploads"

    id: Mapped[str] = mapped_column(sa.String(32), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(sa.ForeignKey("tenants.id"), index=True)
    created_by: Mapped[str | None] = mapped_column(sa.String(64))
    # The client's file name is metadata only, sealed with the tenant keyring.
    filename_sealed: Mapped[bytes] = mapped_column(sa.LargeBinary)
    format: Mapped[str] = mapped_column(sa.String(16))
    csv_options: Mapped[str] = mapped_column(sa.Text, default="{}")
    declared_size: Mapped[int | None] = mapped_column(sa.BigInteger)
    max_bytes: Mapped[int] = mapped_column(sa.BigInteger)
    received_bytes: Mapped[int] = mapped_column(sa.BigInteger, default=0)
    status: Mapped[str] = mapped_column(sa.String(16), default=UploadStatus.RECEIVING.value)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    finished_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)


class UploadPart(Base):
    """One chunk of an upload, stored as its own immutable encrypted object."""

    __tablename__ = "dataset_upload_parts"

    upload_id: Mapped[str] = mapped_column(sa.ForeignKey("dataset_uploads.id"), primary_key=True)
    number: Mapped[int] = mapped_column(sa.Integer, primary_key=True)
    object_id: Mapped[str] = mapped_column(sa.ForeignKey("objects.id"))
    offset: Mapped[int] = mapped_column(sa.BigInteger)
    size: Mapped[int] = mapped_column(sa.BigInteger)


class Dataset(Base):
    __tablename__ = "datasets"
    __table_args__ = (
        # Names are unique per tenant among datasets not deleted.
        sa.Index(
            "uq_datasets_tenant_live_name", "tenant_id", "name", unique=True,
            sqlite_where=sa.text("deleted_at IS NULL"),
            postgresql_where=sa.text("deleted_at IS NULL"),
        ),
    )

    id: Mapped[str] = mapped_column(sa.String(32), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(sa.ForeignKey("tenants.id"), index=True)
    name: Mapped[str] = mapped_column(sa.String(100))
    key_column: Mapped[str | None] = mapped_column(sa.String(200))
    build_locked: Mapped[bool] = mapped_column(sa.Boolean, default=False)
    created_by: Mapped[str | None] = mapped_column(sa.String(64))
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    deleted_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    purge_after: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)


class DatasetVersion(Base):
    """One build of a dataset; its encrypted Parquet file is an object under the tenant prefix."""

    __tablename__ = "dataset_versions"
    __table_args__ = (sa.UniqueConstraint("dataset_id", "number"),)

    id: Mapped[str] = mapped_column(sa.String(32), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(sa.ForeignKey("tenants.id"), index=True)
    dataset_id: Mapped[str] = mapped_column(sa.ForeignKey("datasets.id"), index=True)
    number: Mapped[int] = mapped_column(sa.Integer)
    status: Mapped[str] = mapped_column(sa.String(16), default=VersionStatus.BUILDING.value)
    upload_id: Mapped[str | None] = mapped_column(sa.ForeignKey("dataset_uploads.id"))
    parquet_digest: Mapped[str | None] = mapped_column(sa.String(64))
    parquet_size: Mapped[int | None] = mapped_column(sa.BigInteger)
    schema_json: Mapped[str | None] = mapped_column(sa.Text)
    row_count: Mapped[int | None] = mapped_column(sa.BigInteger)
    rejected_count: Mapped[int | None] = mapped_column(sa.BigInteger)
    report: Mapped[str | None] = mapped_column(sa.Text)
    built_by: Mapped[str | None] = mapped_column(sa.String(64))
    started_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    finished_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    progress_rows: Mapped[int] = mapped_column(sa.BigInteger, default=0)
    progress_bytes: Mapped[int] = mapped_column(sa.BigInteger, default=0)
    cancel_requested: Mapped[bool] = mapped_column(sa.Boolean, default=False)
