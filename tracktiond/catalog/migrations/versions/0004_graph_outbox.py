"""The graph outbox: recordings whose graph projection must be refreshed.

Written in the same transaction as the catalog change (DESIGN invariant 6); drained by the graph
sync task, which re-reads the recording and writes it to the graph idempotently.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-26
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "graph_outbox",
        sa.Column("id", sa.Integer(), autoincrement=True),
        sa.Column("recording_id", sa.Uuid(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_graph_outbox"),
    )
    op.create_index("ix_graph_outbox_recording_id", "graph_outbox", ["recording_id"])


def downgrade() -> None:
    op.drop_table("graph_outbox")
