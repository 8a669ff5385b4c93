"""Exports, their single-use download links, and the velocity ledger and limits.

Nothing here holds personal data in clear: an export's bytes are an encrypted
object, its download key is stored as a SHA-256 hash, and the subjects it
reached are kept only as keyed HMACs (truncated to 128 bits) under a
per-tenant ledger key sealed by the tenant keyset.
"""

from __future__ import annotations

import datetime as dt
from enum import StrEnum

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from strongroom.db import Base, UTCDateTime, utcnow


class ExportStatus(StrEnum):
    READY = "ready"
    DOWNLOADED = "downloaded"
    EXPIRED = "expired"


class ExportFormat(StrEnum):
    CSV = "csv"
    PARQUET = "parquet"


class Metric(StrEnum):
    ROWS = "rows"
    BYTES = "bytes"
    EXPORTS = "exports"
    SUBJECTS = "subjects"


class Window(StrEnum):
    HOUR = "hour"
    DAY = "day"

    @property
    def length(self) -> dt.timedelta:
        return dt.timedelta(hours=1) if self is Window.HOUR else dt.timedelta(days=1)


class Scope(StrEnum):
    USER = "user"
    TENANT = "tenant"


# The eight limit names, in a fixed order: rows_per_hour, rows_per_day, bytes_per_hour, ...
LIMIT_NAMES: tuple[str, ...] = tuple(f"{m.value}_per_{w.value}" for m in Metric for w in Window)


def limit_name(metric: Metric, window: Window) -> str:
    return f"{metric.value}_per_{window.value}"


class _EightLimits:
    """One nullable number per (metric, window); NULL means "not set here"."""

    rows_per_hour: Mapped[int | None] = mapped_column(sa.BigInteger)
    rows_per_day: Mapped[int | None] = mapped_column(sa.BigInteger)
    bytes_per_hour: Mapped[int | None] = mapped_column(sa.BigInteger)
    bytes_per_day: Mapped[int | None] = mapped_column(sa.BigInteger)
    exports_per_hour: Mapped[int | None] = mapped_column(sa.BigInteger)
    exports_per_day: Mapped[int | None] = mapped_column(sa.BigInteger)
    subjects_per_hour: Mapped[int | None] = mapped_column(sa.BigInteger)
    subjects_per_day: Mapped[int | None] = mapped_column(sa.BigInteger)


class ExportCap(_EightLimits, Base):
    """The operator's caps for one tenant; an unset cap falls back to the export_cap_* setting."""

    __tablename__ = "export_caps"

    tenant_id: Mapped[str] = mapped_column(sa.ForeignKey("tenants.id"), primary_key=True)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)


class ExportLimit(_EightLimits, Base):
    """A tenant admin's limits within the caps, for the whole tenant or for each user."""

    __tablename__ = "export_limits"

    tenant_id: Mapped[str] = mapped_column(sa.ForeignKey("tenants.id"), primary_key=True)
    scope: Mapped[str] = mapped_column(sa.String(16), primary_key=True)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_by: Mapped[str | None] = mapped_column(sa.String(64))


class ExportQuotaState(Base):
    """Per tenant: the row velocity checks lock, and the sealed key of the subject ledger."""

    __tablename__ = "export_quota_state"

    tenant_id: Mapped[str] = mapped_column(sa.ForeignKey("tenants.id"), primary_key=True)
    ledger_key_sealed: Mapped[bytes] = mapped_column(sa.LargeBinary)
    checks: Mapped[int] = mapped_column(sa.BigInteger, default=0)


class ExportUsage(Base):
    """What one export took from the quotas: reserved before it runs, settled after.

    ``subject_macs`` is the concatenation of the 16-byte ledger HMACs of the
    distinct key values the export reached, so a rolling window's distinct
    subjects are the union over the usage rows inside it.
    """

    __tablename__ = "export_usage"
    __table_args__ = (sa.Index("ix_export_usage_tenant_time", "tenant_id", "occurred_at"),)

    id: Mapped[str] = mapped_column(sa.String(32), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(sa.ForeignKey("tenants.id"))
    user_id: Mapped[str] = mapped_column(sa.String(64))
    export_id: Mapped[str | None] = mapped_column(sa.String(32))
    occurred_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    rows: Mapped[int] = mapped_column(sa.BigInteger)
    size: Mapped[int] = mapped_column("bytes", sa.BigInteger)  # bytes written
    subjects: Mapped[int] = mapped_column(sa.BigInteger)
    subject_macs: Mapped[bytes] = mapped_column(sa.LargeBinary)
    settled: Mapped[bool] = mapped_column(sa.Boolean, default=False)


class ExportRefusal(Base):
    """A velocity refusal, counted so that repeated refusals raise a security alert."""

    __tablename__ = "export_refusals"
    __table_args__ = (sa.Index("ix_export_refusals_tenant_time", "tenant_id", "occurred_at"),)

    id: Mapped[str] = mapped_column(sa.String(32), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(sa.ForeignKey("tenants.id"))
    user_id: Mapped[str] = mapped_column(sa.String(64))
    occurred_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    reason: Mapped[str] = mapped_column(sa.String(64))


class Export(Base):
    """One export: its encrypted file (until purged) and its single-use download link."""

    __tablename__ = "exports"
    __table_args__ = (sa.Index("ix_exports_tenant_creator", "tenant_id", "created_by"),)

    id: Mapped[str] = mapped_column(sa.String(32), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(sa.ForeignKey("tenants.id"), index=True)
    created_by: Mapped[str] = mapped_column(sa.String(64))
    # Plain ids, not foreign keys: purging a dataset must not be blocked by its exports.
    dataset_id: Mapped[str] = mapped_column(sa.String(32))
    version_id: Mapped[str] = mapped_column(sa.String(32))
    selection_id: Mapped[str | None] = mapped_column(sa.String(32))
    format: Mapped[str] = mapped_column(sa.String(16))
    status: Mapped[str] = mapped_column(sa.String(16), default=ExportStatus.READY.value)
    rows: Mapped[int] = mapped_column(sa.BigInteger)
    size: Mapped[int] = mapped_column("bytes", sa.BigInteger)  # bytes written
    subjects: Mapped[int] = mapped_column(sa.BigInteger)
    sha256: Mapped[str] = mapped_column(sa.String(64))
    transforms: Mapped[str] = mapped_column(sa.Text)
    anonymity: Mapped[str | None] = mapped_column(sa.Text)
    object_id: Mapped[str | None] = mapped_column(sa.ForeignKey("objects.id"))
    link_hash: Mapped[str] = mapped_column(sa.String(64))
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    downloaded_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    purged_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)

    def status_at(self, now: dt.datetime) -> ExportStatus:
        """Downloaded, expired (by ``now``) or still ready to download."""
        if self.downloaded_at is not None:
            return ExportStatus.DOWNLOADED
        if self.expires_at <= now or self.purged_at is not None:
            return ExportStatus.EXPIRED
        return ExportStatus.READY
