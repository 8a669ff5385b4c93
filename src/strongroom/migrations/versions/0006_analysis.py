"""Analysis: saved selections (named, versioned, sealed) and the tenant's minimum cube cell.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-26
"""

import sqlalchemy as sa
from alembic import op

from strongroom.db import UTCDateTime

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "saved_selections",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("tenant_id", sa.String(length=32), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("dataset", sa.String(length=100), nullable=False),
        sa.Column("latest_version", sa.Integer(), nullable=False),
        sa.Column("created_by", sa.String(length=64), nullable=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["tenant_id"], ["tenants.id"], name=op.f("fk_saved_selections_tenant_id_tenants")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_saved_selections")),
        sa.UniqueConstraint("tenant_id", "name", name=op.f("uq_saved_selections_tenant_id")),
    )
    op.create_index(
        op.f("ix_saved_selections_tenant_id"), "saved_selections", ["tenant_id"], unique=False
    )
    op.create_table(
        "saved_selection_versions",
        sa.Column("selection_id", sa.String(length=32), nullable=False),
        sa.Column("number", sa.Integer(), nullable=False),
        sa.Column("selection_sealed", sa.LargeBinary(), nullable=False),
        sa.Column("created_by", sa.String(length=64), nullable=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["selection_id"],
            ["saved_selections.id"],
            name=op.f("fk_saved_selection_versions_selection_id_saved_selections"),
        ),
        sa.PrimaryKeyConstraint(
            "selection_id", "number", name=op.f("pk_saved_selection_versions")
        ),
    )
    with op.batch_alter_table("tenant_policies") as batch:
        batch.add_column(
            sa.Column("min_cell_count", sa.Integer(), nullable=False, server_default="5")
        )


def downgrade() -> None:
    with op.batch_alter_table("tenant_policies") as batch:
        batch.drop_column("min_cell_count")
    op.drop_table("saved_selection_versions")
    op.drop_index(op.f("ix_saved_selections_tenant_id"), table_name="saved_selections")
    op.drop_table("saved_selections")
