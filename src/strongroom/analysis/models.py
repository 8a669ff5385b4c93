"""Saved selections: named per tenant, each save a new immutable version."""

from __future__ import annotations

import datetime as dt

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from strongroom.db import Base, UTCDateTime, utcnow


class SavedSelection(Base):
    """A tenant's named selection over one dataset; its versions hold the selections."""

    __tablename__ = "saved_selections"
    __table_args__ = (sa.UniqueConstraint("tenant_id", "name"),)

    id: Mapped[str] = mapped_column(sa.String(32), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(sa.ForeignKey("tenants.id"), index=True)
    name: Mapped[str] = mapped_column(sa.String(100))
    dataset: Mapped[str] = mapped_column(sa.String(100))
    latest_version: Mapped[int] = mapped_column(sa.Integer, default=1)
    created_by: Mapped[str | None] = mapped_column(sa.String(64))
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)


class SavedSelectionVersion(Base):
    """One version of a saved selection. The selection can hold values that are personal
    data (an e-mail address to match), so it is stored sealed with the tenant keyring."""

    __tablename__ = "saved_selection_versions"

    selection_id: Mapped[str] = mapped_column(
        sa.ForeignKey("saved_selections.id"), primary_key=True
    )
    number: Mapped[int] = mapped_column(sa.Integer, primary_key=True)
    selection_sealed: Mapped[bytes] = mapped_column(sa.LargeBinary)
    created_by: Mapped[str | None] = mapped_column(sa.String(64))
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
