"""The catalog schema (the migrations create it; this module describes it for queries).

A *recording* is one piece of content, identified by its hashes (UNIQUE, as the data model
declares). A *file* is one place on disk where a recording lives now. Identical copies are one
recording with several files; a move updates the file's path and keeps the recording. See
docs/catalog.md for the reasoning.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, cast

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    TypeDecorator,
    UniqueConstraint,
    Uuid,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

NAMING = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
}


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes on both backends (SQLite stores them naive)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to the catalog")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def utcnow() -> datetime:
    return datetime.now(UTC)


JSONVariant: Any = JSON().with_variant(JSONB(), "postgresql")


class FileState(StrEnum):
    PENDING = "pending"  # discovered or changed; waiting to be hashed and read
    CATALOGED = "cataloged"  # hashed, tags read, linked to a recording
    FAILED = "failed"  # could not be cataloged; last_error says why
    MISSING = "missing"  # was here, is gone (kept, so a returning file keeps its history)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


class Recording(Base):
    __tablename__ = "recordings"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    # The recording's current primary location: one of its present files.
    file_path: Mapped[str] = mapped_column(Text)
    file_name: Mapped[str] = mapped_column(Text)
    sha256_hash: Mapped[str] = mapped_column(String(64), unique=True)
    xxh128_hash: Mapped[str] = mapped_column(String(32), unique=True)
    size: Mapped[int] = mapped_column(BigInteger)
    format: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    # The audio stream's identity without tags (media.audiohash): analysis is keyed on it.
    audio_hash: Mapped[str | None] = mapped_column(String(40), nullable=True, index=True)


class AnalysisState(StrEnum):
    PENDING = "pending"
    DONE = "done"
    FAILED = "failed"


class Analysis(Base):
    """One row per distinct audio stream: the analysis queue and its results."""

    __tablename__ = "analyses"
    __table_args__ = (
        Index(
            "ix_analyses_lease_owner",
            "lease_owner",
            postgresql_where=text("lease_owner IS NOT NULL"),
            sqlite_where=text("lease_owner IS NOT NULL"),
        ),
    )

    audio_hash: Mapped[str] = mapped_column(String(40), primary_key=True)
    state: Mapped[str] = mapped_column(String(16), index=True)
    settings_fingerprint: Mapped[str | None] = mapped_column(String(32), nullable=True)
    version: Mapped[int | None] = mapped_column(Integer, nullable=True)
    results: Mapped[Any] = mapped_column(JSONVariant, nullable=True)
    error_class: Mapped[str | None] = mapped_column(String(16), nullable=True)
    last_error: Mapped[str | None] = mapped_column(Text, nullable=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    lease_owner: Mapped[str | None] = mapped_column(String(96), nullable=True)
    lease_expires: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    not_before: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    duration_seconds: Mapped[float | None] = mapped_column(Float, nullable=True)
    elapsed_seconds: Mapped[float | None] = mapped_column(Float, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    analysed_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)


class File(Base):
    __tablename__ = "files"
    __table_args__ = (
        Index("ix_files_dir", "dir"),
        Index("ix_files_recording_id", "recording_id"),
        Index("ix_files_state", "state"),
        Index("ix_files_device_inode", "device", "inode"),
        Index("ix_files_lease_owner", "lease_owner"),
        Index("ix_files_recording_id_state", "recording_id", "state"),
        # Partial: only rows under a tag lease are in it, so it costs nothing at rest.
        Index(
            "ix_files_tag_lease_owner",
            "tag_lease_owner",
            postgresql_where=text("tag_lease_owner IS NOT NULL"),
            sqlite_where=text("tag_lease_owner IS NOT NULL"),
        ),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    path: Mapped[str] = mapped_column(Text, unique=True)
    dir: Mapped[str] = mapped_column(Text)
    recording_id: Mapped[uuid.UUID | None] = mapped_column(
        Uuid, ForeignKey("recordings.id", ondelete="SET NULL"), nullable=True
    )
    size: Mapped[int] = mapped_column(BigInteger)
    mtime_ns: Mapped[int] = mapped_column(BigInteger)
    ctime_ns: Mapped[int] = mapped_column(BigInteger)
    inode: Mapped[int] = mapped_column(BigInteger)
    device: Mapped[int] = mapped_column(BigInteger)
    state: Mapped[str] = mapped_column(String(16), default=FileState.PENDING.value)
    error_class: Mapped[str | None] = mapped_column(String(16), nullable=True)
    last_error: Mapped[str | None] = mapped_column(Text, nullable=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    first_seen: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_seen: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    missing_since: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    # The work queue: a pending row is claimed by one worker of one instance (lease_owner)
    # until lease_expires; a crashed owner's leases expire and the work is claimed again.
    lease_owner: Mapped[str | None] = mapped_column(String(96), nullable=True)
    lease_expires: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    not_before: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    # Tag write-back: which analysis + options the file's tags were last brought in line with,
    # and how that went (written, unchanged, skipped, failed).
    tag_fingerprint: Mapped[str | None] = mapped_column(String(80), nullable=True)
    tag_status: Mapped[str | None] = mapped_column(String(16), nullable=True)
    tag_error: Mapped[str | None] = mapped_column(Text, nullable=True)
    # The tag write-back queue's own lease (the ingest queue's is lease_owner/lease_expires).
    tag_lease_owner: Mapped[str | None] = mapped_column(String(96), nullable=True)
    tag_lease_expires: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    tag_not_before: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    tag_attempts: Mapped[int] = mapped_column(Integer, default=0)


class MetadataEntry(Base):
    __tablename__ = "metadata"
    __table_args__ = (
        Index("ix_metadata_recording_id", "recording_id"),
        Index("ix_metadata_key", "key"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    recording_id: Mapped[uuid.UUID] = mapped_column(
        Uuid, ForeignKey("recordings.id", ondelete="CASCADE")
    )
    key: Mapped[str] = mapped_column(String(128))
    value: Mapped[str] = mapped_column(Text)
    # Where the value came from: "tags" (read from the file), "stream" (stream properties),
    # later "analysis". A re-read replaces one source's rows without touching the others.
    source: Mapped[str] = mapped_column(String(16))


class TracklistSourceState(StrEnum):
    PENDING = "pending"  # new or changed: to be read
    DONE = "done"  # read; its tracklist is current
    WAITING = "waiting"  # read, but the audio it belongs to is not cataloged (yet)
    FAILED = "failed"  # cannot be used; error says why (the previous tracklist stays)
    GONE = "gone"  # deleted from disk: its tracklist is to be retired
    RETIRED = "retired"  # gone, and its tracklist retired (kept as history)


class TracklistSource(Base):
    """Where a tracklist is read from: a cue sheet or pasted list next to the audio, or a sheet
    embedded in an audio file. The tracklist stage's queue (``lease_*``, catalog.work)."""

    __tablename__ = "tracklist_sources"
    __table_args__ = (
        UniqueConstraint("path", "kind", name="uq_tracklist_sources_path_kind"),
        Index("ix_tracklist_sources_dir", "dir"),
        Index("ix_tracklist_sources_state", "state"),
        Index(
            "ix_tracklist_sources_lease_owner",
            "lease_owner",
            postgresql_where=text("lease_owner IS NOT NULL"),
            sqlite_where=text("lease_owner IS NOT NULL"),
        ),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    path: Mapped[str] = mapped_column(Text)  # the sheet's path (embedded: the audio file's)
    dir: Mapped[str] = mapped_column(Text)
    kind: Mapped[str] = mapped_column(String(16))  # "cue", "text", "embedded"
    size: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    mtime_ns: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    state: Mapped[str] = mapped_column(String(16), default=TracklistSourceState.PENDING.value)
    # The recording the tracklist belongs to: resolved from FILE lines or the file name, or
    # (embedded) the recording holding the sheet.
    recording_id: Mapped[uuid.UUID | None] = mapped_column(
        Uuid, ForeignKey("recordings.id", ondelete="SET NULL"), nullable=True
    )
    embedded_text: Mapped[str | None] = mapped_column(Text, nullable=True)
    encoding: Mapped[str | None] = mapped_column(String(32), nullable=True)  # the one used
    encoding_override: Mapped[str | None] = mapped_column(String(32), nullable=True)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    checked_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    first_seen: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    lease_owner: Mapped[str | None] = mapped_column(String(96), nullable=True)
    lease_expires: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    not_before: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0)


class Tracklist(Base):
    """One version of one source's tracklist of a recording. The current version of a source
    has ``superseded_at`` NULL; earlier ones are its history."""

    __tablename__ = "tracklists"
    __table_args__ = (
        Index("ix_tracklists_recording_id", "recording_id"),
        Index("ix_tracklists_source_id", "source_id"),
    )

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    recording_id: Mapped[uuid.UUID] = mapped_column(
        Uuid, ForeignKey("recordings.id", ondelete="CASCADE")
    )
    # "cue", "embedded_cue", "text", "manual", "auto" (audio identification, to come)
    source: Mapped[str] = mapped_column(String(32))
    cue_file_path: Mapped[str | None] = mapped_column(Text, nullable=True)  # where it was read
    # The entries in the compact form the graph projection reads (catalog.outbox).
    tracks: Mapped[Any] = mapped_column(JSONVariant)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    source_id: Mapped[int | None] = mapped_column(
        Integer, ForeignKey("tracklist_sources.id", ondelete="SET NULL"), nullable=True
    )
    version: Mapped[int] = mapped_column(Integer, default=1)
    superseded_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    format: Mapped[str | None] = mapped_column(String(16), nullable=True)  # "cue", "text"
    title: Mapped[str | None] = mapped_column(Text, nullable=True)
    performer: Mapped[str | None] = mapped_column(Text, nullable=True)
    encoding: Mapped[str | None] = mapped_column(String(32), nullable=True)
    content_hash: Mapped[str | None] = mapped_column(String(64), nullable=True)
    document: Mapped[str | None] = mapped_column(Text, nullable=True)  # the text it came from
    warnings: Mapped[Any] = mapped_column(JSONVariant, nullable=True)


class TracklistEntryRow(Base):
    """One entry of one tracklist version, and the library recording it was matched to."""

    __tablename__ = "tracklist_entries"
    __table_args__ = (
        Index("ix_tracklist_entries_tracklist_id", "tracklist_id"),
        Index("ix_tracklist_entries_recording_id", "recording_id"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    tracklist_id: Mapped[uuid.UUID] = mapped_column(
        Uuid, ForeignKey("tracklists.id", ondelete="CASCADE")
    )
    position: Mapped[int] = mapped_column(Integer)
    start_seconds: Mapped[float | None] = mapped_column(Float, nullable=True)
    end_seconds: Mapped[float | None] = mapped_column(Float, nullable=True)
    artist: Mapped[str | None] = mapped_column(Text, nullable=True)
    title: Mapped[str | None] = mapped_column(Text, nullable=True)
    version: Mapped[str | None] = mapped_column(Text, nullable=True)  # "Someone Remix"
    label: Mapped[str | None] = mapped_column(Text, nullable=True)
    confidence: Mapped[float | None] = mapped_column(Float, nullable=True)
    unknown: Mapped[bool] = mapped_column(Boolean, default=False)  # "ID - ID"
    played_with: Mapped[int | None] = mapped_column(Integer, nullable=True)  # a position
    source_path: Mapped[str | None] = mapped_column(Text, nullable=True)  # a nested FILE
    extra: Mapped[Any] = mapped_column(JSONVariant, nullable=True)  # REMs, ISRC, ...
    match_status: Mapped[str | None] = mapped_column(String(16), nullable=True)
    recording_id: Mapped[uuid.UUID | None] = mapped_column(
        Uuid, ForeignKey("recordings.id", ondelete="SET NULL"), nullable=True
    )
    match_score: Mapped[float | None] = mapped_column(Float, nullable=True)
    candidates: Mapped[Any] = mapped_column(JSONVariant, nullable=True)


class RecordingWord(Base):
    """The search words of a recording's artist and title (media.names): tracklist matching
    looks candidates up here instead of reading every recording's tags."""

    __tablename__ = "recording_words"
    __table_args__ = (Index("ix_recording_words_recording_id", "recording_id"),)

    word: Mapped[str] = mapped_column(String(64), primary_key=True)
    recording_id: Mapped[uuid.UUID] = mapped_column(
        Uuid, ForeignKey("recordings.id", ondelete="CASCADE"), primary_key=True
    )


class GraphOutbox(Base):
    """A recording whose graph projection must be refreshed (no FK: it may be deleted since)."""

    __tablename__ = "graph_outbox"
    __table_args__ = (Index("ix_graph_outbox_recording_id", "recording_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    recording_id: Mapped[uuid.UUID] = mapped_column(Uuid)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class FingerprintState(StrEnum):
    PENDING = "pending"
    DONE = "done"
    FAILED = "failed"


class Fingerprint(Base):
    """One row per audio stream: the fingerprint queue, and what the index knows of it
    (catalog/fingerprints.py; migration 0010 says what each column is for)."""

    __tablename__ = "fingerprints"
    __table_args__ = (
        Index("ix_fingerprints_lease_owner", "lease_owner"),
        Index("ix_fingerprints_identify_owner", "identify_owner"),
    )

    audio_hash: Mapped[str] = mapped_column(String(40), primary_key=True)
    kind: Mapped[str | None] = mapped_column(String(8), nullable=True)  # "track" or "set"
    state: Mapped[str] = mapped_column(String(16), index=True)
    settings: Mapped[str | None] = mapped_column(String(16), nullable=True)
    track_no: Mapped[int | None] = mapped_column(Integer, nullable=True, unique=True)
    batch_id: Mapped[int | None] = mapped_column(Integer, nullable=True, index=True)
    frames: Mapped[int | None] = mapped_column(Integer, nullable=True)
    seconds: Mapped[float | None] = mapped_column(Float, nullable=True)
    postings: Mapped[int | None] = mapped_column(Integer, nullable=True)
    peaks: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)
    error_class: Mapped[str | None] = mapped_column(String(16), nullable=True)
    last_error: Mapped[str | None] = mapped_column(Text, nullable=True)
    elapsed_seconds: Mapped[float | None] = mapped_column(Float, nullable=True)
    lease_owner: Mapped[str | None] = mapped_column(String(96), nullable=True)
    lease_expires: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    not_before: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    identified_generation: Mapped[int | None] = mapped_column(Integer, nullable=True)
    identified_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    identify_error: Mapped[str | None] = mapped_column(Text, nullable=True)
    identify_owner: Mapped[str | None] = mapped_column(String(96), nullable=True)
    identify_expires: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    identify_not_before: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    identify_attempts: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class FingerprintBatch(Base):
    """The postings of the tracks one write indexed (``fingerprint.postings.Batch``)."""

    __tablename__ = "fingerprint_batches"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    keys: Mapped[bytes] = mapped_column(LargeBinary)
    postings: Mapped[bytes] = mapped_column(LargeBinary)
    n_postings: Mapped[int] = mapped_column(Integer)
    n_tracks: Mapped[int] = mapped_column(Integer)
    dead_postings: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class FingerprintIndexState(Base):
    """One row (id 1): the index's generation, when it last changed, the next track number."""

    __tablename__ = "fingerprint_index"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    generation: Mapped[int] = mapped_column(Integer)
    next_track: Mapped[int] = mapped_column(Integer)
    changed_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)


recordings = cast(Table, Recording.__table__)
files = cast(Table, File.__table__)
metadata_entries = cast(Table, MetadataEntry.__table__)
tracklists = cast(Table, Tracklist.__table__)
tracklist_sources = cast(Table, TracklistSource.__table__)
tracklist_entries = cast(Table, TracklistEntryRow.__table__)
recording_words = cast(Table, RecordingWord.__table__)
analyses = cast(Table, Analysis.__table__)
graph_outbox = cast(Table, GraphOutbox.__table__)
fingerprints = cast(Table, Fingerprint.__table__)
fingerprint_batches = cast(Table, FingerprintBatch.__table__)
fingerprint_index = cast(Table, FingerprintIndexState.__table__)
