"""What tracklists look like to the catalog's callers: drafts handed in, versions handed back.

A *draft* is what a reader made of a sheet or a list (``tracktiond.tracklists``); the catalog
stores it as a new *version* of its source's tracklist, with each entry's *match* to the
library. Sources: "cue" (a sheet next to the audio), "embedded_cue" (a sheet inside it), "text"
(a pasted list next to it), "manual" (imported by hand), "auto" (identified from the audio:
the model is ready for it — a confidence per entry — the identifier is still to come).
"""

from __future__ import annotations

import hashlib
import json
import uuid
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

SOURCES = ("cue", "embedded_cue", "text", "manual", "auto")
# Which tracklist a recording shows when it has several: what a person wrote beats a guess.
PREFERENCE = {"manual": 0, "cue": 1, "embedded_cue": 2, "text": 3, "auto": 4}

MATCHED, AMBIGUOUS, POSSIBLE, UNMATCHED, UNKNOWN = (
    "matched",
    "ambiguous",
    "possible",
    "unmatched",
    "unknown",
)


@dataclass(frozen=True, slots=True)
class EntryDraft:
    """One entry as a sheet or list gives it. Times are seconds into the recording."""

    position: int
    start: float | None = None
    end: float | None = None
    artist: str | None = None
    title: str | None = None
    version: str | None = None  # "Someone Remix", "Extended Mix"
    label: str | None = None
    confidence: float | None = None  # 1.0 for what a person wrote; the identifier's score
    unknown: bool = False  # "ID - ID": played, but nobody knows what
    played_with: int | None = None  # the position of the entry it was played over (w/, vs.)
    source_path: str | None = None  # where the track came from (a FILE nested in a TRACK)
    extra: dict[str, Any] = field(default_factory=dict)  # REMs, ISRC, ... (JSON)


@dataclass(frozen=True, slots=True)
class TracklistDraft:
    source: str
    format: str  # "cue" or "text": what ``document`` is
    entries: tuple[EntryDraft, ...]
    title: str | None = None
    performer: str | None = None
    origin: str | None = None  # the file it was read from (embedded: the audio file)
    encoding: str | None = None
    document: str | None = None  # the text it was read from
    warnings: tuple[str, ...] = ()

    def content_hash(self) -> str:
        """Identifies what the tracklist says (not where it was read): an unchanged re-read
        adds no version."""
        body = {
            "source": self.source,
            "title": self.title,
            "performer": self.performer,
            "entries": [asdict(e) for e in self.entries],
        }
        text = json.dumps(body, sort_keys=True, ensure_ascii=False, default=str)
        return hashlib.sha256(text.encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class Candidate:
    recording_id: uuid.UUID
    score: float
    path: str | None = None
    artist: str | None = None
    title: str | None = None

    def as_json(self) -> dict[str, Any]:
        return {
            "recording": str(self.recording_id),
            "score": round(self.score, 4),
            "path": self.path,
            "artist": self.artist,
            "title": self.title,
        }


@dataclass(frozen=True, slots=True)
class EntryMatch:
    status: str  # matched / ambiguous / possible / unmatched / unknown
    recording_id: uuid.UUID | None = None
    score: float | None = None
    candidates: tuple[Candidate, ...] = ()
    method: str | None = None  # "names", "file" (a nested FILE that is in the library)


@dataclass(frozen=True, slots=True)
class StoredEntry:
    entry: EntryDraft
    match: EntryMatch
    path: str | None = None  # the matched recording's present file


@dataclass(frozen=True, slots=True)
class StoredTracklist:
    id: uuid.UUID
    recording_id: uuid.UUID
    source: str
    version: int
    created_at: datetime
    superseded_at: datetime | None
    origin: str | None
    format: str | None
    title: str | None
    performer: str | None
    encoding: str | None
    document: str | None
    warnings: tuple[str, ...]
    entries: tuple[StoredEntry, ...]

    @property
    def current(self) -> bool:
        return self.superseded_at is None


@dataclass(frozen=True, slots=True)
class SourceJob:
    """A tracklist source claimed by the tracklist stage."""

    id: int
    path: str
    kind: str  # "cue", "text", "embedded"
    state: str
    recording_id: uuid.UUID | None
    embedded_text: str | None
    encoding_override: str | None
    attempts: int

    @property
    def file_id(self) -> int:  # what the stage loop's log lines call a job's id
        return self.id


@dataclass(frozen=True, slots=True)
class LibraryTrack:
    """What matching and the exports need of a library recording."""

    recording_id: uuid.UUID
    path: str
    artist: str | None
    title: str | None
    duration: float | None
    bpm: float | None = None
    key: str | None = None
    first_beat: float | None = None
    album: str | None = None
    genre: str | None = None
