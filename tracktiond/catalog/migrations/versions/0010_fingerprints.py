"""Fingerprints: one row per audio stream, the index's posting batches, and the index's state.

- ``fingerprints``: per audio identity (``recordings.audio_hash``, so moves, renames and tag
  edits never fingerprint again), its kind ("track": indexed; "set": identified against the
  index), the settings it was made with, its track number in the index and the batch holding its
  postings, a set's peaks; lease columns for the fingerprint stage and a second set of them for
  the identification of sets;
- ``fingerprint_batches``: the postings of the tracks one write indexed, sorted by key, as two
  blobs (``fingerprint.postings``: ~9 bytes per posting); a track is removed or re-indexed by
  counting its postings dead in its batch, and a batch is rewritten alone when most of it is
  dead or merged with other small ones — never the whole index;
- ``fingerprint_index``: one row: the index's generation (every change bumps it, so sets are
  identified again), when it last changed (the debounce), and the next track number.

See tracktiond/catalog/fingerprints.py and docs/identify.md.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-02
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "fingerprints",
        sa.Column("audio_hash", sa.String(40), nullable=False),
        sa.Column("kind", sa.String(8), nullable=True),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("settings", sa.String(16), nullable=True),
        sa.Column("track_no", sa.Integer(), nullable=True),
        sa.Column("batch_id", sa.Integer(), nullable=True),
        sa.Column("frames", sa.Integer(), nullable=True),
        sa.Column("seconds", sa.Float(), nullable=True),
        sa.Column("postings", sa.Integer(), nullable=True),
        sa.Column("peaks", sa.LargeBinary(), nullable=True),
        sa.Column("error_class", sa.String(16), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("elapsed_seconds", sa.Float(), nullable=True),
        sa.Column("lease_owner", sa.String(96), nullable=True),
        sa.Column("lease_expires", TS, nullable=True),
        sa.Column("not_before", TS, nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("identified_generation", sa.Integer(), nullable=True),
        sa.Column("identified_at", TS, nullable=True),
        sa.Column("identify_error", sa.Text(), nullable=True),
        sa.Column("identify_owner", sa.String(96), nullable=True),
        sa.Column("identify_expires", TS, nullable=True),
        sa.Column("identify_not_before", TS, nullable=True),
        sa.Column("identify_attempts", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("updated_at", TS, nullable=False),
        sa.PrimaryKeyConstraint("audio_hash", name="pk_fingerprints"),
        sa.UniqueConstraint("track_no", name="uq_fingerprints_track_no"),
    )
    op.create_index("ix_fingerprints_state", "fingerprints", ["state"])
    op.create_index("ix_fingerprints_batch_id", "fingerprints", ["batch_id"])
    op.create_index("ix_fingerprints_lease_owner", "fingerprints", ["lease_owner"])
    op.create_index("ix_fingerprints_identify_owner", "fingerprints", ["identify_owner"])
    op.create_table(
        "fingerprint_batches",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("keys", sa.LargeBinary(), nullable=False),
        sa.Column("postings", sa.LargeBinary(), nullable=False),
        sa.Column("n_postings", sa.Integer(), nullable=False),
        sa.Column("n_tracks", sa.Integer(), nullable=False),
        sa.Column("dead_postings", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("created_at", TS, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_fingerprint_batches"),
    )
    if op.get_context().dialect.name == "postgresql":
        # Packed postings are random bits and the keys are compressed already: TOAST's own
        # compression would only cost time.
        op.execute("ALTER TABLE fingerprint_batches ALTER COLUMN keys SET STORAGE EXTERNAL")
        op.execute("ALTER TABLE fingerprint_batches ALTER COLUMN postings SET STORAGE EXTERNAL")
    op.create_table(
        "fingerprint_index",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("generation", sa.Integer(), nullable=False),
        sa.Column("next_track", sa.Integer(), nullable=False),
        sa.Column("changed_at", TS, nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_fingerprint_index"),
    )
    op.execute("INSERT INTO fingerprint_index (id, generation, next_track) VALUES (1, 0, 0)")


def downgrade() -> None:
    op.drop_table("fingerprint_index")
    op.drop_table("fingerprint_batches")
    op.drop_index("ix_fingerprints_identify_owner", "fingerprints")
    op.drop_index("ix_fingerprints_lease_owner", "fingerprints")
    op.drop_index("ix_fingerprints_batch_id", "fingerprints")
    op.drop_index("ix_fingerprints_state", "fingerprints")
    op.drop_table("fingerprints")
