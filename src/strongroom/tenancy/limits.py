"""Limits the operator sets per tenant, over the deployment's defaults.

So far one: the largest upload a tenant may send. A tenant without a row of
its own (or with a column left empty) gets the deployment setting.
"""

from __future__ import annotations

import dataclasses
import datetime as dt

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, Session, mapped_column

from strongroom.db import Base, UTCDateTime, utcnow
from strongroom.errors import InvalidInput
from strongroom.tenancy.models import Tenant

UPLOAD_MAX_BYTES_CEILING = 2**50  # 1 PiB: a typo guard, not a capacity claim


class TenantLimits(Base):
    """A tenant's own limits; NULL means "the deployment default"."""

    __tablename__ = "tenant_limits"

    tenant_id: Mapped[str] = mapped_column(sa.ForeignKey("tenants.id"), primary_key=True)
    upload_max_bytes: Mapped[int | None] = mapped_column(sa.BigInteger)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)


class BadLimit(InvalidInput):
    slug = "tenant-limit-invalid"


@dataclasses.dataclass(frozen=True)
class EffectiveLimit:
    """A limit as it applies, and whether the tenant's own value or the default set it."""

    value: int
    own: bool


def _row(session: Session, tenant_id: str) -> TenantLimits | None:
    return session.get(TenantLimits, tenant_id)


def upload_max_bytes(session: Session, tenant_id: str, default: int) -> EffectiveLimit:
    """The tenant's upload size limit: its own if the operator set one, else ``default``."""
    row = _row(session, tenant_id)
    if row is not None and row.upload_max_bytes is not None:
        return EffectiveLimit(row.upload_max_bytes, own=True)
    return EffectiveLimit(default, own=False)


def set_upload_max_bytes(session: Session, tenant: Tenant, value: int | None) -> int | None:
    """Set (or with ``None`` clear) the tenant's own upload limit; returns the previous one.

    Uploads already open keep the limit they were opened with.
    """
    if value is not None and not 1 <= value <= UPLOAD_MAX_BYTES_CEILING:
        raise BadLimit(f"the upload limit must be between 1 and {UPLOAD_MAX_BYTES_CEILING} bytes")
    row = _row(session, tenant.id)
    if row is None:
        row = TenantLimits(tenant_id=tenant.id)
        session.add(row)
    previous = row.upload_max_bytes
    row.upload_max_bytes = value
    row.updated_at = utcnow()
    session.flush()
    return previous
