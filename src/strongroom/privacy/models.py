"""Stored pseudonymisation keys: a row per tenant and key version, wrapped by the tenant keyring."""

from __future__ import annotations

import datetime as dt

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from strongroom.db import Base, UTCDateTime, utcnow


class PseudonymKeyRecord(Base):
    """A version of a tenant's pseudonym (HMAC) and token (AES-SIV) keys.

    Versions are never deleted while the tenant exists: a token made under an old
    version can still be reversed after rotation. The newest version is current.
    """

    __tablename__ = "privacy_keys"
    __table_args__ = (
        sa.UniqueConstraint("tenant_id", "version", name="uq_privacy_keys_tenant_version"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    tenant_id: Mapped[str] = mapped_column(sa.ForeignKey("tenants.id"))
    version: Mapped[int] = mapped_column(sa.Integer)
    wrapped_key: Mapped[bytes] = mapped_column(sa.LargeBinary)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
