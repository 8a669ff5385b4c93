"""Audit trail: hash-chained events, head, signed checkpoints and purge records.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-26
"""

import datetime as dt

import sqlalchemy as sa
from alembic import op

from strongroom.db import UTCDateTime

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "audit_events",
        sa.Column("seq", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("occurred_at", UTCDateTime(), nullable=False),
        sa.Column("tag", sa.String(length=64), nullable=False),
        sa.Column("event_class", sa.String(length=16), nullable=False),
        sa.Column("actor_kind", sa.String(length=16), nullable=False),
        sa.Column("actor_id", sa.String(length=64), nullable=True),
        sa.Column("actor_role", sa.String(length=32), nullable=True),
        sa.Column("actor_session", sa.String(length=80), nullable=True),
        sa.Column("actor_address", sa.String(length=64), nullable=True),
        sa.Column("actor_network", sa.String(length=64), nullable=True),
        sa.Column("actor_agent", sa.String(length=200), nullable=True),
        sa.Column("tenant_id", sa.String(length=32), nullable=True),
        sa.Column("target", sa.String(length=128), nullable=True),
        sa.Column("outcome", sa.String(length=16), nullable=False),
        sa.Column("reason", sa.String(length=200), nullable=True),
        sa.Column("details", sa.Text(), nullable=False),
        sa.Column("prev_hash", sa.String(length=64), nullable=False),
        sa.Column("hash", sa.String(length=64), nullable=False),
        sa.Column("mac", sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint("seq", name=op.f("pk_audit_events")),
    )
    op.create_index("ix_audit_events_tenant_seq", "audit_events", ["tenant_id", "seq"])
    op.create_index("ix_audit_events_occurred_at", "audit_events", ["occurred_at"])
    op.create_table(
        "audit_head",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.Column("hash", sa.String(length=64), nullable=False),
        sa.Column("checkpoint_seq", sa.BigInteger(), nullable=False),
        sa.Column("checkpoint_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_head")),
    )
    head = sa.table(
        "audit_head",
        sa.column("id", sa.Integer()), sa.column("seq", sa.BigInteger()),
        sa.column("hash", sa.String()), sa.column("checkpoint_seq", sa.BigInteger()),
        sa.column("checkpoint_at", UTCDateTime()),
    )
    op.bulk_insert(head, [{
        "id": 1, "seq": 0, "hash": "0" * 64, "checkpoint_seq": 0,
        "checkpoint_at": dt.datetime.now(dt.UTC),
    }])
    op.create_table(
        "audit_checkpoints",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.Column("hash", sa.String(length=64), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("signature", sa.String(length=128), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_checkpoints")),
        sa.UniqueConstraint("seq", name=op.f("uq_audit_checkpoints_seq")),
    )
    op.create_table(
        "audit_purges",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("first_seq", sa.BigInteger(), nullable=False),
        sa.Column("last_seq", sa.BigInteger(), nullable=False),
        sa.Column("count", sa.BigInteger(), nullable=False),
        sa.Column("boundary_hash", sa.String(length=64), nullable=False),
        sa.Column("policy", sa.Text(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("signature", sa.String(length=128), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_purges")),
    )


def downgrade() -> None:
    op.drop_table("audit_purges")
    op.drop_table("audit_checkpoints")
    op.drop_table("audit_head")
    op.drop_index("ix_audit_events_occurred_at", table_name="audit_events")
    op.drop_index("ix_audit_events_tenant_seq", table_name="audit_events")
    op.drop_table("audit_events")
