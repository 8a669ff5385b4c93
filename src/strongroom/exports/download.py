"""Single-use, expiring download of an export, by the user who created it.

The link's key (256 random bits) is shown once, in the answer that created the
export, and stored only as its SHA-256. A download is started in one
transaction that checks owner, key and expiry, marks the link used with a
compare-and-set (``downloaded_at IS NULL``: of two racing downloads exactly one
wins), audits it, and opens the object, decrypting its first segment, before
committing. The caller then streams the rest; the open file survives a purge
that runs meanwhile. A download that fails mid-stream has still used the link.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import itertools
from collections.abc import Iterator

import sqlalchemy as sa
from sqlalchemy.orm import Session

from strongroom.audit import Actor, EventTag
from strongroom.db import utcnow
from strongroom.deployment import Deployment
from strongroom.exports._writers import MEDIA_TYPES
from strongroom.exports.errors import ExportNotFound, LinkExpired, LinkUsed
from strongroom.exports.models import Export, ExportFormat, ExportStatus
from strongroom.exports.services import get_export, link_matches
from strongroom.storage.services import get_object, read_object
from strongroom.tenancy.models import Tenant
from strongroom.tenancy.services import require_active


@dataclasses.dataclass(frozen=True)
class Download:
    """An export's decrypted bytes, ready to stream, and how to label them."""

    export_id: str
    chunks: Iterator[bytes]
    size: int
    media_type: str
    filename: str


def _refuse_gone(export: Export, now: dt.datetime) -> None:
    if export.downloaded_at is not None:
        raise LinkUsed("this export's download link was used already",
                       hint="links work once; create the export again")
    if export.expires_at <= now or export.purged_at is not None or export.object_id is None:
        raise LinkExpired("this export's download link has expired",
                          hint="create the export again")


def _open(session: Session, deployment: Deployment, export: Export) -> Iterator[bytes]:
    """The decrypted bytes, with the first segment already read (the file is open)."""
    tenant = session.get_one(Tenant, export.tenant_id)
    if export.object_id is None:
        raise LinkExpired("this export's download link has expired")
    record = get_object(session, tenant, export.object_id)
    ring = deployment.keys.tenant_ring(session, tenant.id)
    chunks = read_object(deployment.store, ring, record)
    first = next(chunks, b"")
    return itertools.chain([first], chunks)


def start_download(
    deployment: Deployment, tenant_id: str, user_id: str, actor: Actor, export_id: str, key: str,
    *, now: dt.datetime | None = None,
) -> Download:
    """Use the export's link once: 404 unless it is the user's export and the key fits,
    410 when the link was used or has expired."""
    moment = now or utcnow()
    with deployment.transaction() as session:
        require_active(session.get_one(Tenant, tenant_id))
        export = get_export(session, tenant_id, user_id, export_id)
        if not link_matches(export, key):
            raise ExportNotFound("no such export")
        _refuse_gone(export, moment)
        claimed = session.execute(
            sa.update(Export)
            .where(Export.id == export.id, Export.downloaded_at.is_(None),
                   Export.purged_at.is_(None), Export.expires_at > moment)
            .values(downloaded_at=moment, status=ExportStatus.DOWNLOADED.value)
            .execution_options(synchronize_session=False)
        )
        if getattr(claimed, "rowcount", 0) != 1:
            session.refresh(export)
            _refuse_gone(export, moment)
            raise LinkUsed("this export's download link was used already")
        chunks = _open(session, deployment, export)
        deployment.audit.record_event(
            session, EventTag.EXPORT_DOWNLOAD, actor=actor, tenant=tenant_id,
            target=f"export:{export.id}",
            details={"sha256": export.sha256, "bytes": export.size, "rows": export.rows},
        )
        fmt = ExportFormat(export.format)
        return Download(export.id, chunks, export.size, MEDIA_TYPES[fmt],
                        f"export-{export.id}.{fmt.value}")
