"""Accounts of both planes, their sessions, tokens, recovery codes and login throttles.

Personal data is kept out of clear text: a user's email is stored as a keyed
HMAC (for look-up) and sealed with the tenant keyset (for display); MFA
secrets are sealed too. Session ids, token secrets and recovery codes are
stored only as hashes.
"""

from __future__ import annotations

import datetime as dt
from enum import StrEnum

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from strongroom.db import Base, UTCDateTime, utcnow


class Role(StrEnum):
    ADMIN = "admin"
    ANALYST = "analyst"
    VIEWER = "viewer"


class Plane(StrEnum):
    TENANT = "tenant"
    OPERATOR = "operator"


class User(Base):
    __tablename__ = "users"
    __table_args__ = (sa.UniqueConstraint("tenant_id", "email_lookup", name="uq_users_email"),)

    id: Mapped[str] = mapped_column(sa.String(32), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(sa.ForeignKey("tenants.id"), index=True)
    email_lookup: Mapped[str] = mapped_column(sa.String(64))
    email_sealed: Mapped[bytes] = mapped_column(sa.LargeBinary)
    role: Mapped[str] = mapped_column(sa.String(16))
    password_hash: Mapped[str] = mapped_column(sa.String(200))
    mfa_secret_sealed: Mapped[bytes | None] = mapped_column(sa.LargeBinary)
    mfa_enabled: Mapped[bool] = mapped_column(default=False)
    mfa_last_step: Mapped[int | None] = mapped_column(sa.BigInteger)
    disabled: Mapped[bool] = mapped_column(default=False)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    password_changed_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)


class Operator(Base):
    __tablename__ = "operators"

    id: Mapped[str] = mapped_column(sa.String(32), primary_key=True)
    name: Mapped[str] = mapped_column(sa.String(40), unique=True)
    password_hash: Mapped[str] = mapped_column(sa.String(200))
    mfa_secret_sealed: Mapped[bytes] = mapped_column(sa.LargeBinary)
    mfa_last_step: Mapped[int | None] = mapped_column(sa.BigInteger)
    disabled: Mapped[bool] = mapped_column(default=False)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)


class RecoveryCode(Base):
    __tablename__ = "recovery_codes"

    id: Mapped[int] = mapped_column(primary_key=True)
    owner_id: Mapped[str] = mapped_column(sa.String(32), index=True)
    code_hash: Mapped[str] = mapped_column(sa.String(64))
    used_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)


class AuthSession(Base):
    __tablename__ = "sessions"

    id_hash: Mapped[str] = mapped_column(sa.String(64), primary_key=True)
    plane: Mapped[str] = mapped_column(sa.String(16))
    principal_id: Mapped[str] = mapped_column(sa.String(32), index=True)
    tenant_id: Mapped[str | None] = mapped_column(sa.String(32))
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_seen_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    authenticated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    ended_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)


class ApiToken(Base):
    __tablename__ = "api_tokens"

    id: Mapped[str] = mapped_column(sa.String(32), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(sa.ForeignKey("tenants.id"), index=True)
    user_id: Mapped[str] = mapped_column(sa.ForeignKey("users.id"), index=True)
    name: Mapped[str] = mapped_column(sa.String(80))
    role: Mapped[str] = mapped_column(sa.String(16))
    secret_hash: Mapped[str] = mapped_column(sa.String(64))
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    revoked_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    last_used_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)


class LoginThrottle(Base):
    """Consecutive failures per account or per client address (keys are HMACs)."""

    __tablename__ = "login_throttle"

    key: Mapped[str] = mapped_column(sa.String(80), primary_key=True)
    failures: Mapped[int] = mapped_column(default=0)
    last_failure_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    locked_until: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)


class TenantPolicy(Base):
    """Per-tenant access policy set by its admins: MFA, IP allow-list, minimum cube cell."""

    __tablename__ = "tenant_policies"

    tenant_id: Mapped[str] = mapped_column(sa.ForeignKey("tenants.id"), primary_key=True)
    require_mfa: Mapped[bool] = mapped_column(default=False)
    allowlist: Mapped[str] = mapped_column(sa.Text, default="[]")
    # Cube cells counting fewer rows are suppressed for viewers (analysts and admins see
    # record-level data anyway, so suppression would protect nothing from them).
    min_cell_count: Mapped[int] = mapped_column(sa.Integer, default=5, server_default="5")
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
