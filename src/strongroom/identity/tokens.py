"""API tokens for scripts: tenant-scoped, role-capped, shown once, stored hashed."""

from __future__ import annotations

import datetime as dt
import re
import secrets
import uuid

import sqlalchemy as sa
from sqlalchemy.orm import Session

from strongroom.crypto.macs import constant_time_equal, sha256_hex
from strongroom.db import utcnow
from strongroom.errors import InvalidInput
from strongroom.identity.errors import TokenNotFound
from strongroom.identity.models import ApiToken, Role, User
from strongroom.identity.permissions import role_at_most

PREFIX = "sr_"
_SHAPE = re.compile(r"^sr_([0-9a-f]{32})_([A-Za-z0-9_-]{43})$")
NAME_MAX = 80


def create_token(
    session: Session, creator: User, name: str, role: Role, days: int, max_days: int
) -> tuple[str, ApiToken]:
    """Make a token no stronger than its creator; return the secret (shown once) and the row."""
    if not role_at_most(role, Role(creator.role)):
        raise InvalidInput("a token's role cannot be higher than your own")
    if not 1 <= days <= max_days:
        raise InvalidInput(f"token lifetime must be between 1 and {max_days} days")
    clean = name.strip()
    if not clean or len(clean) > NAME_MAX or not clean.isprintable():
        raise InvalidInput(f"token name must be 1-{NAME_MAX} printable characters")
    token_id = uuid.uuid4().hex
    secret = secrets.token_urlsafe(32)
    record = ApiToken(
        id=token_id,
        tenant_id=creator.tenant_id,
        user_id=creator.id,
        name=clean,
        role=role.value,
        secret_hash=sha256_hex(secret.encode()),
        expires_at=utcnow() + dt.timedelta(days=days),
    )
    session.add(record)
    session.flush()
    return f"{PREFIX}{token_id}_{secret}", record


def looks_like_token(presented: str) -> bool:
    return presented.startswith(PREFIX)


def resolve_token(
    session: Session, presented: str, now: dt.datetime | None = None
) -> ApiToken | None:
    """The live token for a presented secret, or None (unknown, wrong, revoked, expired)."""
    match = _SHAPE.match(presented)
    if match is None:
        return None
    record = session.get(ApiToken, match.group(1))
    if record is None or not constant_time_equal(
        record.secret_hash, sha256_hex(match.group(2).encode())
    ):
        return None
    now = now or utcnow()
    if record.revoked_at is not None or now >= record.expires_at:
        return None
    if record.last_used_at is None or now - record.last_used_at >= dt.timedelta(minutes=1):
        record.last_used_at = now
    return record


def list_tokens(session: Session, tenant_id: str, user_id: str | None = None) -> list[ApiToken]:
    stmt = sa.select(ApiToken).where(ApiToken.tenant_id == tenant_id)
    if user_id is not None:
        stmt = stmt.where(ApiToken.user_id == user_id)
    return list(session.scalars(stmt.order_by(ApiToken.created_at)))


def revoke_token(session: Session, tenant_id: str, token_id: str, user_id: str | None) -> ApiToken:
    """Revoke a token of this tenant (and of this user, unless an admin asks)."""
    record = session.get(ApiToken, token_id) if re.fullmatch(r"[0-9a-f]{32}", token_id) else None
    if record is None or record.tenant_id != tenant_id or (
        user_id is not None and record.user_id != user_id
    ):
        raise TokenNotFound("no such token")
    record.revoked_at = record.revoked_at or utcnow()
    return record
