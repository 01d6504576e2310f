"""Analysis results: one row per audio stream (``analyses``, keyed by audio hash).

The rows are also the analysis queue (``work.AnalysisQueue`` claims them); this module records
what an attempt found — a result becomes analysis metadata of every recording with that audio —
and counts and lists them."""

from __future__ import annotations

from typing import Any

from sqlalchemy import and_, case, delete, exists, func, select, update

from tracktiond.catalog.base import StoreBase
from tracktiond.catalog.leases import DEFAULT_BACKOFF, Backoff
from tracktiond.catalog.models import AnalysisState, FileState, analyses, files, recordings, utcnow
from tracktiond.catalog.upkeep import _touch_graph, _write_analysis_metadata
from tracktiond.catalog.values import AnalysisJob, Failure
from tracktiond.catalog.work import AnalysisQueue
from tracktiond.errors import FailureClass


class AnalysisResultsMixin(StoreBase):
    """Analysing each audio stream once."""

    async def record_analysis(
        self,
        job: AnalysisJob,
        owner: str,
        *,
        fingerprint: str,
        version: int,
        results: dict[str, Any] | None = None,
        metadata: dict[str, str] | None = None,
        failure: tuple[FailureClass, str] | None = None,
        elapsed: float = 0.0,
        max_attempts: int = 3,
        backoff: Backoff = DEFAULT_BACKOFF,
    ) -> str:
        """Store an analysis outcome for every recording with this audio; returns the state
        ("done", "pending" for a retry, "failed"), or "lost" when ``owner`` no longer holds the
        lease (it ran out and another worker took the job: its result wins)."""
        now = utcnow()
        async with self.engine.begin() as conn:
            row = (
                await conn.execute(
                    select(analyses.c.lease_owner, analyses.c.attempts).where(
                        analyses.c.audio_hash == job.audio_hash
                    )
                )
            ).first()
            if row is None or row.lease_owner != owner:
                return "lost"
            common = {"updated_at": now, "elapsed_seconds": elapsed}
            if failure is None:
                await conn.execute(
                    update(analyses)
                    .where(analyses.c.audio_hash == job.audio_hash)
                    .values(
                        state=AnalysisState.DONE.value,
                        settings_fingerprint=fingerprint,
                        version=version,
                        results=results,
                        error_class=None,
                        last_error=None,
                        analysed_at=now,
                        **common,
                        **AnalysisQueue.done(),
                    )
                )
                rec_ids = (
                    (
                        await conn.execute(
                            select(recordings.c.id).where(recordings.c.audio_hash == job.audio_hash)
                        )
                    )
                    .scalars()
                    .all()
                )
                for rec_id in rec_ids:
                    await _write_analysis_metadata(conn, rec_id, metadata or {})
                await _touch_graph(conn, rec_ids)
                return AnalysisState.DONE.value
            klass, reason = failure
            attempt = AnalysisQueue.failed(
                row.attempts,
                retryable=klass is FailureClass.TRANSIENT,
                max_attempts=max_attempts,
                now=now,
                backoff=backoff,
            )
            state = AnalysisState.PENDING if attempt.retry else AnalysisState.FAILED
            await conn.execute(
                update(analyses)
                .where(analyses.c.audio_hash == job.audio_hash)
                .values(
                    state=state.value,
                    settings_fingerprint=fingerprint,
                    version=version,
                    error_class=klass.value,
                    last_error=reason,
                    **common,
                    **attempt.values,
                )
            )
            return state.value

    async def retire_orphaned_analyses(self) -> int:
        """Delete unfinished analyses of audio that no present file holds any more (a version
        replaced while it was still being written, a file deleted before it was analysed):
        they can never run, and would keep "pending" above zero for ever. Finished results
        stay (a file brought back is not analysed again); a returning file's audio gets its
        row back when it is cataloged. Returns how many were retired."""
        held = (
            select(recordings.c.id)
            .join(files, files.c.recording_id == recordings.c.id)
            .where(
                recordings.c.audio_hash == analyses.c.audio_hash,
                files.c.state.in_((FileState.CATALOGED.value, FileState.PENDING.value)),
            )
        )
        async with self.engine.begin() as conn:
            result = await conn.execute(
                delete(analyses).where(
                    analyses.c.state != AnalysisState.DONE.value,
                    analyses.c.lease_owner.is_(None),
                    ~exists(held),
                )
            )
            return int(result.rowcount or 0)

    async def analysis_stats(self, fingerprint: str) -> dict[str, int]:
        """Analysed (with the current settings), pending (incl. stale), failed."""
        current = analyses.c.settings_fingerprint == fingerprint
        kind = case(
            (and_(analyses.c.state == AnalysisState.DONE.value, current), "analysed"),
            (and_(analyses.c.state == AnalysisState.FAILED.value, current), "failed"),
            else_="pending",
        )
        async with self.engine.connect() as conn:
            rows = await conn.execute(select(kind.label("kind"), func.count()).group_by(kind))
            out = {"analysed": 0, "pending": 0, "failed": 0}
            out.update({r[0]: int(r[1]) for r in rows})
            return out

    async def analysis_failures(self, limit: int = 10) -> list[Failure]:
        async with self.engine.connect() as conn:
            rows = await conn.execute(
                select(
                    recordings.c.file_path,
                    analyses.c.error_class,
                    analyses.c.last_error,
                    analyses.c.updated_at,
                )
                .join(recordings, recordings.c.audio_hash == analyses.c.audio_hash)
                .where(analyses.c.state == AnalysisState.FAILED.value)
                .order_by(analyses.c.updated_at.desc())
                .limit(limit)
            )
            return [
                Failure(r.file_path, r.error_class or "", r.last_error or "", r.updated_at)
                for r in rows
            ]
