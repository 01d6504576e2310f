"""Work queue leases: pending file rows are claimed by one worker of one instance at a time.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-26
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("files") as batch:
        batch.add_column(sa.Column("lease_owner", sa.String(96), nullable=True))
        batch.add_column(sa.Column("lease_expires", sa.DateTime(timezone=True), nullable=True))
        # Transient failures wait before their next attempt (backoff) instead of looping.
        batch.add_column(sa.Column("not_before", sa.DateTime(timezone=True), nullable=True))
    op.create_index("ix_files_lease_owner", "files", ["lease_owner"])


def downgrade() -> None:
    op.drop_index("ix_files_lease_owner", "files")
    with op.batch_alter_table("files") as batch:
        batch.drop_column("not_before")
        batch.drop_column("lease_expires")
        batch.drop_column("lease_owner")
