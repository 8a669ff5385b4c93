"""Telemetry: usage events and insider-programme consent.

Revision ID: 0010
Revises: 0009
Create Date: 2026-11-26
"""

import sqlalchemy as sa
from alembic import op

from strongroom.db import UTCDateTime

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "telemetry_events",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("occurred_at", UTCDateTime(), nullable=False),
        sa.Column("feature", sa.String(length=40), nullable=False),
        sa.Column("tenant_id", sa.String(length=32), nullable=False),
        sa.Column("subject", sa.String(length=64), nullable=False),
        sa.Column("user_id", sa.String(length=32), nullable=True),
        sa.Column("duration_ms", sa.BigInteger(), nullable=True),
        sa.Column("rows", sa.BigInteger(), nullable=True),
        sa.Column("size_bytes", sa.BigInteger(), nullable=True),
        sa.ForeignKeyConstraint(
            ["tenant_id"], ["tenants.id"], name=op.f("fk_telemetry_events_tenant_id_tenants")
        ),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_telemetry_events_user_id_users")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_telemetry_events")),
    )
    op.create_index(
        op.f("ix_telemetry_events_occurred_at"), "telemetry_events", ["occurred_at"]
    )
    op.create_index(op.f("ix_telemetry_events_tenant_id"), "telemetry_events", ["tenant_id"])
    op.create_index(op.f("ix_telemetry_events_user_id"), "telemetry_events", ["user_id"])
    op.create_table(
        "telemetry_consents",
        sa.Column("user_id", sa.String(length=32), nullable=False),
        sa.Column("insider", sa.Boolean(), nullable=False),
        sa.Column("changed_at", UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_telemetry_consents_user_id_users")
        ),
        sa.PrimaryKeyConstraint("user_id", name=op.f("pk_telemetry_consents")),
    )


def downgrade() -> None:
    op.drop_table("telemetry_consents")
    op.drop_index(op.f("ix_telemetry_events_user_id"), table_name="telemetry_events")
    op.drop_index(op.f("ix_telemetry_events_tenant_id"), table_name="telemetry_events")
    op.drop_index(op.f("ix_telemetry_events_occurred_at"), table_name="telemetry_events")
    op.drop_table("telemetry_events")
