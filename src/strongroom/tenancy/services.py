"""Create, list, suspend and resume tenants.

A tenant's slug is its public name in URLs, paths of nothing (storage uses the
random tenant id) and the CLI; it is validated strictly anyway so that no
slug can ever carry a path or shell trick.
"""

from __future__ import annotations

import re
import uuid

import sqlalchemy as sa
from sqlalchemy.orm import Session

from strongroom.crypto.keystore import KeyStore
from strongroom.db import utcnow
from strongroom.tenancy.errors import InvalidSlug, TenantExists, TenantNotFound, TenantSuspended
from strongroom.tenancy.models import Tenant, TenantStatus

# Matched with fullmatch: a "$" anchor would also let a trailing newline through.
SLUG_PATTERN = re.compile(r"[a-z][a-z0-9]*(?:-[a-z0-9]+)*")
SLUG_MIN, SLUG_MAX = 3, 40
NAME_MAX = 200


def validate_slug(slug: str) -> str:
    """Return ``slug`` if it is 3-40 lower-case letters, digits and single inner hyphens."""
    if not (SLUG_MIN <= len(slug) <= SLUG_MAX) or not SLUG_PATTERN.fullmatch(slug):
        raise InvalidSlug(
            "tenant slug must be 3-40 characters: lower-case letters, digits and single "
            "hyphens, starting with a letter (for example acme-retail)"
        )
    return slug


def create_tenant(session: Session, keys: KeyStore, slug: str, name: str | None = None) -> Tenant:
    """Create a tenant and its own key-encryption keyset, in the caller's transaction."""
    validate_slug(slug)
    display = (name or slug).strip()
    if not display or len(display) > NAME_MAX or not display.isprintable():
        raise InvalidSlug(f"tenant name must be 1-{NAME_MAX} printable characters")
    if session.scalar(sa.select(Tenant.id).where(Tenant.slug == slug)) is not None:
        raise TenantExists(f"a tenant with slug {slug} already exists")
    tenant = Tenant(id=uuid.uuid4().hex, slug=slug, name=display)
    session.add(tenant)
    session.flush()
    keys.create_tenant_ring(session, tenant.id)
    return tenant


def get_tenant(session: Session, slug: str) -> Tenant:
    validate_slug(slug)
    tenant = session.scalar(sa.select(Tenant).where(Tenant.slug == slug))
    if tenant is None:
        raise TenantNotFound(f"no tenant with slug {slug}")
    return tenant


def list_tenants(session: Session) -> list[Tenant]:
    return list(session.scalars(sa.select(Tenant).order_by(Tenant.slug)))


def _set_status(session: Session, slug: str, status: TenantStatus) -> Tenant:
    tenant = get_tenant(session, slug)
    if tenant.status != status.value:
        tenant.status = status.value
        tenant.status_changed_at = utcnow()
    return tenant


def suspend_tenant(session: Session, slug: str) -> Tenant:
    """Stop everything the tenant can do; its data and keys stay intact."""
    return _set_status(session, slug, TenantStatus.SUSPENDED)


def resume_tenant(session: Session, slug: str) -> Tenant:
    return _set_status(session, slug, TenantStatus.ACTIVE)


def require_active(tenant: Tenant) -> None:
    if not tenant.is_active:
        raise TenantSuspended(f"tenant {tenant.slug} is suspended")
