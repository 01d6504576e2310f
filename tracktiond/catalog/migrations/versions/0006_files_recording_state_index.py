"""Index files by (recording_id, state): duplicate counts and projections read exactly that.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-26
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index("ix_files_recording_id_state", "files", ["recording_id", "state"])


def downgrade() -> None:
    op.drop_index("ix_files_recording_id_state", "files")
