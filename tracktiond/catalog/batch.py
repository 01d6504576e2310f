"""The fast path of ``ResultsMixin.record_results`` (tracktiond.catalog.results): a first
scan's new content, recorded a batch at a time."""

from __future__ import annotations

import os
import uuid
from collections.abc import Sequence
from typing import Any

from sqlalchemy import bindparam, insert, or_, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from tracktiond.catalog.base import _chunks, _dialect_insert
from tracktiond.catalog.models import (
    AnalysisState,
    FileState,
    analyses,
    files,
    metadata_entries,
    recordings,
    utcnow,
)
from tracktiond.catalog.sources import note_embedded_sheet
from tracktiond.catalog.upkeep import (
    _duration,
    _touch_graph,
    _write_analysis_metadata,
)
from tracktiond.catalog.values import JobResult, Outcome, to_int64
from tracktiond.catalog.wordindex import insert_words, word_rows
from tracktiond.catalog.work import IngestQueue


async def _record_new_batch(
    conn: AsyncConnection, dialect: str, results: Sequence[JobResult], owner: str | None
) -> dict[int, Outcome]:
    """The common case of a first scan in a few statements per batch, not per file: files
    never cataloged before whose content is new to the catalog. Everything else (moves,
    duplicates, changes, failures) goes through _record_one."""
    candidates = [
        (i, jr) for i, jr in enumerate(results) if jr.result is not None and jr.error is None
    ]
    if len(candidates) < 2:
        return {}
    ids = [jr.job.file_id for _, jr in candidates]
    rows = {
        r.id: r
        for r in await conn.execute(
            select(files.c.id, files.c.path, files.c.recording_id, files.c.lease_owner).where(
                files.c.id.in_(ids)
            )
        )
    }
    shas = list({jr.result.digest.sha256 for _, jr in candidates if jr.result})
    xxhs = list({jr.result.digest.xxh128 for _, jr in candidates if jr.result})
    taken = {
        h
        for r in await conn.execute(
            select(recordings.c.sha256_hash, recordings.c.xxh128_hash).where(
                or_(recordings.c.sha256_hash.in_(shas), recordings.c.xxh128_hash.in_(xxhs))
            )
        )
        for h in r
    }
    now = utcnow()
    fast: list[tuple[int, JobResult, uuid.UUID]] = []
    for i, jr in candidates:
        res = jr.result
        assert res is not None
        row = rows.get(jr.job.file_id)
        if row is None or row.path != jr.job.path or row.recording_id is not None:
            continue
        if owner is not None and row.lease_owner != owner:
            continue
        d = res.digest
        if d.sha256 in taken or d.xxh128 in taken:
            continue  # a duplicate or a move: decided one by one
        taken.update((d.sha256, d.xxh128))
        fast.append((i, jr, uuid.uuid4()))
    if not fast:
        return {}
    rec_rows = []
    for _, jr, rec_id in fast:
        res = jr.result
        assert res is not None
        rec_rows.append(
            {
                "id": rec_id,
                "file_path": jr.job.path,
                "file_name": os.path.basename(jr.job.path),
                "sha256_hash": res.digest.sha256,
                "xxh128_hash": res.digest.xxh128,
                "size": res.digest.size,
                "format": res.format.value,
                "audio_hash": res.audio_hash,
                "created_at": now,
                "updated_at": now,
            }
        )
    inserted = {
        r.id
        for r in await conn.execute(
            _dialect_insert(dialect, recordings)
            .on_conflict_do_nothing()
            .returning(recordings.c.id),
            rec_rows,
        )
    }
    # Another instance may have inserted the same content a moment ago: those go one by one.
    fast = [f for f in fast if f[2] in inserted]
    if not fast:
        return {}
    meta = []
    analysis_rows: dict[str, dict[str, Any]] = {}
    file_params = []
    for _, jr, rec_id in fast:
        res = jr.result
        assert res is not None
        meta += [
            {"recording_id": rec_id, "key": k, "value": v, "source": "tags"}
            for k, v in res.tags.items()
        ] + [
            {"recording_id": rec_id, "key": k, "value": v, "source": "stream"}
            for k, v in res.stream.items()
        ]
        analysis_rows.setdefault(
            res.audio_hash,
            {
                "audio_hash": res.audio_hash,
                "state": AnalysisState.PENDING.value,
                "attempts": 0,
                "duration_seconds": _duration(res),
                "created_at": now,
                "updated_at": now,
            },
        )
        d = res.digest
        file_params.append(
            {
                "b_id": jr.job.file_id,
                "b_recording_id": rec_id,
                "b_size": d.size,
                "b_mtime_ns": d.mtime_ns,
                "b_ctime_ns": d.ctime_ns,
                "b_inode": to_int64(d.inode),
                "b_device": to_int64(d.device),
            }
        )
    for chunk in _chunks(meta, 2000):
        await conn.execute(insert(metadata_entries), chunk)
    await insert_words(
        conn, [w for _, jr, rec_id in fast if jr.result for w in word_rows(rec_id, jr.result.tags)]
    )
    for _, jr, rec_id in fast:
        if jr.result is not None and jr.result.embedded_cue:
            await note_embedded_sheet(conn, rec_id, jr.result.embedded_cue, new=True)
    await conn.execute(
        _dialect_insert(dialect, analyses).on_conflict_do_nothing(),
        list(analysis_rows.values()),
    )
    done_analyses = {
        r.audio_hash: r.results
        for r in await conn.execute(
            select(analyses.c.audio_hash, analyses.c.results).where(
                analyses.c.audio_hash.in_(list(analysis_rows)),
                analyses.c.state == AnalysisState.DONE.value,
            )
        )
    }
    for _, jr, rec_id in fast:
        assert jr.result is not None
        results_json = done_analyses.get(jr.result.audio_hash)
        metadata = results_json.get("metadata") if isinstance(results_json, dict) else None
        if isinstance(metadata, dict):  # same audio analysed before (e.g. re-tagged copy)
            await _write_analysis_metadata(
                conn, rec_id, {str(k): str(v) for k, v in metadata.items()}
            )
    await conn.execute(
        update(files)
        .where(files.c.id == bindparam("b_id"))
        .values(
            recording_id=bindparam("b_recording_id"),
            size=bindparam("b_size"),
            mtime_ns=bindparam("b_mtime_ns"),
            ctime_ns=bindparam("b_ctime_ns"),
            inode=bindparam("b_inode"),
            device=bindparam("b_device"),
            state=FileState.CATALOGED.value,
            error_class=None,
            last_error=None,
            missing_since=None,
            last_seen=now,
            updated_at=now,
            **IngestQueue.done(),
        ),
        file_params,
    )
    await _touch_graph(conn, [rec_id for _, _, rec_id in fast])
    return {i: Outcome.NEW for i, _, _ in fast}
