"""Audio identity and the analysis queue.

recordings.audio_hash identifies the audio stream apart from the tags, so a tag edit keeps the
analysis. analyses holds one row per distinct audio stream: the analysis queue (state, lease,
attempts) and its results, shared by every recording with that audio.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-26
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    with op.batch_alter_table("recordings") as batch:
        batch.add_column(sa.Column("audio_hash", sa.String(40), nullable=True))
    op.create_index("ix_recordings_audio_hash", "recordings", ["audio_hash"])
    op.create_table(
        "analyses",
        sa.Column("audio_hash", sa.String(40), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("settings_fingerprint", sa.String(32), nullable=True),
        sa.Column("version", sa.Integer(), nullable=True),
        sa.Column("results", sa.JSON().with_variant(JSONB(), "postgresql"), nullable=True),
        sa.Column("error_class", sa.String(16), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("lease_owner", sa.String(96), nullable=True),
        sa.Column("lease_expires", TS, nullable=True),
        sa.Column("not_before", TS, nullable=True),
        sa.Column("duration_seconds", sa.Float(), nullable=True),
        sa.Column("elapsed_seconds", sa.Float(), nullable=True),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("updated_at", TS, nullable=False),
        sa.Column("analysed_at", TS, nullable=True),
        sa.PrimaryKeyConstraint("audio_hash", name="pk_analyses"),
    )
    op.create_index("ix_analyses_state", "analyses", ["state"])
    # Recordings cataloged before audio identities existed: read their files once more so they
    # get one (and with it, analysis).
    op.execute(
        "UPDATE files SET state = 'pending', attempts = 0 WHERE state = 'cataloged' AND "
        "recording_id IN (SELECT id FROM recordings WHERE audio_hash IS NULL)"
    )


def downgrade() -> None:
    op.drop_table("analyses")
    op.drop_index("ix_recordings_audio_hash", "recordings")
    with op.batch_alter_table("recordings") as batch:
        batch.drop_column("audio_hash")
