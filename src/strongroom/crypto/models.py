"""Stored key material: every row holds a Tink keyset encrypted by the environment KEK."""

from __future__ import annotations

import datetime as dt

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from strongroom.db import Base, UTCDateTime, utcnow


class DeploymentRecord(Base):
    """One row: which environment this deployment was created as, and its key check."""

    __tablename__ = "deployment"

    id: Mapped[int] = mapped_column(primary_key=True)
    environment: Mapped[str] = mapped_column(sa.String(16))
    key_check: Mapped[bytes] = mapped_column(sa.LargeBinary)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)


class KeysetRecord(Base):
    """A wrapped Tink keyset. ``owner`` is a tenant id, or "deployment" for deployment keys."""

    __tablename__ = "keysets"
    __table_args__ = (sa.UniqueConstraint("owner", "purpose", name="uq_keysets_owner_purpose"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    owner: Mapped[str] = mapped_column(sa.String(64))
    purpose: Mapped[str] = mapped_column(sa.String(32))
    encrypted_keyset: Mapped[bytes] = mapped_column(sa.LargeBinary)
    version: Mapped[int] = mapped_column(default=1)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    rotated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
