"""audit: event_key, the unique key of a spooled read event

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-02 16:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("audit_events", schema=None) as batch_op:
        batch_op.add_column(sa.Column("event_key", sa.String(length=32), nullable=True))
        batch_op.create_unique_constraint(batch_op.f("uq_audit_events_event_key"), ["event_key"])


def downgrade() -> None:
    with op.batch_alter_table("audit_events", schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f("uq_audit_events_event_key"), type_="unique")
        batch_op.drop_column("event_key")
