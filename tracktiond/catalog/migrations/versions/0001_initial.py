"""Initial catalog: recordings, their file locations, metadata and tracklists.

Revision ID: 0001
Revises:
Create Date: 2026-11-26
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "recordings",
        sa.Column("id", sa.Uuid(), primary_key=True),
        sa.Column("file_path", sa.Text(), nullable=False),
        sa.Column("file_name", sa.Text(), nullable=False),
        sa.Column("sha256_hash", sa.String(64), nullable=False),
        sa.Column("xxh128_hash", sa.String(32), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("format", sa.String(16), nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("updated_at", TS, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_recordings"),
        sa.UniqueConstraint("sha256_hash", name="uq_recordings_sha256_hash"),
        sa.UniqueConstraint("xxh128_hash", name="uq_recordings_xxh128_hash"),
    )
    op.create_table(
        "files",
        sa.Column("id", sa.Integer(), autoincrement=True),
        sa.Column("path", sa.Text(), nullable=False),
        sa.Column("dir", sa.Text(), nullable=False),
        sa.Column("recording_id", sa.Uuid(), nullable=True),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("mtime_ns", sa.BigInteger(), nullable=False),
        sa.Column("ctime_ns", sa.BigInteger(), nullable=False),
        sa.Column("inode", sa.BigInteger(), nullable=False),
        sa.Column("device", sa.BigInteger(), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("error_class", sa.String(16), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("first_seen", TS, nullable=False),
        sa.Column("last_seen", TS, nullable=False),
        sa.Column("missing_since", TS, nullable=True),
        sa.Column("updated_at", TS, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_files"),
        sa.UniqueConstraint("path", name="uq_files_path"),
        sa.ForeignKeyConstraint(
            ["recording_id"],
            ["recordings.id"],
            name="fk_files_recording_id_recordings",
            ondelete="SET NULL",
        ),
    )
    op.create_index("ix_files_dir", "files", ["dir"])
    op.create_index("ix_files_recording_id", "files", ["recording_id"])
    op.create_index("ix_files_state", "files", ["state"])
    op.create_index("ix_files_device_inode", "files", ["device", "inode"])
    op.create_table(
        "metadata",
        sa.Column("id", sa.Integer(), autoincrement=True),
        sa.Column("recording_id", sa.Uuid(), nullable=False),
        sa.Column("key", sa.String(128), nullable=False),
        sa.Column("value", sa.Text(), nullable=False),
        sa.Column("source", sa.String(16), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_metadata"),
        sa.ForeignKeyConstraint(
            ["recording_id"],
            ["recordings.id"],
            name="fk_metadata_recording_id_recordings",
            ondelete="CASCADE",
        ),
    )
    op.create_index("ix_metadata_recording_id", "metadata", ["recording_id"])
    op.create_index("ix_metadata_key", "metadata", ["key"])
    op.create_table(
        "tracklists",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("recording_id", sa.Uuid(), nullable=False),
        sa.Column("source", sa.String(32), nullable=False),
        sa.Column("cue_file_path", sa.Text(), nullable=True),
        sa.Column("tracks", sa.JSON().with_variant(JSONB(), "postgresql"), nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_tracklists"),
        sa.ForeignKeyConstraint(
            ["recording_id"],
            ["recordings.id"],
            name="fk_tracklists_recording_id_recordings",
            ondelete="CASCADE",
        ),
    )
    op.create_index("ix_tracklists_recording_id", "tracklists", ["recording_id"])


def downgrade() -> None:
    op.drop_table("tracklists")
    op.drop_table("metadata")
    op.drop_table("files")
    op.drop_table("recordings")
