"""What callers of the catalog hand in and get back: plain dataclasses, never database rows.

Also ``to_int64``: how inode and device numbers fit the catalog's signed BIGINT columns."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from tracktiond.errors import FileJobError

if TYPE_CHECKING:  # the catalog stores what media found, without importing its readers
    from tracktiond.media.probe import IngestResult

_INT64 = 1 << 63


def to_int64(value: int) -> int:
    """Inode and device numbers are unsigned 64-bit; store them in a signed BIGINT."""
    return value - (1 << 64) if value >= _INT64 else value


@dataclass(frozen=True, slots=True)
class Observed:
    """A file as a directory walk sees it: where it is and what `stat` says."""

    path: str
    dir: str
    size: int
    mtime_ns: int
    ctime_ns: int
    inode: int
    device: int


@dataclass(frozen=True, slots=True)
class KnownFile:
    id: int
    path: str
    size: int
    mtime_ns: int
    ctime_ns: int
    inode: int
    device: int
    state: str
    # The recording id as the driver returned it (hex text on SQLite, a UUID on PostgreSQL):
    # a rescan builds one KnownFile per file and needs the id of almost none of them, so it is
    # parsed on use, not for every row.
    recording_ref: object | None

    @property
    def recording_id(self) -> uuid.UUID | None:
        ref = self.recording_ref
        if ref is None or isinstance(ref, uuid.UUID):
            return ref
        return uuid.UUID(str(ref))

    def same_content_signature(self, seen: Observed) -> bool:
        # size + mtime + inode: what `cp`, editors and taggers all change. ctime is not part
        # of it, because renames and chmod change ctime without touching content.
        return (self.size, self.mtime_ns, self.inode, self.device) == (
            seen.size,
            seen.mtime_ns,
            to_int64(seen.inode),
            to_int64(seen.device),
        )


class Outcome(StrEnum):
    NEW = "new"
    DUPLICATE = "duplicate"  # new path, content already cataloged at another present path
    CHANGED = "changed"
    MOVED = "moved"
    UNCHANGED = "unchanged"
    FAILED = "failed"
    RETRY = "retry"  # transient failure, will be tried again
    DEFERRED = "deferred"  # still being written: read again once settled, no attempt counted
    MISSING = "missing"


@dataclass(frozen=True, slots=True)
class Job:
    """One pending file handed to the ingest stage."""

    file_id: int
    path: str


@dataclass(frozen=True, slots=True)
class JobResult:
    job: Job
    result: IngestResult | None = None
    error: FileJobError | None = None


@dataclass(frozen=True, slots=True)
class AnalysisJob:
    """One audio stream to analyse, and a present file that holds it."""

    audio_hash: str
    path: str
    duration: float | None


@dataclass(frozen=True, slots=True)
class FingerprintJob:
    """An audio stream to fingerprint, and one present file that holds it."""

    audio_hash: str
    path: str
    duration: float | None
    attempts: int = 0


@dataclass(frozen=True, slots=True)
class IdentifyJob:
    """A set to identify against the index: its stored peaks, and the generation of the
    index it is identified against (what a finished job records)."""

    audio_hash: str
    recording_ids: tuple[uuid.UUID, ...]
    path: str
    frames: int
    peaks: bytes
    generation: int
    attempts: int = 0


@dataclass(frozen=True, slots=True)
class TagJob:
    """A file whose tags should be brought in line with its recording's analysis."""

    file_id: int
    path: str
    analysis: dict[str, Any]  # AnalysisResult.to_dict()
    fingerprint: str  # analysis settings fingerprint + ":" + tagging options fingerprint


@dataclass(slots=True)
class RecordingProjection:
    """A recording as the graph shows it."""

    id: uuid.UUID
    file_path: str
    file_name: str
    sha256: str
    format: str
    paths: list[str] = field(default_factory=list)  # present file locations
    metadata: dict[str, str] = field(default_factory=dict)  # tags, stream and analysis keys
    tracklists: list[dict[str, Any]] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class Failure:
    path: str
    error_class: str
    reason: str
    at: datetime


@dataclass(frozen=True, slots=True)
class DuplicateGroup:
    recording_id: uuid.UUID
    sha256: str
    size: int
    paths: list[str]


@dataclass(slots=True)
class CatalogStatus:
    files_by_state: dict[str, int] = field(default_factory=dict)
    recordings: int = 0
    duplicate_recordings: int = 0
    duplicate_files: int = 0
    recent_failures: list[Failure] = field(default_factory=list)
