"""The analysis queue and its results.

One row per audio stream (``analyses``, keyed by audio hash), leased to analysis workers: new
streams first, then those analysed with other settings or an older version. A result becomes
analysis metadata of every recording with that audio."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

from sqlalchemy import and_, case, exists, func, or_, select, update

from tracktiond.catalog.base import StoreBase
from tracktiond.catalog.models import AnalysisState, FileState, analyses, files, recordings, utcnow
from tracktiond.catalog.upkeep import _touch_graph, _write_analysis_metadata
from tracktiond.catalog.values import AnalysisJob, Failure
from tracktiond.errors import FailureClass


class AnalysisQueueMixin(StoreBase):
    """Analysing each audio stream once."""

    async def claim_analyses(
        self, owner: str, limit: int, lease: timedelta, fingerprint: str
    ) -> list[AnalysisJob]:
        """Lease audio streams that need analysing: new ones first, then those analysed with
        other settings or an older version (re-analysed lazily)."""
        now = utcnow()
        present = (
            select(recordings.c.id)
            .join(files, files.c.recording_id == recordings.c.id)
            .where(
                recordings.c.audio_hash == analyses.c.audio_hash,
                files.c.state == FileState.CATALOGED.value,
            )
        )
        stale = and_(
            analyses.c.state.in_((AnalysisState.DONE.value, AnalysisState.FAILED.value)),
            or_(
                analyses.c.settings_fingerprint.is_(None),
                analyses.c.settings_fingerprint != fingerprint,
            ),
        )
        candidates = (
            select(analyses.c.audio_hash)
            .where(
                or_(analyses.c.state == AnalysisState.PENDING.value, stale),
                or_(analyses.c.lease_expires.is_(None), analyses.c.lease_expires < now),
                or_(analyses.c.not_before.is_(None), analyses.c.not_before <= now),
                exists(present),
            )
            .order_by(
                case((analyses.c.state == AnalysisState.PENDING.value, 0), else_=1),
                analyses.c.created_at,
            )
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
        jobs: list[AnalysisJob] = []
        async with self.engine.begin() as conn:
            rows = (
                await conn.execute(
                    update(analyses)
                    .where(analyses.c.audio_hash.in_(candidates.scalar_subquery()))
                    .values(lease_owner=owner, lease_expires=now + lease)
                    .returning(analyses.c.audio_hash, analyses.c.duration_seconds)
                )
            ).all()
            for row in rows:
                path = (
                    await conn.execute(
                        select(files.c.path)
                        .join(recordings, files.c.recording_id == recordings.c.id)
                        .where(
                            recordings.c.audio_hash == row.audio_hash,
                            files.c.state == FileState.CATALOGED.value,
                        )
                        .order_by(files.c.id)
                        .limit(1)
                    )
                ).scalar()
                if path is not None:
                    jobs.append(AnalysisJob(row.audio_hash, path, row.duration_seconds))
        return jobs

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
        retry_delay: Callable[[int], float] = lambda attempts: 60.0,
    ) -> str:
        """Store an analysis outcome for every recording with this audio; returns the state."""
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
                return "lost"  # our lease expired and another worker took the job
            common = {
                "lease_owner": None,
                "lease_expires": None,
                "updated_at": now,
                "elapsed_seconds": elapsed,
                "attempts": row.attempts + 1,
            }
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
                        not_before=None,
                        analysed_at=now,
                        **common,
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
            retry = klass is FailureClass.TRANSIENT and row.attempts + 1 < max_attempts
            await conn.execute(
                update(analyses)
                .where(analyses.c.audio_hash == job.audio_hash)
                .values(
                    state=AnalysisState.PENDING.value if retry else AnalysisState.FAILED.value,
                    settings_fingerprint=fingerprint,
                    version=version,
                    error_class=klass.value,
                    last_error=reason,
                    not_before=now + timedelta(seconds=retry_delay(row.attempts + 1))
                    if retry
                    else None,
                    **common,
                )
            )
            return AnalysisState.PENDING.value if retry else AnalysisState.FAILED.value

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
