"""Tracklists in the catalog: versions per source, their entries and matches, and reading them.

Writing a tracklist is one transaction: the source's current version is superseded (kept as
history), the new one is inserted with its entries, and the recording is queued for the graph
(DESIGN invariant 6). A re-read that says the same (``TracklistDraft.content_hash``) adds no
version. A source that fails keeps its previous version current: a bad edit of a sheet never
leaves a recording with half a tracklist. The tracklist stage records through
``record_source``, which also frees the source's lease (``work.TracklistQueue``).
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from tracktiond.catalog.base import IN_CHUNK, StoreBase, _chunks
from tracktiond.catalog.leases import DEFAULT_BACKOFF, Backoff
from tracktiond.catalog.models import (
    FileState,
    TracklistSourceState,
    files,
    metadata_entries,
    recordings,
    tracklist_entries,
    tracklist_sources,
    tracklists,
    utcnow,
)
from tracktiond.catalog.tracklistvalues import (
    PREFERENCE,
    Candidate,
    EntryDraft,
    EntryMatch,
    LibraryTrack,
    SourceJob,
    StoredEntry,
    StoredTracklist,
    TracklistDraft,
)
from tracktiond.catalog.upkeep import _touch_graph
from tracktiond.catalog.values import Failure
from tracktiond.catalog.wordindex import recordings_with_words, word_frequencies
from tracktiond.catalog.work import TracklistQueue

S = TracklistSourceState
SOURCE_OF_KIND = {"cue": "cue", "text": "text", "embedded": "embedded_cue"}


def _entry_rows(
    tracklist_id: uuid.UUID, draft: TracklistDraft, matches: Sequence[EntryMatch]
) -> list[dict[str, Any]]:
    rows = []
    for entry, match in zip(draft.entries, matches, strict=True):
        rows.append(
            {
                "tracklist_id": tracklist_id,
                "position": entry.position,
                "start_seconds": entry.start,
                "end_seconds": entry.end,
                "artist": entry.artist,
                "title": entry.title,
                "version": entry.version,
                "label": entry.label,
                "confidence": entry.confidence,
                "unknown": entry.unknown,
                "played_with": entry.played_with,
                "source_path": entry.source_path,
                "extra": entry.extra or None,
                **_match_values(match),
            }
        )
    return rows


def _match_values(match: EntryMatch) -> dict[str, Any]:
    return {
        "match_status": match.status,
        "recording_id": match.recording_id,
        "match_score": match.score,
        "candidates": [c.as_json() for c in match.candidates] or None,
    }


def _compact(draft: TracklistDraft, matches: Sequence[EntryMatch]) -> list[dict[str, Any]]:
    """The entries as the graph projection reads them (``tracklists.tracks``)."""
    return [
        {
            "number": e.position,
            "title": e.title,
            "artist": e.artist,
            "start_time": e.start,
            "recording": str(m.recording_id) if m.recording_id and m.status == "matched" else None,
        }
        for e, m in zip(draft.entries, matches, strict=True)
        if not e.unknown
    ]


async def _save(
    conn: AsyncConnection,
    recording_id: uuid.UUID,
    draft: TracklistDraft,
    matches: Sequence[EntryMatch],
    source_id: int | None,
) -> tuple[uuid.UUID, int, bool]:
    """Store ``draft`` as the new current version; (id, version, whether anything changed)."""
    # One history per (recording, source row); an import by hand has no source row: one
    # history per source and file it came from.
    scope: list[Any] = [tracklists.c.recording_id == recording_id]
    if source_id is not None:
        scope.append(tracklists.c.source_id == source_id)
    else:
        scope += [tracklists.c.source == draft.source, tracklists.c.source_id.is_(None)]
        scope.append(
            tracklists.c.cue_file_path.is_(None)
            if draft.origin is None
            else tracklists.c.cue_file_path == draft.origin
        )
    current = (
        await conn.execute(
            select(tracklists.c.id, tracklists.c.version, tracklists.c.content_hash).where(
                *scope, tracklists.c.superseded_at.is_(None)
            )
        )
    ).first()
    digest = draft.content_hash()
    now = utcnow()
    if current is not None and current.content_hash == digest:
        await _rematch(conn, current.id, draft, matches)
        return current.id, current.version, False
    version = 1
    if current is not None:
        await conn.execute(
            update(tracklists).where(tracklists.c.id == current.id).values(superseded_at=now)
        )
        version = current.version + 1
    else:
        last = (await conn.execute(select(func.max(tracklists.c.version)).where(*scope))).scalar()
        version = (last or 0) + 1
    tl_id = uuid.uuid4()
    await conn.execute(
        insert(tracklists).values(
            id=tl_id,
            recording_id=recording_id,
            source=draft.source,
            cue_file_path=draft.origin,
            tracks=_compact(draft, matches),
            created_at=now,
            source_id=source_id,
            version=version,
            format=draft.format,
            title=draft.title,
            performer=draft.performer,
            encoding=draft.encoding,
            content_hash=digest,
            document=draft.document,
            warnings=list(draft.warnings) or None,
        )
    )
    rows = _entry_rows(tl_id, draft, matches)
    for chunk in _chunks(rows, 500):
        await conn.execute(insert(tracklist_entries), chunk)
    await _touch_graph(conn, [recording_id])
    return tl_id, version, True


async def _rematch(
    conn: AsyncConnection, tl_id: uuid.UUID, draft: TracklistDraft, matches: Sequence[EntryMatch]
) -> None:
    for entry, match in zip(draft.entries, matches, strict=True):
        await conn.execute(
            update(tracklist_entries)
            .where(
                tracklist_entries.c.tracklist_id == tl_id,
                tracklist_entries.c.position == entry.position,
            )
            .values(**_match_values(match))
        )
    await conn.execute(
        update(tracklists).where(tracklists.c.id == tl_id).values(tracks=_compact(draft, matches))
    )


async def _retire(conn: AsyncConnection, source_id: int) -> list[uuid.UUID]:
    rows = (
        await conn.execute(
            update(tracklists)
            .where(tracklists.c.source_id == source_id, tracklists.c.superseded_at.is_(None))
            .values(superseded_at=utcnow())
            .returning(tracklists.c.recording_id)
        )
    ).all()
    return [r[0] for r in rows]


class TracklistsMixin(StoreBase):
    """Tracklist versions: recording what the stage read, and reading them back."""

    # -- writing -------------------------------------------------------------------------------

    async def save_tracklist(
        self,
        recording_id: uuid.UUID,
        draft: TracklistDraft,
        matches: Sequence[EntryMatch],
        *,
        source_id: int | None = None,
    ) -> tuple[uuid.UUID, int, bool]:
        """Store a tracklist (``tracklist import``); (id, version, changed)."""
        async with self.engine.begin() as conn:
            return await _save(conn, recording_id, draft, matches, source_id)

    async def record_source(
        self,
        job: SourceJob,
        owner: str | None,
        *,
        state: str,
        saved: Sequence[tuple[uuid.UUID, TracklistDraft, Sequence[EntryMatch]]] = (),
        error: str | None = None,
        encoding: str | None = None,
        retry: bool = False,
        max_attempts: int = 3,
        backoff: Backoff = DEFAULT_BACKOFF,
    ) -> str | None:
        """What reading a source came to: ``state`` "done" or "waiting" (with the tracklists
        read, ``saved``: recording, draft, matches), "failed" (``error``; with ``retry`` it is
        tried again after a backoff, until ``max_attempts``) or "retired" (it is gone).
        Returns the outcome recorded — "new" / "unchanged" for a read, else the state — or None
        when the lease was lost or the source changed meanwhile (the newer state stands)."""
        where = [tracklist_sources.c.id == job.id, tracklist_sources.c.state == job.state]
        if owner is not None:
            where.append(TracklistQueue.owner == owner)
        now = utcnow()
        async with self.engine.begin() as conn:
            found = (
                await conn.execute(select(tracklist_sources.c.attempts).where(*where))
            ).scalar_one_or_none()
            if found is None:
                return None
            values: dict[str, Any] = dict(TracklistQueue.done())
            outcome = state
            if state == S.FAILED.value and retry:
                attempt = TracklistQueue.failed(
                    found, retryable=True, max_attempts=max_attempts, now=now, backoff=backoff
                )
                values = dict(attempt.values)
                if attempt.retry:
                    outcome = "retry"
                    state = job.state
                else:
                    error = f"{error} (gave up after {found + 1} attempts)"
            changed = False
            for recording_id, draft, matches in saved:
                _, _, new = await _save(conn, recording_id, draft, matches, job.id)
                changed = changed or new
            if state == S.DONE.value:
                outcome = "new" if changed else "unchanged"
            elif state == "retired":
                state = S.RETIRED.value
                await _touch_graph(conn, await _retire(conn, job.id))
            values |= {"state": state, "error": error, "checked_at": now, "updated_at": now}
            if saved:
                values["recording_id"] = saved[0][0]
            if encoding is not None:
                values["encoding"] = encoding
            await conn.execute(update(tracklist_sources).where(*where).values(**values))
            return outcome

    # -- what the stage needs to know ----------------------------------------------------------

    async def audio_at(self, paths: Sequence[str]) -> dict[str, uuid.UUID]:
        """The recordings of the cataloged files at ``paths``."""
        out: dict[str, uuid.UUID] = {}
        async with self.engine.connect() as conn:
            for chunk in _chunks(list(dict.fromkeys(paths)), IN_CHUNK):
                rows = await conn.execute(
                    select(files.c.path, files.c.recording_id).where(
                        files.c.path.in_(chunk),
                        files.c.state == FileState.CATALOGED.value,
                        files.c.recording_id.is_not(None),
                    )
                )
                out.update({r.path: r.recording_id for r in rows})
        return out

    async def audio_in_dir(self, directory: str) -> dict[str, uuid.UUID]:
        """The cataloged audio files of one directory, path → recording."""
        async with self.engine.connect() as conn:
            rows = await conn.execute(
                select(files.c.path, files.c.recording_id).where(
                    files.c.dir == directory,
                    files.c.state == FileState.CATALOGED.value,
                    files.c.recording_id.is_not(None),
                )
            )
            return {r.path: r.recording_id for r in rows}

    async def recording_duration(self, recording_id: uuid.UUID) -> float | None:
        async with self.engine.connect() as conn:
            value = (
                await conn.execute(
                    select(metadata_entries.c.value).where(
                        metadata_entries.c.recording_id == recording_id,
                        metadata_entries.c.key == "duration",
                        metadata_entries.c.source == "stream",
                    )
                )
            ).scalar()
        try:
            return float(value) if value is not None else None
        except ValueError:
            return None

    async def candidates_by_words(self, wanted: Iterable[str]) -> dict[str, list[str]]:
        async with self.engine.connect() as conn:
            return await recordings_with_words(conn, wanted)

    async def word_frequencies(self, wanted: Iterable[str]) -> dict[str, int]:
        async with self.engine.connect() as conn:
            return await word_frequencies(conn, wanted)

    async def library_tracks(
        self, recording_ids: Iterable[uuid.UUID]
    ) -> dict[uuid.UUID, LibraryTrack]:
        """Names, duration, BPM and key of recordings (for matching, cue sheets, exports)."""
        ids = list(dict.fromkeys(recording_ids))
        out: dict[uuid.UUID, LibraryTrack] = {}
        wanted = (
            "artist", "title", "album", "genre", "duration", "bpm", "analysis.bpm",
            "analysis.key_short", "initialkey",
        )  # fmt: skip
        async with self.engine.connect() as conn:
            for chunk in _chunks(ids, IN_CHUNK):
                paths = {
                    r.id: r.file_path
                    for r in await conn.execute(
                        select(recordings.c.id, recordings.c.file_path).where(
                            recordings.c.id.in_(chunk)
                        )
                    )
                }
                meta: dict[uuid.UUID, dict[str, str]] = {i: {} for i in paths}
                for r in await conn.execute(
                    select(
                        metadata_entries.c.recording_id,
                        metadata_entries.c.key,
                        metadata_entries.c.value,
                    ).where(
                        metadata_entries.c.recording_id.in_(chunk),
                        # `key || ''`: look rows up by recording, never by key. An un-analysed
                        # SQLite planner otherwise walks every recording's "artist" row.
                        (metadata_entries.c.key + "").in_(wanted),
                    )
                ):
                    meta[r.recording_id][r.key] = r.value
                for rec_id, path in paths.items():
                    m = meta[rec_id]
                    out[rec_id] = LibraryTrack(
                        recording_id=rec_id,
                        path=path,
                        artist=m.get("artist"),
                        title=m.get("title"),
                        duration=_number(m.get("duration")),
                        bpm=_number(m.get("analysis.bpm")) or _number(m.get("bpm")),
                        key=m.get("analysis.key_short") or m.get("initialkey"),
                        album=m.get("album"),
                        genre=m.get("genre"),
                    )
        return out

    # -- reading -------------------------------------------------------------------------------

    async def resolve_recording(self, ref: str) -> tuple[uuid.UUID, str] | None:
        """(recording, its primary path) for a recording's uuid or any of its files' paths."""
        async with self.engine.connect() as conn:
            try:
                rec_id: uuid.UUID | None = uuid.UUID(ref)
            except ValueError:
                rec_id = None
            if rec_id is not None:
                row = (
                    await conn.execute(
                        select(recordings.c.id, recordings.c.file_path).where(
                            recordings.c.id == rec_id
                        )
                    )
                ).first()
                if row is not None:
                    return row.id, row.file_path
            row = (
                await conn.execute(
                    select(recordings.c.id, recordings.c.file_path)
                    .join(files, files.c.recording_id == recordings.c.id)
                    .where(files.c.path == _absolute(ref))
                )
            ).first()
            return (row.id, row.file_path) if row is not None else None

    async def tracklists_of(
        self, recording_id: uuid.UUID, *, history: bool = False
    ) -> list[StoredTracklist]:
        """The recording's current tracklists, the preferred source first (``history``: every
        version, newest first within a source)."""
        async with self.engine.connect() as conn:
            query = select(tracklists).where(tracklists.c.recording_id == recording_id)
            if not history:
                query = query.where(tracklists.c.superseded_at.is_(None))
            heads = (await conn.execute(query)).all()
            if not heads:
                return []
            entries: dict[uuid.UUID, list[Any]] = {h.id: [] for h in heads}
            for chunk in _chunks(list(entries), IN_CHUNK):
                for r in await conn.execute(
                    select(tracklist_entries)
                    .where(tracklist_entries.c.tracklist_id.in_(chunk))
                    .order_by(tracklist_entries.c.position)
                ):
                    entries[r.tracklist_id].append(r)
            matched = {r.recording_id for rows in entries.values() for r in rows if r.recording_id}
            paths = await _present_paths(conn, matched)
        out = [_stored(h, entries[h.id], paths) for h in heads]
        out.sort(key=lambda t: (PREFERENCE.get(t.source, 9), t.origin or "", -t.version))
        return out

    async def current_tracklists(self, limit: int | None = None) -> list[StoredTracklist]:
        """Every recording's preferred current tracklist (the exports)."""
        async with self.engine.connect() as conn:
            query = (
                select(tracklists.c.recording_id)
                .where(tracklists.c.superseded_at.is_(None))
                .distinct()
            )
            rec_ids = [r[0] for r in await conn.execute(query)]
        out = []
        for rec_id in rec_ids[:limit] if limit else rec_ids:
            found = await self.tracklists_of(rec_id)
            if found:
                out.append(found[0])
        return out

    async def all_recording_ids(self) -> list[uuid.UUID]:
        """Every recording with a present file (an export of the whole library)."""
        async with self.engine.connect() as conn:
            rows = await conn.execute(
                select(files.c.recording_id)
                .where(
                    files.c.state == FileState.CATALOGED.value, files.c.recording_id.is_not(None)
                )
                .distinct()
            )
            return [r[0] for r in rows]

    async def tracklist_counts(self) -> dict[str, dict[str, int]]:
        """Current tracklists by source, their entries by match status, sources by state."""
        async with self.engine.connect() as conn:
            by_source = {
                r[0]: int(r[1])
                for r in await conn.execute(
                    select(tracklists.c.source, func.count())
                    .where(tracklists.c.superseded_at.is_(None))
                    .group_by(tracklists.c.source)
                )
            }
            by_match = {
                (r[0] or "unmatched"): int(r[1])
                for r in await conn.execute(
                    select(tracklist_entries.c.match_status, func.count())
                    .join(tracklists, tracklists.c.id == tracklist_entries.c.tracklist_id)
                    .where(tracklists.c.superseded_at.is_(None))
                    .group_by(tracklist_entries.c.match_status)
                )
            }
            by_state = {
                r[0]: int(r[1])
                for r in await conn.execute(
                    select(tracklist_sources.c.state, func.count()).group_by(
                        tracklist_sources.c.state
                    )
                )
            }
        return {"tracklists": by_source, "entries": by_match, "sources": by_state}

    async def tracklist_failures(self, limit: int = 10) -> list[Failure]:
        """Sources that could not be used, as the status document's recorded failures."""
        return [
            Failure(p["path"], "bad_input", p["error"] or "", datetime.fromisoformat(p["at"]))
            for p in await self.source_problems(limit)
        ]

    async def source_problems(
        self, limit: int = 10, recording_id: uuid.UUID | None = None
    ) -> list[dict[str, Any]]:
        """Sources that could not be used, with the reason (newest first)."""
        query = select(
            tracklist_sources.c.path,
            tracklist_sources.c.kind,
            tracklist_sources.c.error,
            tracklist_sources.c.updated_at,
        ).where(tracklist_sources.c.state == S.FAILED.value)
        if recording_id is not None:
            query = query.where(tracklist_sources.c.recording_id == recording_id)
        async with self.engine.connect() as conn:
            rows = await conn.execute(
                query.order_by(tracklist_sources.c.updated_at.desc()).limit(limit)
            )
            return [
                {"path": r.path, "kind": r.kind, "error": r.error, "at": r.updated_at.isoformat()}
                for r in rows
            ]


def _absolute(path: str) -> str:
    # Normalised without resolving symlinks: the catalog records paths as the user sees them.
    return os.path.normpath(os.path.abspath(path))


def _number(value: str | None) -> float | None:
    if value is None:
        return None
    try:
        return float(value.split()[0])
    except (ValueError, IndexError):
        return None


async def _present_paths(
    conn: AsyncConnection, rec_ids: Iterable[uuid.UUID]
) -> dict[uuid.UUID, str]:
    out: dict[uuid.UUID, str] = {}
    for chunk in _chunks(list(rec_ids), IN_CHUNK):
        for r in await conn.execute(
            select(recordings.c.id, recordings.c.file_path).where(recordings.c.id.in_(chunk))
        ):
            out[r.id] = r.file_path
    return out


def _stored(head: Any, rows: Sequence[Any], paths: dict[uuid.UUID, str]) -> StoredTracklist:
    entries = []
    for r in rows:
        draft = EntryDraft(
            position=r.position,
            start=r.start_seconds,
            end=r.end_seconds,
            artist=r.artist,
            title=r.title,
            version=r.version,
            label=r.label,
            confidence=r.confidence,
            unknown=bool(r.unknown),
            played_with=r.played_with,
            source_path=r.source_path,
            extra=r.extra or {},
        )
        candidates = tuple(
            Candidate(
                uuid.UUID(c["recording"]),
                float(c["score"]),
                c.get("path"),
                c.get("artist"),
                c.get("title"),
            )
            for c in (r.candidates or [])
        )
        match = EntryMatch(r.match_status or "unmatched", r.recording_id, r.match_score, candidates)
        entries.append(
            StoredEntry(draft, match, paths.get(r.recording_id) if r.recording_id else None)
        )
    created: datetime = head.created_at
    return StoredTracklist(
        id=head.id,
        recording_id=head.recording_id,
        source=head.source,
        version=head.version,
        created_at=created,
        superseded_at=head.superseded_at,
        origin=head.cue_file_path,
        format=head.format,
        title=head.title,
        performer=head.performer,
        encoding=head.encoding,
        document=head.document,
        warnings=tuple(head.warnings or ()),
        entries=tuple(entries),
    )
