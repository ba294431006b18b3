"""pacs: the outbox of results going back to the PACS by STOW-RS

Revision ID: 0005
Revises: 0003
Create Date: 2026-12-03 12:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "pacs_deliveries",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("analysis_id", sa.String(length=36), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("claimed_by", sa.String(length=128), nullable=True),
        sa.Column("lease_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("delivered_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("study_instance_uid", sa.String(length=64), nullable=False),
        sa.Column("sr_series_uid", sa.String(length=64), nullable=False),
        sa.Column("sr_instance_uid", sa.String(length=64), nullable=False),
        sa.Column("image_series_uid", sa.String(length=64), nullable=False),
        sa.Column("image_instance_uid", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["analysis_id"],
            ["analyses.id"],
            name=op.f("fk_pacs_deliveries_analysis_id_analyses"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_pacs_deliveries")),
        sa.UniqueConstraint("analysis_id", name=op.f("uq_pacs_deliveries_analysis_id")),
    )
    with op.batch_alter_table("pacs_deliveries", schema=None) as batch_op:
        batch_op.create_index(
            "ix_pacs_deliveries_status_due", ["status", "next_attempt_at"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("pacs_deliveries", schema=None) as batch_op:
        batch_op.drop_index("ix_pacs_deliveries_status_due")
    op.drop_table("pacs_deliveries")
