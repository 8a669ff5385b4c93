"""Server-side sessions: 256-bit random ids, stored hashed, with idle and absolute limits."""

from __future__ import annotations

import dataclasses
import datetime as dt
import secrets

import sqlalchemy as sa
from sqlalchemy.orm import Session

from strongroom.crypto.macs import MacKey, constant_time_equal, sha256_hex
from strongroom.db import utcnow
from strongroom.identity.models import AuthSession, Plane

COOKIE_NAME = "__Host-strongroom"
OPERATOR_COOKIE_NAME = "__Host-strongroom-operator"
_TOUCH_EVERY = dt.timedelta(seconds=60)
_CSRF_DOMAIN = "csrf"


@dataclasses.dataclass(frozen=True)
class SessionPolicy:
    idle: dt.timedelta = dt.timedelta(minutes=30)
    absolute: dt.timedelta = dt.timedelta(hours=12)


def new_session(
    session: Session,
    plane: Plane,
    principal_id: str,
    tenant_id: str | None,
    policy: SessionPolicy,
) -> tuple[str, AuthSession]:
    """A fresh session: the secret goes to the client once, only its hash is stored."""
    token = secrets.token_urlsafe(32)
    now = utcnow()
    record = AuthSession(
        id_hash=sha256_hex(token.encode()),
        plane=plane.value,
        principal_id=principal_id,
        tenant_id=tenant_id,
        created_at=now,
        last_seen_at=now,
        authenticated_at=now,
        expires_at=now + policy.absolute,
    )
    session.add(record)
    session.flush()
    return token, record


def resolve(
    session: Session, token: str, plane: Plane, policy: SessionPolicy,
    now: dt.datetime | None = None,
) -> AuthSession | None:
    """The live session for ``token`` on ``plane``, or None if unknown, ended or expired."""
    now = now or utcnow()
    record = session.get(AuthSession, sha256_hex(token.encode()))
    if record is None or record.plane != plane.value or record.ended_at is not None:
        return None
    if now >= record.expires_at or now - record.last_seen_at >= policy.idle:
        record.ended_at = now
        return None
    if now - record.last_seen_at >= _TOUCH_EVERY:
        record.last_seen_at = now
    return record


def end(record: AuthSession) -> None:
    record.ended_at = record.ended_at or utcnow()


def end_all(session: Session, principal_id: str) -> int:
    """End every live session of a principal (logout everywhere, disabled user)."""
    result = session.execute(
        sa.update(AuthSession)
        .where(AuthSession.principal_id == principal_id, AuthSession.ended_at.is_(None))
        .values(ended_at=utcnow())
    )
    return int(result.rowcount or 0)  # type: ignore[attr-defined]


def csrf_token(key: MacKey, session_id: str) -> str:
    """Derived from the session, so nothing more is stored; useless without the session cookie."""
    return key.mac(_CSRF_DOMAIN, session_id.encode())


def csrf_ok(key: MacKey, session_id: str, presented: str | None) -> bool:
    return presented is not None and constant_time_equal(csrf_token(key, session_id), presented)


def end_by_id(session: Session, session_id: str) -> None:
    record = session.get(AuthSession, session_id)
    if record is not None:
        end(record)
