"""Usage events and insider-programme consent.

An event names a feature from a fixed list, when it was used (to the hour),
how long it took and how much it handled (coarse numbers), and who used it as a
keyed pseudonym. Only for a user who has opted in to the insider programme does
the event also carry the user id, in ``user_id``: a foreign key, so purging the
tenant's users removes those events too, and opting out clears it again.
"""

from __future__ import annotations

import datetime as dt
from enum import StrEnum

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from strongroom.db import Base, UTCDateTime, utcnow


class UsageFeature(StrEnum):
    """Every feature usage can be recorded for. Nothing else can be: no free text."""

    LOGIN = "login"
    DATASET_UPLOAD = "dataset.upload"
    DATASET_BUILD = "dataset.build"
    ANALYSIS_COUNT = "analysis.count"
    ANALYSIS_CUBE = "analysis.cube"
    ANALYSIS_PREVIEW = "analysis.preview"
    ANALYSIS_SQL = "analysis.sql"
    SELECTION_SAVE = "selection.save"
    EXPORT_CREATE = "export.create"
    EXPORT_DOWNLOAD = "export.download"
    TOKEN_REVERSE = "token.reverse"  # noqa: S105 (a feature name, not a secret)  # nosec B105


class UsageEvent(Base):
    __tablename__ = "telemetry_events"

    id: Mapped[int] = mapped_column(primary_key=True)
    # Truncated to the hour: exact times would let the event be matched to the audit trail.
    occurred_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, index=True)
    feature: Mapped[str] = mapped_column(sa.String(40))
    # Kept so that purging a tenant removes its events; exports show its pseudonym only.
    tenant_id: Mapped[str] = mapped_column(sa.ForeignKey("tenants.id"), index=True)
    # HMAC-SHA256 of the user id under the deployment's telemetry key, always present.
    subject: Mapped[str] = mapped_column(sa.String(64))
    # Only for an insider at the time of the event; cleared when they opt out.
    user_id: Mapped[str | None] = mapped_column(sa.ForeignKey("users.id"), index=True)
    duration_ms: Mapped[int | None] = mapped_column(sa.BigInteger)
    rows: Mapped[int | None] = mapped_column(sa.BigInteger)
    size_bytes: Mapped[int | None] = mapped_column(sa.BigInteger)


class InsiderConsent(Base):
    """A user's own choice about the insider programme; its history is in the audit trail."""

    __tablename__ = "telemetry_consents"

    user_id: Mapped[str] = mapped_column(sa.ForeignKey("users.id"), primary_key=True)
    insider: Mapped[bool] = mapped_column(sa.Boolean, default=False)
    changed_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
