"""The catalog's side of the graph (DESIGN invariant 6).

The outbox rows written in the same transaction as each catalog change, read and deleted by the
graph sync task; and the projection of each recording the graph shows, which can be rebuilt
from every recording id at any time."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import UTC, datetime

from sqlalchemy import delete, func, select

from tracktiond.catalog.base import IN_CHUNK, StoreBase, _chunks
from tracktiond.catalog.models import (
    FileState,
    files,
    graph_outbox,
    metadata_entries,
    recordings,
    tracklists,
)
from tracktiond.catalog.values import RecordingProjection


class GraphOutboxMixin(StoreBase):
    """The graph outbox and what the graph shows of each recording."""

    async def outbox_batch(self, limit: int) -> list[tuple[int, uuid.UUID]]:
        async with self.engine.connect() as conn:
            rows = await conn.execute(
                select(graph_outbox.c.id, graph_outbox.c.recording_id)
                .order_by(graph_outbox.c.id)
                .limit(limit)
            )
            return [(r.id, r.recording_id) for r in rows]

    async def delete_outbox(self, ids: Sequence[int]) -> None:
        async with self.engine.begin() as conn:
            for chunk in _chunks(ids, IN_CHUNK):
                await conn.execute(delete(graph_outbox).where(graph_outbox.c.id.in_(chunk)))

    async def clear_outbox(self) -> None:
        async with self.engine.begin() as conn:
            await conn.execute(delete(graph_outbox))

    async def outbox_stats(self) -> tuple[int, datetime | None]:
        async with self.engine.connect() as conn:
            row = (
                await conn.execute(select(func.count(), func.min(graph_outbox.c.created_at)))
            ).one()
        oldest = row[1]
        if oldest is not None and oldest.tzinfo is None:
            oldest = oldest.replace(tzinfo=UTC)
        return int(row[0]), oldest

    async def recording_ids(self, after: uuid.UUID | None, limit: int) -> list[uuid.UUID]:
        """Every recording id, in pages (for rebuilding projections)."""
        query = select(recordings.c.id).order_by(recordings.c.id).limit(limit)
        if after is not None:
            query = query.where(recordings.c.id > after)
        async with self.engine.connect() as conn:
            return list((await conn.execute(query)).scalars().all())

    async def recording_projections(
        self, rec_ids: Sequence[uuid.UUID]
    ) -> dict[uuid.UUID, RecordingProjection | None]:
        """What the graph shows of each recording; None for recordings that no longer exist."""
        out: dict[uuid.UUID, RecordingProjection | None] = dict.fromkeys(rec_ids)
        if not rec_ids:
            return out
        async with self.engine.connect() as conn:
            for chunk in _chunks(list(rec_ids), IN_CHUNK):
                for r in await conn.execute(select(recordings).where(recordings.c.id.in_(chunk))):
                    out[r.id] = RecordingProjection(
                        id=r.id,
                        file_path=r.file_path,
                        file_name=r.file_name,
                        sha256=r.sha256_hash,
                        format=r.format,
                    )
                for f in await conn.execute(
                    select(files.c.recording_id, files.c.path)
                    .where(
                        files.c.recording_id.in_(chunk),
                        files.c.state != FileState.MISSING.value,
                    )
                    .order_by(files.c.id)
                ):
                    proj = out.get(f.recording_id)
                    if proj is not None:
                        proj.paths.append(f.path)
                for m in await conn.execute(
                    select(
                        metadata_entries.c.recording_id,
                        metadata_entries.c.key,
                        metadata_entries.c.value,
                    ).where(metadata_entries.c.recording_id.in_(chunk))
                ):
                    proj = out.get(m.recording_id)
                    if proj is not None:
                        proj.metadata[m.key] = m.value
                for t in await conn.execute(
                    select(tracklists).where(
                        tracklists.c.recording_id.in_(chunk),
                        tracklists.c.superseded_at.is_(None),  # history stays in the catalog
                    )
                ):
                    proj = out.get(t.recording_id)
                    if proj is not None:
                        proj.tracklists.append(
                            {
                                "id": str(t.id),
                                "source": t.source,
                                "cue_file_path": t.cue_file_path,
                                "tracks": t.tracks,
                            }
                        )
        # A recording with no present file is not shown in the graph.
        return {k: (v if v is not None and v.paths else None) for k, v in out.items()}
