"""Encrypted objects: streaming AEAD under a per-object data key, stored immutably.

This is where crypto, the object store and the metadata database meet. The
data key is wrapped by the tenant keyset with the object id as associated data
and kept in the ``objects`` row; the ciphertext is bound to environment,
tenant and object id. Nothing here ever writes plaintext to disk.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Iterator

import sqlalchemy as sa
from sqlalchemy.orm import Session

from strongroom.crypto.keyring import TenantKeyRing, data_key_context
from strongroom.crypto.streaming import object_context
from strongroom.storage.errors import ObjectMissing
from strongroom.storage.interfaces import BlobRef
from strongroom.storage.local import LocalObjectStore
from strongroom.storage.models import StoredObject
from strongroom.tenancy.models import Tenant
from strongroom.tenancy.services import require_active


def _prefix(tenant_id: str) -> str:
    return tenant_id


def put_object(
    session: Session,
    store: LocalObjectStore,
    ring: TenantKeyRing,
    tenant: Tenant,
    chunks: Iterable[bytes],
    *,
    kind: str,
) -> StoredObject:
    """Encrypt ``chunks`` into a new immutable object of ``tenant`` and record it."""
    require_active(tenant)
    object_id = uuid.uuid4().hex
    data_key, wrapped = ring.new_data_key(object_id)
    context = object_context(ring.environment, tenant.id, object_id)
    plaintext_size = 0

    def write(sink: object) -> None:
        nonlocal plaintext_size
        plaintext_size = data_key.seal(context, chunks, sink)  # type: ignore[arg-type]

    ref = store.put(_prefix(tenant.id), write)
    record = StoredObject(
        id=object_id,
        tenant_id=tenant.id,
        kind=kind,
        digest=ref.digest,
        size=ref.size,
        plaintext_size=plaintext_size,
        wrapped_key=wrapped,
        kek_key_id=TenantKeyRing.key_id_of(wrapped),
    )
    try:
        session.add(record)
        session.flush()
    except BaseException:
        # Published but never recorded: no row will ever point at it, so it goes now.
        store.delete(ref)
        raise
    return record


def get_object(session: Session, tenant: Tenant, object_id: str) -> StoredObject:
    """The tenant's object with this id; another tenant's object is simply not found."""
    record = session.get(StoredObject, object_id)
    if record is None or record.tenant_id != tenant.id:
        raise ObjectMissing("no such object")
    return record


def read_object(
    store: LocalObjectStore, ring: TenantKeyRing, record: StoredObject
) -> Iterator[bytes]:
    """Decrypt an object, checking its digest and every segment's authentication tag."""
    data_key = ring.open_data_key(record.wrapped_key, record.id)
    ref = BlobRef(_prefix(record.tenant_id), record.digest, record.size)
    context = object_context(ring.environment, record.tenant_id, record.id)
    with store.open(ref) as reader:
        yield from data_key.open(context, reader)  # type: ignore[arg-type]


def rewrap_data_keys(session: Session, ring: TenantKeyRing) -> int:
    """Re-wrap every data key of the ring's tenant under its primary key version."""
    changed = 0
    rows = session.scalars(
        sa.select(StoredObject).where(
            StoredObject.tenant_id == ring.tenant_id,
            StoredObject.kek_key_id != ring.primary_key_id,
        )
    )
    for record in rows:
        context = data_key_context(ring.environment, ring.tenant_id, record.id)
        rewrapped = ring.rewrap(record.wrapped_key, context)
        if rewrapped is not None:
            record.wrapped_key = rewrapped
            record.kek_key_id = ring.primary_key_id
            changed += 1
    return changed
