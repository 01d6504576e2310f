"""Writes that run inside a caller's transaction and keep a recording's rows consistent.

A recording's primary path stays on a present file, a recording no file refers to is dropped,
its metadata, search words and embedded cue sheet follow the file last read, its audio has an
analysis row
(finished results copied over), and every change queues it for the graph in the same
transaction (DESIGN invariant 6)."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterable
from datetime import datetime
from typing import TYPE_CHECKING

from sqlalchemy import delete, func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from tracktiond.catalog.base import _dialect_insert
from tracktiond.catalog.models import (
    AnalysisState,
    FileState,
    analyses,
    files,
    graph_outbox,
    metadata_entries,
    recordings,
    utcnow,
)
from tracktiond.catalog.sources import note_embedded_sheet
from tracktiond.catalog.wordindex import replace_words

if TYPE_CHECKING:  # the catalog stores what media found, without importing its readers
    from tracktiond.media.probe import IngestResult


def _duration(res: IngestResult) -> float | None:
    try:
        return float(res.stream.get("duration", "")) or None
    except ValueError:
        return None


async def _replace_metadata(conn: AsyncConnection, rec_id: uuid.UUID, res: IngestResult) -> None:
    await note_embedded_sheet(conn, rec_id, res.embedded_cue)
    await replace_words(conn, rec_id, res.tags)
    await conn.execute(
        delete(metadata_entries).where(
            metadata_entries.c.recording_id == rec_id,
            metadata_entries.c.source.in_(("tags", "stream")),
        )
    )
    rows = [
        {"recording_id": rec_id, "key": k, "value": v, "source": "tags"}
        for k, v in res.tags.items()
    ] + [
        {"recording_id": rec_id, "key": k, "value": v, "source": "stream"}
        for k, v in res.stream.items()
    ]
    if rows:
        await conn.execute(insert(metadata_entries), rows)


async def _point_recording_at(
    conn: AsyncConnection, rec_id: uuid.UUID, path: str, *, replace: str
) -> None:
    await conn.execute(
        update(recordings)
        .where(recordings.c.id == rec_id, recordings.c.file_path == replace)
        .values(file_path=path, file_name=os.path.basename(path), updated_at=utcnow())
    )


async def _repoint_recordings(conn: AsyncConnection, rec_ids: Iterable[uuid.UUID]) -> None:
    """Keep each recording's file_path on a present file when its current one went away."""
    for rec_id in rec_ids:
        current = (
            await conn.execute(select(recordings.c.file_path).where(recordings.c.id == rec_id))
        ).scalar()
        if current is None:
            continue
        present = (
            (
                await conn.execute(
                    select(files.c.path)
                    .where(files.c.recording_id == rec_id, files.c.state != FileState.MISSING.value)
                    .order_by(files.c.id)
                )
            )
            .scalars()
            .all()
        )
        if present and current not in present:
            await conn.execute(
                update(recordings)
                .where(recordings.c.id == rec_id)
                .values(file_path=present[0], file_name=os.path.basename(present[0]))
            )


async def _drop_if_orphan(conn: AsyncConnection, rec_id: uuid.UUID) -> None:
    remaining = (
        await conn.execute(
            select(func.count()).select_from(files).where(files.c.recording_id == rec_id)
        )
    ).scalar_one()
    if remaining == 0:
        await conn.execute(delete(recordings).where(recordings.c.id == rec_id))


async def _link_analysis(
    conn: AsyncConnection, dialect: str, rec_id: uuid.UUID, res: IngestResult, now: datetime
) -> None:
    """Make sure the recording's audio has an analysis row; copy finished results over."""
    duration = _duration(res)
    await conn.execute(
        _dialect_insert(dialect, analyses)
        .values(
            audio_hash=res.audio_hash,
            state=AnalysisState.PENDING.value,
            attempts=0,
            duration_seconds=duration,
            created_at=now,
            updated_at=now,
        )
        .on_conflict_do_nothing()
    )
    row = (
        await conn.execute(
            select(analyses.c.state, analyses.c.results).where(
                analyses.c.audio_hash == res.audio_hash
            )
        )
    ).first()
    if row is not None and row.state == AnalysisState.DONE.value and row.results:
        metadata = row.results.get("metadata") if isinstance(row.results, dict) else None
        if isinstance(metadata, dict):
            await _write_analysis_metadata(
                conn, rec_id, {str(k): str(v) for k, v in metadata.items()}
            )


async def _write_analysis_metadata(
    conn: AsyncConnection, rec_id: uuid.UUID, metadata: dict[str, str]
) -> None:
    await conn.execute(
        delete(metadata_entries).where(
            metadata_entries.c.recording_id == rec_id, metadata_entries.c.source == "analysis"
        )
    )
    rows = [
        {"recording_id": rec_id, "key": k, "value": v, "source": "analysis"}
        for k, v in metadata.items()
    ]
    if rows:
        await conn.execute(insert(metadata_entries), rows)


async def _touch_graph(conn: AsyncConnection, rec_ids: Iterable[uuid.UUID | None]) -> None:
    """Queue the recordings for the graph, in the transaction that changed them."""
    now = utcnow()
    rows = [{"recording_id": r, "created_at": now} for r in set(rec_ids) if r is not None]
    if rows:
        await conn.execute(insert(graph_outbox), rows)
