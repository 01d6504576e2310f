"""Tag write-back gets lease columns of its own.

Until now a tag write leased the file through ``files.lease_*``, the ingest queue's columns, so
the ingest stage's renewal silently extended tag leases. Every queue now owns its lease, backoff
and attempt columns (catalog.leases). Partial indexes find an owner's leases (renewal, release
of a dead instance's work) and cost nothing for rows at rest.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-02
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    with op.batch_alter_table("files") as batch:
        batch.add_column(sa.Column("tag_lease_owner", sa.String(96), nullable=True))
        batch.add_column(sa.Column("tag_lease_expires", TS, nullable=True))
        batch.add_column(sa.Column("tag_not_before", TS, nullable=True))
        batch.add_column(
            sa.Column("tag_attempts", sa.Integer(), nullable=False, server_default="0")
        )
    for table, column in (("files", "tag_lease_owner"), ("analyses", "lease_owner")):
        op.create_index(
            f"ix_{table}_{column}",
            table,
            [column],
            postgresql_where=sa.text(f"{column} IS NOT NULL"),
            sqlite_where=sa.text(f"{column} IS NOT NULL"),
        )


def downgrade() -> None:
    op.drop_index("ix_analyses_lease_owner", "analyses")
    op.drop_index("ix_files_tag_lease_owner", "files")
    with op.batch_alter_table("files") as batch:
        batch.drop_column("tag_attempts")
        batch.drop_column("tag_not_before")
        batch.drop_column("tag_lease_expires")
        batch.drop_column("tag_lease_owner")
