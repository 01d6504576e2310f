"""Tracklists become versioned, with entries, their sources as a work queue, and search words.

- ``tracklist_sources``: the sheets and lists next to audio (and sheets embedded in it) that
  tracklists are read from; the tracklist stage's lease queue.
- ``tracklists`` gains its version history (``version``, ``superseded_at``), its source row,
  the text it was read from and how it was decoded. The rows ingest wrote from sibling ``.cue``
  files until now are dropped: the walk registers those sheets as sources and the stage reads
  them again, fully this time.
- ``tracklist_entries``: each entry with its times, names, confidence and library match.
- ``recording_words``: the search words of each recording's artist and title, filled here for
  the recordings already cataloged.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-09
"""

import uuid
from collections import defaultdict
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TS = sa.DateTime(timezone=True)


def _json() -> Any:
    from sqlalchemy.dialects.postgresql import JSONB

    return sa.JSON().with_variant(JSONB(), "postgresql")


def upgrade() -> None:
    op.create_table(
        "tracklist_sources",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("path", sa.Text(), nullable=False),
        sa.Column("dir", sa.Text(), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=True),
        sa.Column("mtime_ns", sa.BigInteger(), nullable=True),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("recording_id", sa.Uuid(), nullable=True),
        sa.Column("embedded_text", sa.Text(), nullable=True),
        sa.Column("encoding", sa.String(32), nullable=True),
        sa.Column("encoding_override", sa.String(32), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("checked_at", TS, nullable=True),
        sa.Column("first_seen", TS, nullable=False),
        sa.Column("updated_at", TS, nullable=False),
        sa.Column("lease_owner", sa.String(96), nullable=True),
        sa.Column("lease_expires", TS, nullable=True),
        sa.Column("not_before", TS, nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False, server_default="0"),
        sa.PrimaryKeyConstraint("id", name="pk_tracklist_sources"),
        sa.UniqueConstraint("path", "kind", name="uq_tracklist_sources_path_kind"),
        sa.ForeignKeyConstraint(
            ["recording_id"],
            ["recordings.id"],
            name="fk_tracklist_sources_recording_id_recordings",
            ondelete="SET NULL",
        ),
    )
    op.create_index("ix_tracklist_sources_dir", "tracklist_sources", ["dir"])
    op.create_index("ix_tracklist_sources_state", "tracklist_sources", ["state"])
    op.create_index(
        "ix_tracklist_sources_lease_owner",
        "tracklist_sources",
        ["lease_owner"],
        postgresql_where=sa.text("lease_owner IS NOT NULL"),
        sqlite_where=sa.text("lease_owner IS NOT NULL"),
    )

    op.execute("DELETE FROM tracklists")
    with op.batch_alter_table("tracklists") as batch:
        batch.add_column(sa.Column("source_id", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("version", sa.Integer(), nullable=False, server_default="1"))
        batch.add_column(sa.Column("superseded_at", TS, nullable=True))
        batch.add_column(sa.Column("format", sa.String(16), nullable=True))
        batch.add_column(sa.Column("title", sa.Text(), nullable=True))
        batch.add_column(sa.Column("performer", sa.Text(), nullable=True))
        batch.add_column(sa.Column("encoding", sa.String(32), nullable=True))
        batch.add_column(sa.Column("content_hash", sa.String(64), nullable=True))
        batch.add_column(sa.Column("document", sa.Text(), nullable=True))
        batch.add_column(sa.Column("warnings", _json(), nullable=True))
        batch.create_foreign_key(
            "fk_tracklists_source_id_tracklist_sources",
            "tracklist_sources",
            ["source_id"],
            ["id"],
            ondelete="SET NULL",
        )
        batch.create_index("ix_tracklists_source_id", ["source_id"])

    op.create_table(
        "tracklist_entries",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("tracklist_id", sa.Uuid(), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("start_seconds", sa.Float(), nullable=True),
        sa.Column("end_seconds", sa.Float(), nullable=True),
        sa.Column("artist", sa.Text(), nullable=True),
        sa.Column("title", sa.Text(), nullable=True),
        sa.Column("version", sa.Text(), nullable=True),
        sa.Column("label", sa.Text(), nullable=True),
        sa.Column("confidence", sa.Float(), nullable=True),
        sa.Column("unknown", sa.Boolean(), nullable=False, server_default=sa.false()),
        sa.Column("played_with", sa.Integer(), nullable=True),
        sa.Column("source_path", sa.Text(), nullable=True),
        sa.Column("extra", _json(), nullable=True),
        sa.Column("match_status", sa.String(16), nullable=True),
        sa.Column("recording_id", sa.Uuid(), nullable=True),
        sa.Column("match_score", sa.Float(), nullable=True),
        sa.Column("candidates", _json(), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_tracklist_entries"),
        sa.ForeignKeyConstraint(
            ["tracklist_id"],
            ["tracklists.id"],
            name="fk_tracklist_entries_tracklist_id_tracklists",
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["recording_id"],
            ["recordings.id"],
            name="fk_tracklist_entries_recording_id_recordings",
            ondelete="SET NULL",
        ),
    )
    op.create_index("ix_tracklist_entries_tracklist_id", "tracklist_entries", ["tracklist_id"])
    op.create_index("ix_tracklist_entries_recording_id", "tracklist_entries", ["recording_id"])

    op.create_table(
        "recording_words",
        sa.Column("word", sa.String(64), nullable=False),
        sa.Column("recording_id", sa.Uuid(), nullable=False),
        sa.PrimaryKeyConstraint("word", "recording_id", name="pk_recording_words"),
        sa.ForeignKeyConstraint(
            ["recording_id"],
            ["recordings.id"],
            name="fk_recording_words_recording_id_recordings",
            ondelete="CASCADE",
        ),
    )
    op.create_index("ix_recording_words_recording_id", "recording_words", ["recording_id"])
    _fill_words()


def _fill_words() -> None:
    """Search words for the recordings already cataloged, a chunk at a time."""
    from tracktiond.media.names import words

    conn = op.get_bind()
    metadata = sa.table(
        "metadata",
        sa.column("recording_id", sa.Uuid()),
        sa.column("key"),
        sa.column("value"),
        sa.column("source"),
    )
    table = sa.table("recording_words", sa.column("word"), sa.column("recording_id", sa.Uuid()))
    found: dict[uuid.UUID, set[str]] = defaultdict(set)
    result = conn.execute(
        sa.select(metadata.c.recording_id, metadata.c.key, metadata.c.value).where(
            metadata.c.key.in_(("artist", "title")), metadata.c.source == "tags"
        )
    )
    for rec_id, key, value in result:
        found[rec_id] |= words(value or "", artist=key == "artist")
    rows = [{"word": w, "recording_id": r} for r, ws in found.items() for w in sorted(ws)]
    for start in range(0, len(rows), 5000):
        conn.execute(sa.insert(table), rows[start : start + 5000])


def downgrade() -> None:
    op.drop_table("recording_words")
    op.drop_table("tracklist_entries")
    op.execute("DELETE FROM tracklists WHERE source <> 'cue'")
    with op.batch_alter_table("tracklists") as batch:
        batch.drop_index("ix_tracklists_source_id")
        batch.drop_constraint("fk_tracklists_source_id_tracklist_sources", type_="foreignkey")
        for column in (
            "warnings", "document", "content_hash", "encoding", "performer", "title",
            "format", "superseded_at", "version", "source_id",
        ):  # fmt: skip
            batch.drop_column(column)
    op.drop_table("tracklist_sources")
