"""Applying ingest results: identity follows content (DESIGN invariant 2).

Per file: a new recording, a duplicate of content present elsewhere, a move recognised by its
content, an edit of the only copy or of one of several copies, or a failure (retried, failed,
or vanished). docs/catalog.md has the table of cases."""

from __future__ import annotations

import os
import uuid
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from sqlalchemy import delete, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from tracktiond.catalog.base import StoreBase, _dialect_insert, _known, _known_select
from tracktiond.catalog.batch import _record_new_batch
from tracktiond.catalog.leases import DEFAULT_BACKOFF, Backoff
from tracktiond.catalog.models import FileState, files, metadata_entries, recordings, utcnow
from tracktiond.catalog.upkeep import (
    _drop_if_orphan,
    _link_analysis,
    _point_recording_at,
    _replace_metadata,
    _repoint_recordings,
    _touch_graph,
)
from tracktiond.catalog.values import JobResult, KnownFile, Outcome, to_int64
from tracktiond.catalog.work import IngestQueue
from tracktiond.errors import FailureClass, FileJobError, FileStillArriving, FileVanished

if TYPE_CHECKING:  # the catalog stores what media found, without importing its readers
    from tracktiond.media.probe import IngestResult


# How soon a file that was still being written is looked at again.
ARRIVING_RECHECK_SECONDS = 2.0


class ResultsMixin(StoreBase):
    """Recording what the ingest stage found."""

    async def record_results(
        self,
        results: Sequence[JobResult],
        *,
        max_attempts: int,
        owner: str | None = None,
        backoff: Backoff = DEFAULT_BACKOFF,
    ) -> list[Outcome]:
        """Apply a batch of ingest results in one transaction; returns one outcome per result.

        With ``owner``, a result is applied only while that owner still holds the file's lease
        (after a lease expired, another worker owns the job and its result wins).
        """
        if not results:
            return []
        async with self.engine.begin() as conn:
            outcomes: dict[int, Outcome] = await _record_new_batch(
                conn, self.dialect, results, owner
            )
            return [
                outcomes[i]
                if i in outcomes
                else await self._record_one(conn, r, max_attempts, owner, backoff)
                for i, r in enumerate(results)
            ]

    async def _record_one(
        self,
        conn: AsyncConnection,
        jr: JobResult,
        max_attempts: int,
        owner: str | None,
        backoff: Backoff,
    ) -> Outcome:
        row = (
            await conn.execute(
                _known_select()
                .add_columns(files.c.attempts, files.c.lease_owner)
                .where(files.c.id == jr.job.file_id)
            )
        ).first()
        if row is None or row.path != jr.job.path:
            return Outcome.UNCHANGED  # the row moved or went away meanwhile; its new job covers it
        if owner is not None and row.lease_owner != owner:
            return Outcome.UNCHANGED  # our lease ran out and the job went to another worker
        known = _known(row)
        now = utcnow()
        if jr.error is not None or jr.result is None:
            return await self._record_failure(
                conn, known, row.attempts, jr.error, max_attempts, now, backoff
            )
        res = jr.result
        d = res.digest
        stat = {
            "size": d.size,
            "mtime_ns": d.mtime_ns,
            "ctime_ns": d.ctime_ns,
            "inode": to_int64(d.inode),
            "device": to_int64(d.device),
        }
        done = {
            **stat,
            "state": FileState.CATALOGED.value,
            "error_class": None,
            "last_error": None,
            "missing_since": None,
            "last_seen": now,
            "updated_at": now,
            **IngestQueue.done(),
        }
        existing = (
            await conn.execute(
                select(recordings.c.id, recordings.c.file_path, recordings.c.audio_hash).where(
                    recordings.c.sha256_hash == d.sha256
                )
            )
        ).first()
        if existing is not None and existing.audio_hash is None:
            # cataloged before audio identities existed: give it one now
            await conn.execute(
                update(recordings)
                .where(recordings.c.id == existing.id)
                .values(audio_hash=res.audio_hash)
            )
            await _link_analysis(conn, self.dialect, existing.id, res, now)

        if known.recording_id is None:
            if existing is not None:
                source = await self._move_source(conn, existing.id, known.id)
                if source is not None:
                    # Same content vanished from its old place: a move, the file row lives on.
                    await conn.execute(delete(files).where(files.c.id == known.id))
                    await conn.execute(
                        update(files)
                        .where(files.c.id == source.id)
                        .values(path=known.path, dir=os.path.dirname(known.path), **done)
                    )
                    await _point_recording_at(conn, existing.id, known.path, replace=source.path)
                    await _touch_graph(conn, [existing.id])
                    return Outcome.MOVED
                await conn.execute(
                    update(files)
                    .where(files.c.id == known.id)
                    .values(recording_id=existing.id, **done)
                )
                await _touch_graph(conn, [existing.id])
                return Outcome.DUPLICATE
            rec_id = await self._insert_recording(conn, known.path, res, now)
            await conn.execute(
                update(files).where(files.c.id == known.id).values(recording_id=rec_id, **done)
            )
            return Outcome.NEW

        old_id = known.recording_id
        if existing is not None and existing.id == old_id:
            await conn.execute(update(files).where(files.c.id == known.id).values(**done))
            return Outcome.UNCHANGED  # touched, not changed: same bytes
        if existing is not None:
            await conn.execute(
                update(files).where(files.c.id == known.id).values(recording_id=existing.id, **done)
            )
            await _drop_if_orphan(conn, old_id)
            await _repoint_recordings(conn, {old_id})
            await _touch_graph(conn, [old_id, existing.id])
            return Outcome.CHANGED
        others = (
            await conn.execute(
                select(func.count())
                .select_from(files)
                .where(files.c.recording_id == old_id, files.c.id != known.id)
            )
        ).scalar_one()
        if others:
            # Other paths still hold the old content: this path becomes a recording of its own.
            rec_id = await self._insert_recording(conn, known.path, res, now)
            await conn.execute(
                update(files).where(files.c.id == known.id).values(recording_id=rec_id, **done)
            )
            await _repoint_recordings(conn, {old_id})
        else:
            # The only copy was edited (new tags, re-encode): same recording, new content facts.
            old_audio = (
                await conn.execute(select(recordings.c.audio_hash).where(recordings.c.id == old_id))
            ).scalar()
            await conn.execute(
                update(recordings)
                .where(recordings.c.id == old_id)
                .values(
                    sha256_hash=d.sha256,
                    xxh128_hash=d.xxh128,
                    size=d.size,
                    format=res.format.value,
                    file_path=known.path,
                    file_name=os.path.basename(known.path),
                    audio_hash=res.audio_hash,
                    updated_at=now,
                )
            )
            await _replace_metadata(conn, old_id, res)
            if old_audio != res.audio_hash:
                # new audio (not just new tags): its analysis is another one
                await conn.execute(
                    delete(metadata_entries).where(
                        metadata_entries.c.recording_id == old_id,
                        metadata_entries.c.source == "analysis",
                    )
                )
                await _link_analysis(conn, self.dialect, old_id, res, now)
            await conn.execute(update(files).where(files.c.id == known.id).values(**done))
        await _touch_graph(conn, [old_id])
        return Outcome.CHANGED

    async def _record_failure(
        self,
        conn: AsyncConnection,
        known: KnownFile,
        attempts: int,
        error: FileJobError | None,
        max_attempts: int,
        now: datetime,
        backoff: Backoff,
    ) -> Outcome:
        reason = error.reason if error else "no result"
        klass = error.failure_class if error else FailureClass.BUG
        if isinstance(error, FileStillArriving):
            # Not a failure and not an attempt: the file is read again once it has settled.
            await conn.execute(
                update(files)
                .where(files.c.id == known.id)
                .values(
                    state=FileState.PENDING.value,
                    error_class=None,
                    last_error=reason,
                    last_seen=now,
                    updated_at=now,
                    **IngestQueue.deferred(now + timedelta(seconds=ARRIVING_RECHECK_SECONDS)),
                )
            )
            return Outcome.DEFERRED
        if isinstance(error, FileVanished) and not _exists(known.path):
            await conn.execute(
                update(files)
                .where(files.c.id == known.id)
                .values(
                    state=FileState.MISSING.value,
                    missing_since=now,
                    last_error="vanished while being scanned",
                    updated_at=now,
                    **IngestQueue.done(),
                )
            )
            if known.recording_id is not None:
                await _repoint_recordings(conn, {known.recording_id})
                await _touch_graph(conn, [known.recording_id])
            return Outcome.MISSING
        attempt = IngestQueue.failed(
            attempts,
            retryable=klass is FailureClass.TRANSIENT,
            max_attempts=max_attempts,
            now=now,
            backoff=backoff,
        )
        await conn.execute(
            update(files)
            .where(files.c.id == known.id)
            .values(
                state=FileState.PENDING.value if attempt.retry else FileState.FAILED.value,
                error_class=klass.value,
                last_error=reason,
                last_seen=now,
                updated_at=now,
                **attempt.values,
            )
        )
        return Outcome.RETRY if attempt.retry else Outcome.FAILED

    async def _move_source(
        self, conn: AsyncConnection, recording_id: uuid.UUID, exclude: int
    ) -> KnownFile | None:
        rows = await conn.execute(
            _known_select().where(files.c.recording_id == recording_id, files.c.id != exclude)
        )
        for row in rows:
            candidate = _known(row)
            if candidate.state == FileState.MISSING.value or not _exists(candidate.path):
                return candidate
        return None

    async def _insert_recording(
        self, conn: AsyncConnection, path: str, res: IngestResult, now: datetime
    ) -> uuid.UUID:
        d = res.digest
        stmt = (
            _dialect_insert(self.dialect, recordings)
            .values(
                id=uuid.uuid4(),
                file_path=path,
                file_name=os.path.basename(path),
                sha256_hash=d.sha256,
                xxh128_hash=d.xxh128,
                size=d.size,
                format=res.format.value,
                audio_hash=res.audio_hash,
                created_at=now,
                updated_at=now,
            )
            .on_conflict_do_nothing()
            .returning(recordings.c.id)
        )
        rec_id: uuid.UUID | None = (await conn.execute(stmt)).scalar()
        if rec_id is None:
            # Same sha256 inserted concurrently (another instance) or an xxh128-only collision.
            rec_id = (
                await conn.execute(
                    select(recordings.c.id).where(
                        or_(
                            recordings.c.sha256_hash == d.sha256,
                            recordings.c.xxh128_hash == d.xxh128,
                        )
                    )
                )
            ).scalar_one()
            return rec_id
        await _replace_metadata(conn, rec_id, res)
        await _link_analysis(conn, self.dialect, rec_id, res, now)
        await _touch_graph(conn, [rec_id])
        return rec_id


def _exists(path: str) -> bool:
    # One lstat while deciding move-versus-copy inside a short transaction; cheap on local
    # disks, and the alternative (deciding outside) would race with the disk changing.
    return os.path.lexists(path)
