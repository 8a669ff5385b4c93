"""Audit storage. Rows are only ever inserted; retention purges delete from the oldest end."""

from __future__ import annotations

import datetime as dt

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from strongroom.db import Base, UTCDateTime


class AuditEvent(Base):
    __tablename__ = "audit_events"
    __table_args__ = (
        sa.Index("ix_audit_events_tenant_seq", "tenant_id", "seq"),
        sa.Index("ix_audit_events_occurred_at", "occurred_at"),
    )

    seq: Mapped[int] = mapped_column(sa.BigInteger, primary_key=True, autoincrement=False)
    occurred_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    tag: Mapped[str] = mapped_column(sa.String(64))
    event_class: Mapped[str] = mapped_column(sa.String(16))
    actor_kind: Mapped[str] = mapped_column(sa.String(16))
    actor_id: Mapped[str | None] = mapped_column(sa.String(64))
    actor_role: Mapped[str | None] = mapped_column(sa.String(32))
    actor_session: Mapped[str | None] = mapped_column(sa.String(80))
    actor_address: Mapped[str | None] = mapped_column(sa.String(64))  # HMAC, never the address
    actor_network: Mapped[str | None] = mapped_column(sa.String(64))
    actor_agent: Mapped[str | None] = mapped_column(sa.String(200))
    tenant_id: Mapped[str | None] = mapped_column(sa.String(32))
    target: Mapped[str | None] = mapped_column(sa.String(128))
    outcome: Mapped[str] = mapped_column(sa.String(16))
    reason: Mapped[str | None] = mapped_column(sa.String(200))
    details: Mapped[str] = mapped_column(sa.Text)
    prev_hash: Mapped[str] = mapped_column(sa.String(64))
    hash: Mapped[str] = mapped_column(sa.String(64))
    mac: Mapped[str] = mapped_column(sa.String(64))


class AuditHead(Base):
    """One row: the newest sequence number and hash. Updating it serialises writers."""

    __tablename__ = "audit_head"

    id: Mapped[int] = mapped_column(primary_key=True)
    seq: Mapped[int] = mapped_column(sa.BigInteger)
    hash: Mapped[str] = mapped_column(sa.String(64))
    checkpoint_seq: Mapped[int] = mapped_column(sa.BigInteger)
    checkpoint_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)


class AuditCheckpoint(Base):
    """A signed statement that the chain had ``hash`` at ``seq`` at ``created_at``."""

    __tablename__ = "audit_checkpoints"

    id: Mapped[int] = mapped_column(primary_key=True)
    seq: Mapped[int] = mapped_column(sa.BigInteger, unique=True)
    hash: Mapped[str] = mapped_column(sa.String(64))
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    signature: Mapped[str] = mapped_column(sa.String(128))


class AuditPurge(Base):
    """A signed record of a retention purge: which range went, under which policy."""

    __tablename__ = "audit_purges"

    id: Mapped[int] = mapped_column(primary_key=True)
    first_seq: Mapped[int] = mapped_column(sa.BigInteger)
    last_seq: Mapped[int] = mapped_column(sa.BigInteger)
    count: Mapped[int] = mapped_column(sa.BigInteger)
    boundary_hash: Mapped[str] = mapped_column(sa.String(64))
    policy: Mapped[str] = mapped_column(sa.Text)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    signature: Mapped[str] = mapped_column(sa.String(128))
