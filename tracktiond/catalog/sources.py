"""Tracklist sources: the sheets and lists the walk finds next to audio, and embedded sheets.

A source row is registered when the walk (or the watcher) sees a ``.cue`` / ``.txt`` /
``.tracklist`` file, and is due for the tracklist stage (``work.TracklistQueue``) when it is new,
changed (size or mtime), or gone from disk. Unchanged sources cost nothing: the reconcile of a
directory compares their stat with the row, as it does for audio (DESIGN invariant 3).

A sheet embedded in an audio file is noted by ingest, in the transaction that records the file
(``note_embedded_sheet``), and is due when its text differs from the one last read.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import and_, delete, insert, or_, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from tracktiond.catalog.base import IN_CHUNK, StoreBase, _chunks
from tracktiond.catalog.models import (
    TracklistSourceState,
    recordings,
    tracklist_sources,
    utcnow,
)

S = TracklistSourceState
_ABSENT = (S.GONE.value, S.RETIRED.value)


@dataclass(frozen=True, slots=True)
class SidecarSeen:
    """A sheet or list file as the walk saw it (one stat, nothing read)."""

    path: str
    dir: str
    kind: str  # "cue" or "text"
    size: int
    mtime_ns: int


def _under(path: str) -> Any:
    prefix = path.rstrip("/") + "/"
    upper = prefix[:-1] + chr(ord("/") + 1)
    column = tracklist_sources.c.path
    return or_(column == path, and_(column >= prefix, column < upper))


class SourcesMixin(StoreBase):
    """Registering the sheets and lists the walk finds; noticing the ones that went away."""

    async def sync_sidecars(self, dirs: Sequence[str], seen: Sequence[SidecarSeen]) -> int:
        """Bring the sources of the completely listed ``dirs`` in line with ``seen`` (every
        sidecar found there, plus any seen elsewhere); returns how many became due."""
        now = utcnow()
        queued = 0
        async with self.engine.begin() as conn:
            known: dict[str, tuple[int, int | None, int | None, str]] = {}
            wanted_dirs = sorted(set(dirs) | {s.dir for s in seen})
            for chunk in _chunks(wanted_dirs, IN_CHUNK):
                rows = await conn.execute(
                    select(
                        tracklist_sources.c.path,
                        tracklist_sources.c.id,
                        tracklist_sources.c.size,
                        tracklist_sources.c.mtime_ns,
                        tracklist_sources.c.state,
                    ).where(
                        tracklist_sources.c.dir.in_(chunk), tracklist_sources.c.kind != "embedded"
                    )
                )
                known.update({r.path: (r.id, r.size, r.mtime_ns, r.state) for r in rows})
            new = []
            for s in seen:
                k = known.pop(s.path, None)
                if k is None:
                    new.append(
                        {
                            "path": s.path,
                            "dir": s.dir,
                            "kind": s.kind,
                            "size": s.size,
                            "mtime_ns": s.mtime_ns,
                            "state": S.PENDING.value,
                            "first_seen": now,
                            "updated_at": now,
                            "attempts": 0,
                        }
                    )
                elif (k[1], k[2]) != (s.size, s.mtime_ns) or k[3] in _ABSENT:
                    await conn.execute(
                        update(tracklist_sources)
                        .where(tracklist_sources.c.id == k[0])
                        .values(
                            size=s.size,
                            mtime_ns=s.mtime_ns,
                            state=S.PENDING.value,
                            attempts=0,
                            not_before=None,
                            updated_at=now,
                        )
                    )
                    queued += 1
            if new:
                await conn.execute(insert(tracklist_sources), new)
                queued += len(new)
            listed = set(dirs)
            gone = [k[0] for p, k in known.items() if os.path.dirname(p) in listed]
            queued += await self._mark_gone(conn, gone, now)
        return queued

    async def sidecars_vanished(self, paths: Sequence[str]) -> int:
        """Sources at or under ``paths`` (deleted files or directories) are gone."""
        now = utcnow()
        async with self.engine.begin() as conn:
            ids = []
            for path in paths:
                rows = await conn.execute(
                    select(tracklist_sources.c.id, tracklist_sources.c.state).where(
                        _under(path), tracklist_sources.c.kind != "embedded"
                    )
                )
                ids += [r.id for r in rows if r.state not in _ABSENT]
            return await self._mark_gone(conn, ids, now)

    async def _mark_gone(self, conn: AsyncConnection, ids: list[int], now: object) -> int:
        count = 0
        for chunk in _chunks(ids, IN_CHUNK):
            result = await conn.execute(
                update(tracklist_sources)
                .where(tracklist_sources.c.id.in_(chunk), tracklist_sources.c.state.notin_(_ABSENT))
                .values(state=S.GONE.value, attempts=0, not_before=None, updated_at=now)
            )
            count += int(result.rowcount or 0)
        return count

    async def set_source_encoding(self, path: str, encoding: str | None) -> bool:
        """Read the sidecar at ``path`` with ``encoding`` from now on (None: detect); it is
        read again. False when no such source is known."""
        async with self.engine.begin() as conn:
            result = await conn.execute(
                update(tracklist_sources)
                .where(tracklist_sources.c.path == path, tracklist_sources.c.kind != "embedded")
                .values(
                    encoding_override=encoding,
                    state=S.PENDING.value,
                    attempts=0,
                    not_before=None,
                    updated_at=utcnow(),
                )
            )
            return bool(result.rowcount)


async def note_embedded_sheet(
    conn: AsyncConnection, rec_id: uuid.UUID, text: str | None, *, new: bool = False
) -> None:
    """Ingest found ``text`` embedded in the recording's file (None: no sheet): the source is
    due when the text differs from the one last read, gone when the sheet went away.
    ``new``: the recording was just inserted, so it has no source yet."""
    table = tracklist_sources
    row = None
    if not new:
        row = (
            await conn.execute(
                select(table.c.id, table.c.embedded_text, table.c.state).where(
                    table.c.recording_id == rec_id, table.c.kind == "embedded"
                )
            )
        ).first()
    now = utcnow()
    if text is None:
        if row is not None and row.state not in _ABSENT:
            await conn.execute(
                update(table)
                .where(table.c.id == row.id)
                .values(state=S.GONE.value, attempts=0, updated_at=now)
            )
        return
    if row is not None:
        if row.embedded_text == text and row.state not in _ABSENT:
            return
        await conn.execute(
            update(table)
            .where(table.c.id == row.id)
            .values(
                embedded_text=text,
                state=S.PENDING.value,
                attempts=0,
                not_before=None,
                error=None,
                updated_at=now,
            )
        )
        return
    path = (
        await conn.execute(select(recordings.c.file_path).where(recordings.c.id == rec_id))
    ).scalar_one()
    # The path names the sheet for people; the recording is its identity. A row left at this
    # path by content that was there before belongs to no file any more.
    await conn.execute(delete(table).where(table.c.path == path, table.c.kind == "embedded"))
    await conn.execute(
        insert(table).values(
            path=path,
            dir=os.path.dirname(path),
            kind="embedded",
            state=S.PENDING.value,
            recording_id=rec_id,
            embedded_text=text,
            first_seen=now,
            updated_at=now,
            attempts=0,
        )
    )
