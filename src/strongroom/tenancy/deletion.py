"""Delayed, cancellable tenant deletion, against accidental destruction.

``tenant delete SLUG --confirm SLUG`` needs the slug typed back, suspends the
tenant at once (nothing can be done with it) and records when it becomes due,
``tenant_deletion_delay_days`` later. Until then ``tenant undelete`` puts it
back as it was, data and keys untouched. ``tenant purge-deleted`` removes
tenants past their due time: every row that refers to the tenant, its keyset
(so any copy of its ciphertext is unreadable from then on) and its objects.
"""

from __future__ import annotations

import datetime as dt
import shutil
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, Session, mapped_column

from strongroom.crypto.models import KeysetRecord
from strongroom.db import Base, UTCDateTime, utcnow
from strongroom.errors import Conflict, InvalidInput
from strongroom.tenancy.models import Tenant, TenantStatus
from strongroom.tenancy.services import get_tenant


class TenantDeletion(Base):
    """A pending deletion: when it was asked for, when it is due, the status to go back to."""

    __tablename__ = "tenant_deletions"

    tenant_id: Mapped[str] = mapped_column(sa.ForeignKey("tenants.id"), primary_key=True)
    requested_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    due_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    previous_status: Mapped[str] = mapped_column(sa.String(16))


class DeletionNotConfirmed(InvalidInput):
    pass


class DeletionPending(Conflict):
    pass


class NoDeletionPending(Conflict):
    pass


def request_deletion(
    session: Session, slug: str, confirm: str, delay_days: int, now: dt.datetime | None = None
) -> TenantDeletion:
    """Schedule a tenant's deletion after ``delay_days``; the slug must be typed back."""
    tenant = get_tenant(session, slug)
    if confirm != slug:
        raise DeletionNotConfirmed(
            "the slug typed back with --confirm does not match; nothing was deleted",
            hint=f"type the tenant's slug exactly: --confirm {slug}",
        )
    if session.get(TenantDeletion, tenant.id) is not None:
        raise DeletionPending(f"tenant {slug} is already waiting for deletion",
                              hint="cancel it with `strongroom tenant undelete`")
    moment = now or utcnow()
    deletion = TenantDeletion(
        tenant_id=tenant.id, requested_at=moment,
        due_at=moment + dt.timedelta(days=delay_days), previous_status=tenant.status,
    )
    session.add(deletion)
    tenant.status = TenantStatus.SUSPENDED.value
    tenant.status_changed_at = moment
    session.flush()
    return deletion


def cancel_deletion(session: Session, slug: str) -> Tenant:
    """Cancel a pending deletion; the tenant returns to the status it had before."""
    tenant = get_tenant(session, slug)
    deletion = session.get(TenantDeletion, tenant.id)
    if deletion is None:
        raise NoDeletionPending(f"tenant {slug} is not waiting for deletion")
    tenant.status = deletion.previous_status
    tenant.status_changed_at = utcnow()
    session.delete(deletion)
    session.flush()
    return tenant


def pending_deletions(session: Session) -> list[tuple[Tenant, TenantDeletion]]:
    rows = session.execute(
        sa.select(Tenant, TenantDeletion)
        .join(TenantDeletion, TenantDeletion.tenant_id == Tenant.id)
        .order_by(TenantDeletion.due_at)
    )
    return [(t, d) for t, d in rows]


def _dependents(table: sa.Table, condition: sa.ColumnElement[bool], depth: int = 0) -> list[
        tuple[sa.Table, sa.ColumnElement[bool]]]:
    """Every (table, condition) whose rows refer, directly or not, to the rows selected."""
    found: list[tuple[sa.Table, sa.ColumnElement[bool]]] = []
    if depth > 8:
        return found
    for child in Base.metadata.sorted_tables:
        for fk in child.foreign_keys:
            if fk.column.table is table and child is not table:
                parent_keys = sa.select(fk.column).where(condition).scalar_subquery()
                where = fk.parent.in_(parent_keys)
                found.append((child, where))
                found += _dependents(child, where, depth + 1)
    return found


def purge_tenant(session: Session, tenant: Tenant) -> int:
    """Remove every row that refers to ``tenant``, its keysets and the tenant itself.

    Returns how many rows went. The caller removes the object files after commit.
    """
    import strongroom.models  # noqa: F401 - every table must be known to find the dependents

    tenants = sa.Table("tenants", Base.metadata)
    condition = tenants.c.id == tenant.id
    order = {t.name: i for i, t in enumerate(Base.metadata.sorted_tables)}
    statements: list[sa.Delete] = [
        sa.delete(table).where(where)
        for table, where in sorted(_dependents(tenants, condition), key=lambda p: -order[p[0].name])
    ]
    statements.append(sa.delete(KeysetRecord).where(KeysetRecord.owner == tenant.id))
    statements.append(sa.delete(tenants).where(condition))
    session.expunge(tenant)
    removed = 0
    for statement in statements:
        result = session.execute(statement)
        removed += int(getattr(result, "rowcount", 0) or 0)
    return removed


def remove_tenant_objects(objects_dir: Path, tenant_id: str) -> None:
    """Remove a purged tenant's object files (after its rows and keys are gone)."""
    root = objects_dir / "tenants" / tenant_id
    if root.is_dir():
        for path in [root, *root.rglob("*")]:
            path.chmod(0o700)
        shutil.rmtree(root)
