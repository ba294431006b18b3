"""vision: drift observations (score and input statistics per finished analysis)

Revision ID: 0007
Revises: 0005
Create Date: 2026-12-03 16:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "drift_observations",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("analysis_id", sa.String(length=36), nullable=False),
        sa.Column("reference_id", sa.String(length=64), nullable=False),
        sa.Column("model_version", sa.String(length=32), nullable=False),
        sa.Column("is_chest_xray", sa.Boolean(), nullable=False),
        sa.Column("outside_population", sa.Boolean(), nullable=False),
        sa.Column("score", sa.Double(), nullable=True),
        sa.Column("feature_distance", sa.Double(), nullable=False),
        sa.Column("mean_intensity", sa.Double(), nullable=False),
        sa.Column("std_intensity", sa.Double(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["analysis_id"],
            ["analyses.id"],
            name=op.f("fk_drift_observations_analysis_id_analyses"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_drift_observations")),
        sa.UniqueConstraint("analysis_id", name=op.f("uq_drift_observations_analysis_id")),
    )
    with op.batch_alter_table("drift_observations", schema=None) as batch_op:
        batch_op.create_index(
            "ix_drift_observations_reference_id", ["reference_id", "id"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("drift_observations", schema=None) as batch_op:
        batch_op.drop_index("ix_drift_observations_reference_id")
    op.drop_table("drift_observations")
