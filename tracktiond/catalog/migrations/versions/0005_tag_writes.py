"""Tag write-back state per file.

files.tag_fingerprint records which analysis (settings fingerprint) and which tagging options the
file's tags were last brought in line with; a file is due for a tag write when it differs.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-26
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("files") as batch:
        batch.add_column(sa.Column("tag_fingerprint", sa.String(80), nullable=True))
        batch.add_column(sa.Column("tag_status", sa.String(16), nullable=True))
        batch.add_column(sa.Column("tag_error", sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("files") as batch:
        batch.drop_column("tag_error")
        batch.drop_column("tag_status")
        batch.drop_column("tag_fingerprint")
