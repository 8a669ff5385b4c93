"""Exports: export jobs, download links, velocity limits and their ledger.

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-26
"""

import sqlalchemy as sa
from alembic import op

from strongroom.db import UTCDateTime

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

_LIMITS = tuple(f"{m}_per_{w}" for m in ("rows", "bytes", "exports", "subjects")
                for w in ("hour", "day"))


def _limit_columns() -> list[sa.Column]:  # type: ignore[type-arg]
    return [sa.Column(name, sa.BigInteger(), nullable=True) for name in _LIMITS]


def _tenant_fk(table: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(
        ["tenant_id"], ["tenants.id"], name=op.f(f"fk_{table}_tenant_id_tenants")
    )


def upgrade() -> None:
    op.create_table(
        "export_caps",
        sa.Column("tenant_id", sa.String(length=32), nullable=False),
        *_limit_columns(),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        _tenant_fk("export_caps"),
        sa.PrimaryKeyConstraint("tenant_id", name=op.f("pk_export_caps")),
    )
    op.create_table(
        "export_limits",
        sa.Column("tenant_id", sa.String(length=32), nullable=False),
        sa.Column("scope", sa.String(length=16), nullable=False),
        *_limit_columns(),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.Column("updated_by", sa.String(length=64), nullable=True),
        _tenant_fk("export_limits"),
        sa.PrimaryKeyConstraint("tenant_id", "scope", name=op.f("pk_export_limits")),
    )
    op.create_table(
        "export_quota_state",
        sa.Column("tenant_id", sa.String(length=32), nullable=False),
        sa.Column("ledger_key_sealed", sa.LargeBinary(), nullable=False),
        sa.Column("checks", sa.BigInteger(), nullable=False),
        _tenant_fk("export_quota_state"),
        sa.PrimaryKeyConstraint("tenant_id", name=op.f("pk_export_quota_state")),
    )
    op.create_table(
        "export_usage",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("tenant_id", sa.String(length=32), nullable=False),
        sa.Column("user_id", sa.String(length=64), nullable=False),
        sa.Column("export_id", sa.String(length=32), nullable=True),
        sa.Column("occurred_at", UTCDateTime(), nullable=False),
        sa.Column("rows", sa.BigInteger(), nullable=False),
        sa.Column("bytes", sa.BigInteger(), nullable=False),
        sa.Column("subjects", sa.BigInteger(), nullable=False),
        sa.Column("subject_macs", sa.LargeBinary(), nullable=False),
        sa.Column("settled", sa.Boolean(), nullable=False),
        _tenant_fk("export_usage"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_export_usage")),
    )
    op.create_index(
        "ix_export_usage_tenant_time", "export_usage", ["tenant_id", "occurred_at"], unique=False
    )
    op.create_table(
        "export_refusals",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("tenant_id", sa.String(length=32), nullable=False),
        sa.Column("user_id", sa.String(length=64), nullable=False),
        sa.Column("occurred_at", UTCDateTime(), nullable=False),
        sa.Column("reason", sa.String(length=64), nullable=False),
        _tenant_fk("export_refusals"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_export_refusals")),
    )
    op.create_index(
        "ix_export_refusals_tenant_time", "export_refusals", ["tenant_id", "occurred_at"],
        unique=False,
    )
    op.create_table(
        "exports",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("tenant_id", sa.String(length=32), nullable=False),
        sa.Column("created_by", sa.String(length=64), nullable=False),
        sa.Column("dataset_id", sa.String(length=32), nullable=False),
        sa.Column("version_id", sa.String(length=32), nullable=False),
        sa.Column("selection_id", sa.String(length=32), nullable=True),
        sa.Column("format", sa.String(length=16), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("rows", sa.BigInteger(), nullable=False),
        sa.Column("bytes", sa.BigInteger(), nullable=False),
        sa.Column("subjects", sa.BigInteger(), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("transforms", sa.Text(), nullable=False),
        sa.Column("anonymity", sa.Text(), nullable=True),
        sa.Column("object_id", sa.String(length=32), nullable=True),
        sa.Column("link_hash", sa.String(length=64), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("expires_at", UTCDateTime(), nullable=False),
        sa.Column("downloaded_at", UTCDateTime(), nullable=True),
        sa.Column("purged_at", UTCDateTime(), nullable=True),
        sa.ForeignKeyConstraint(
            ["object_id"], ["objects.id"], name=op.f("fk_exports_object_id_objects")
        ),
        _tenant_fk("exports"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_exports")),
    )
    op.create_index(op.f("ix_exports_tenant_id"), "exports", ["tenant_id"], unique=False)
    op.create_index(
        "ix_exports_tenant_creator", "exports", ["tenant_id", "created_by"], unique=False
    )


def downgrade() -> None:
    op.drop_index("ix_exports_tenant_creator", table_name="exports")
    op.drop_index(op.f("ix_exports_tenant_id"), table_name="exports")
    op.drop_table("exports")
    op.drop_index("ix_export_refusals_tenant_time", table_name="export_refusals")
    op.drop_table("export_refusals")
    op.drop_index("ix_export_usage_tenant_time", table_name="export_usage")
    op.drop_table("export_usage")
    op.drop_table("export_quota_state")
    op.drop_table("export_limits")
    op.drop_table("export_caps")
