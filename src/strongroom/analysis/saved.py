"""Saved selections: named per tenant, versioned, checked when saved, sealed at rest.

A name has versions 1..n; saving a selection again under its id adds a version
and never changes an old one, so a count or export can say exactly which
version it used. Each version is compiled against the tenant's current schema
before it is stored (a selection that would not run is refused then, not on
first use), and stored sealed with the tenant keyring because its values (an
e-mail address to match) can be personal data. Every change is audited; the
audit holds the name and selection only as keyed HMACs.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import uuid
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from strongroom.analysis.errors import InvalidSelection, SelectionExists, SelectionNotFound
from strongroom.analysis.models import SavedSelection, SavedSelectionVersion
from strongroom.analysis.selections import Schema, compile_selection
from strongroom.audit import Actor, EventTag, Sensitive
from strongroom.crypto.keyring import TenantKeyRing
from strongroom.db import utcnow
from strongroom.deployment import Deployment
from strongroom.errors import InvalidInput
from strongroom.tenancy.models import Tenant
from strongroom.tenancy.services import require_active

NAME_MAX = 100
SELECTION_MAX_BYTES = 64 * 1024
_ID = re.compile(r"[0-9a-f]{32}")


@dataclass(frozen=True)
class SelectionVersion:
    """One version of a saved selection, unsealed."""

    id: str
    name: str
    dataset: str
    version: int
    latest_version: int
    selection: Any
    created_at: dt.datetime
    updated_at: dt.datetime


def _context(ring: TenantKeyRing, selection_id: str, number: int) -> bytes:
    env = ring.environment.value
    return f"strongroom/saved-selection/{env}/{ring.tenant_id}/{selection_id}/{number}".encode()


def canonical(selection: object) -> str:
    """The selection as canonical JSON (for sealing and for its audit HMAC)."""
    text = json.dumps(selection, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    if len(text.encode()) > SELECTION_MAX_BYTES:
        raise InvalidSelection(f"selection: larger than {SELECTION_MAX_BYTES} bytes as JSON")
    return text


def _clean_name(name: str) -> str:
    clean = name.strip()
    if not clean or len(clean) > NAME_MAX or not clean.isprintable():
        raise InvalidInput(f"a selection name must be 1-{NAME_MAX} printable characters")
    return clean


def get_selection(session: Session, tenant: Tenant, selection_id: str) -> SavedSelection:
    """The tenant's saved selection; another tenant's is simply not found."""
    if not _ID.fullmatch(selection_id):
        raise SelectionNotFound("no such saved selection")
    saved = session.get(SavedSelection, selection_id)
    if saved is None or saved.tenant_id != tenant.id:
        raise SelectionNotFound("no such saved selection")
    return saved


def list_selections(session: Session, tenant: Tenant) -> list[SavedSelection]:
    """The tenant's saved selections by name."""
    stmt = (
        sa.select(SavedSelection)
        .where(SavedSelection.tenant_id == tenant.id)
        .order_by(SavedSelection.name, SavedSelection.id)
    )
    return list(session.scalars(stmt))


def read_version(
    session: Session, deployment: Deployment, saved: SavedSelection, number: int | None = None
) -> SelectionVersion:
    """Version ``number`` (default: the latest) of a saved selection, unsealed."""
    wanted = saved.latest_version if number is None else number
    row = session.get(SavedSelectionVersion, (saved.id, wanted))
    if row is None:
        raise SelectionNotFound("the saved selection has no such version")
    ring = deployment.keys.tenant_ring(session, saved.tenant_id)
    selection = json.loads(ring.decrypt(row.selection_sealed, _context(ring, saved.id, wanted)))
    return SelectionVersion(saved.id, saved.name, saved.dataset, wanted, saved.latest_version,
                            selection, row.created_at, saved.updated_at)


def _add_version(
    session: Session, deployment: Deployment, saved: SavedSelection, actor: Actor,
    text: str, number: int,
) -> None:
    ring = deployment.keys.tenant_ring(session, saved.tenant_id)
    session.add(SavedSelectionVersion(
        selection_id=saved.id, number=number, created_by=actor.id,
        selection_sealed=ring.encrypt(text.encode(), _context(ring, saved.id, number)),
    ))


def create_selection(
    session: Session, deployment: Deployment, tenant: Tenant, actor: Actor, *,
    name: str, dataset: str, selection: object, schema: Schema, today: dt.date,
) -> SavedSelection:
    """Save a new named selection over ``dataset`` as its version 1.

    ``schema`` is the tenant's current schema: the selection must compile against it.
    """
    require_active(tenant)
    clean = _clean_name(name)
    compile_selection(selection, schema, dataset, today=today)
    text = canonical(selection)
    taken = session.scalar(sa.select(SavedSelection.id).where(
        SavedSelection.tenant_id == tenant.id, SavedSelection.name == clean))
    if taken is not None:
        raise SelectionExists("a saved selection with this name already exists",
                              hint="save a new version of it with PUT, or choose another name")
    now = utcnow()
    saved = SavedSelection(
        id=uuid.uuid4().hex, tenant_id=tenant.id, name=clean, dataset=dataset,
        latest_version=1, created_by=actor.id, created_at=now, updated_at=now,
    )
    try:
        with session.begin_nested():
            session.add(saved)
            session.flush()
    except sa.exc.IntegrityError:
        raise SelectionExists("a saved selection with this name already exists") from None
    _add_version(session, deployment, saved, actor, text, 1)
    deployment.audit.record_event(
        session, EventTag.SELECTION_CREATE, actor=actor, tenant=tenant.id,
        target=f"selection:{saved.id}",
        details={"name": Sensitive(clean), "version": 1, "selection": Sensitive(text)},
    )
    return saved


def update_selection(
    session: Session, deployment: Deployment, tenant: Tenant, actor: Actor, selection_id: str,
    *, selection: object, schema: Schema, today: dt.date,
) -> SavedSelection:
    """Save ``selection`` as the next version of a saved selection (same name and dataset)."""
    require_active(tenant)
    saved = get_selection(session, tenant, selection_id)
    compile_selection(selection, schema, saved.dataset, today=today)
    text = canonical(selection)
    locked = session.get_one(SavedSelection, saved.id, with_for_update=True)
    number = locked.latest_version + 1
    try:
        with session.begin_nested():
            _add_version(session, deployment, locked, actor, text, number)
            session.flush()
    except sa.exc.IntegrityError:
        # Another save took this number first (SQLite has no row locks): nothing was stored.
        raise SelectionExists(f"version {number} was saved by someone else just now",
                              hint="read the selection again and save on top of it") from None
    locked.latest_version = number
    locked.updated_at = utcnow()
    deployment.audit.record_event(
        session, EventTag.SELECTION_UPDATE, actor=actor, tenant=tenant.id,
        target=f"selection:{saved.id}",
        details={"version": number, "selection": Sensitive(text)},
    )
    return locked


def delete_selection(
    session: Session, deployment: Deployment, tenant: Tenant, actor: Actor, selection_id: str
) -> None:
    """Remove a saved selection and all its versions."""
    require_active(tenant)
    saved = get_selection(session, tenant, selection_id)
    versions = saved.latest_version
    session.execute(sa.delete(SavedSelectionVersion).where(
        SavedSelectionVersion.selection_id == saved.id))
    session.delete(saved)
    deployment.audit.record_event(
        session, EventTag.SELECTION_DELETE, actor=actor, tenant=tenant.id,
        target=f"selection:{selection_id}", details={"versions": versions},
    )
