"""Server start and stop on the record, and configuration changes between starts.

At each start the effective settings are fingerprinted (a keyed HMAC per
setting, so values such as database URLs never enter the log) and compared
with the fingerprint of the previous start; changed setting names are
recorded as ``operator:config:change`` before ``operator:server:start``.
"""

from __future__ import annotations

import json

import sqlalchemy as sa
from sqlalchemy.orm import Session

from strongroom.audit.actors import Actor
from strongroom.audit.models import AuditEvent
from strongroom.audit.services import AuditTrail
from strongroom.audit.tags import EventTag
from strongroom.config import Settings

_DOMAIN = "audit-setting"


def settings_fingerprint(trail: AuditTrail, settings: Settings) -> dict[str, str]:
    return {
        name: trail.keys.mac(_DOMAIN, f"{name}={value}".encode())[:16]
        for name, value, _source in settings.describe()
    }


def _previous_fingerprint(session: Session) -> dict[str, str] | None:
    details = session.scalar(
        sa.select(AuditEvent.details)
        .where(AuditEvent.tag == EventTag.SERVER_START.value)
        .order_by(AuditEvent.seq.desc())
        .limit(1)
    )
    if details is None:
        return None
    previous = json.loads(details).get("settings")
    return previous if isinstance(previous, dict) else None


def record_server_start(
    session: Session, trail: AuditTrail, actor: Actor, settings: Settings, listen: str
) -> list[str]:
    """Record the start (and any setting changes since the last one); return changed names."""
    current = settings_fingerprint(trail, settings)
    previous = _previous_fingerprint(session)
    changed: list[str] = []
    if previous is not None:
        changed = sorted(
            name for name in set(current) | set(previous) if current.get(name) != previous.get(name)
        )
    if changed:
        trail.record_event(session, EventTag.CONFIG_CHANGE, actor=actor,
                           details={"changed": changed})
    trail.record_event(
        session, EventTag.SERVER_START, actor=actor,
        details={"listen": listen, "environment": settings.environment.value,
                 "settings": current},
    )
    return changed


def record_server_stop(session: Session, trail: AuditTrail, actor: Actor) -> None:
    trail.record_event(session, EventTag.SERVER_STOP, actor=actor)
