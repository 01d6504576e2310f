"""What the exports are made of: the library's tracks, and each set with its tracklist.

Gathered from the catalog once (``gather``) and handed to each writer (``rekordbox``,
``traktor``, ``playlists``), which only format it.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Protocol

from tracktiond.catalog.tracklistvalues import LibraryTrack, StoredTracklist


class Source(Protocol):
    async def current_tracklists(self, limit: int | None = None) -> list[StoredTracklist]: ...

    async def library_tracks(
        self, recording_ids: list[uuid.UUID]
    ) -> dict[uuid.UUID, LibraryTrack]: ...

    async def all_recording_ids(self) -> list[uuid.UUID]: ...


@dataclass(frozen=True, slots=True)
class SetExport:
    recording: LibraryTrack
    tracklist: StoredTracklist

    @property
    def name(self) -> str:
        rec = self.recording
        return self.tracklist.title or rec.title or rec.path.rsplit("/", 1)[-1]

    def matched(self) -> list[uuid.UUID]:
        """The library recordings the set plays, in order, each once."""
        seen: dict[uuid.UUID, None] = {}
        for stored in self.tracklist.entries:
            if stored.match.status == "matched" and stored.match.recording_id is not None:
                seen.setdefault(stored.match.recording_id, None)
        return list(seen)


@dataclass(frozen=True, slots=True)
class Export:
    tracks: dict[uuid.UUID, LibraryTrack]  # every track written, sets included
    sets: list[SetExport]


async def gather(source: Source, *, whole_library: bool = False) -> Export:
    tracklists = await source.current_tracklists()
    wanted: set[uuid.UUID] = {t.recording_id for t in tracklists}
    for t in tracklists:
        wanted |= {
            s.match.recording_id
            for s in t.entries
            if s.match.status == "matched" and s.match.recording_id is not None
        }
    if whole_library:
        wanted |= set(await source.all_recording_ids())
    tracks = await source.library_tracks(sorted(wanted, key=str))
    sets = [SetExport(tracks[t.recording_id], t) for t in tracklists if t.recording_id in tracks]
    sets.sort(key=lambda s: s.name.casefold())
    return Export(tracks, sets)
