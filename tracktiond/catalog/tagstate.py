"""Tag write-back state: which cataloged files have tags in line with their analysis.

``files.tag_fingerprint`` names the analysis settings and tagging options the file's tags were
last brought in line with; a file whose fingerprint differs is claimed under a lease. Writing
the tags is tracktiond.tagwrite's; this module remembers the outcome and why a write was
skipped or failed."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from sqlalchemy import func, or_, select, update

from tracktiond.catalog.base import StoreBase
from tracktiond.catalog.models import AnalysisState, FileState, analyses, files, recordings, utcnow
from tracktiond.catalog.values import Failure, TagJob


class TagStateMixin(StoreBase):
    """What tag write-back has done, and what is left."""

    async def claim_tag_writes(
        self, owner: str, limit: int, lease: timedelta, options_fingerprint: str
    ) -> list[TagJob]:
        """Lease cataloged files whose analysis is done but whose tags were not yet brought in
        line with it (or with other tagging options)."""
        now = utcnow()
        wanted = analyses.c.settings_fingerprint + ":" + options_fingerprint
        candidates = (
            select(files.c.id)
            .select_from(
                files.join(recordings, files.c.recording_id == recordings.c.id).join(
                    analyses, analyses.c.audio_hash == recordings.c.audio_hash
                )
            )
            .where(
                files.c.state == FileState.CATALOGED.value,
                analyses.c.state == AnalysisState.DONE.value,
                or_(files.c.tag_fingerprint.is_(None), files.c.tag_fingerprint != wanted),
                or_(files.c.lease_expires.is_(None), files.c.lease_expires < now),
            )
            .order_by(files.c.id)
            .limit(limit)
            .with_for_update(skip_locked=True, of=files)
        )
        async with self.engine.begin() as conn:
            claimed = (
                await conn.execute(
                    update(files)
                    .where(files.c.id.in_(candidates.scalar_subquery()))
                    .values(lease_owner=owner, lease_expires=now + lease)
                    .returning(files.c.id, files.c.path)
                )
            ).all()
            jobs: list[TagJob] = []
            for row in claimed:
                info = (
                    await conn.execute(
                        select(analyses.c.results, analyses.c.settings_fingerprint)
                        .join(recordings, recordings.c.audio_hash == analyses.c.audio_hash)
                        .join(files, files.c.recording_id == recordings.c.id)
                        .where(files.c.id == row.id)
                    )
                ).first()
                if info is not None:
                    result = info.results.get("result") if isinstance(info.results, dict) else None
                    jobs.append(
                        TagJob(
                            file_id=row.id,
                            path=row.path,
                            analysis=result if isinstance(result, dict) else {},
                            fingerprint=f"{info.settings_fingerprint}:{options_fingerprint}",
                        )
                    )
        return sorted(jobs, key=lambda j: j.file_id)

    async def record_tag_write(
        self, job: TagJob, owner: str | None, status: str, error: str | None, *, release: bool
    ) -> bool:
        """Remember that the file's tags are in line with ``job.fingerprint`` (or why not)."""
        values: dict[str, Any] = {
            "tag_fingerprint": job.fingerprint,
            "tag_status": status,
            "tag_error": error,
        }
        if release:
            values |= {"lease_owner": None, "lease_expires": None}
        where = [files.c.id == job.file_id, files.c.path == job.path]
        if owner is not None:
            where.append(files.c.lease_owner == owner)
        async with self.engine.begin() as conn:
            result = await conn.execute(update(files).where(*where).values(**values))
            return bool(result.rowcount)

    async def hold_lease(self, file_id: int, owner: str | None, duration: timedelta) -> None:
        """Keep a file out of every queue for ``duration`` (a backoff before retrying)."""
        where = [files.c.id == file_id]
        if owner is not None:
            where.append(files.c.lease_owner == owner)
        async with self.engine.begin() as conn:
            await conn.execute(
                update(files)
                .where(*where)
                .values(lease_owner=None, lease_expires=utcnow() + duration)
            )

    async def tag_stats(self, options_fingerprint: str) -> dict[str, int]:
        async with self.engine.connect() as conn:
            rows = await conn.execute(
                select(files.c.tag_status, func.count())
                .where(files.c.state == FileState.CATALOGED.value)
                .group_by(files.c.tag_status)
            )
            return {(r[0] or "untagged"): int(r[1]) for r in rows}

    async def tag_problems(self, limit: int = 10) -> list[Failure]:
        """Files whose tags were not written, with the reason (skipped formats, failures)."""
        async with self.engine.connect() as conn:
            rows = await conn.execute(
                select(files.c.path, files.c.tag_status, files.c.tag_error, files.c.updated_at)
                .where(files.c.tag_status.in_(("skipped", "failed")))
                .order_by(files.c.updated_at.desc(), files.c.id.desc())
                .limit(limit)
            )
            return [Failure(r.path, r.tag_status, r.tag_error or "", r.updated_at) for r in rows]

    async def analysis_for_path(self, path: str) -> tuple[int, dict[str, Any], str] | None:
        """(file id, analysis result dict, settings fingerprint) of the file at ``path``."""
        async with self.engine.connect() as conn:
            row = (
                await conn.execute(
                    select(files.c.id, analyses.c.results, analyses.c.settings_fingerprint)
                    .join(recordings, files.c.recording_id == recordings.c.id)
                    .join(analyses, analyses.c.audio_hash == recordings.c.audio_hash)
                    .where(files.c.path == path, analyses.c.state == AnalysisState.DONE.value)
                )
            ).first()
        if row is None or not isinstance(row.results, dict):
            return None
        result = row.results.get("result")
        return (row.id, result, row.settings_fingerprint) if isinstance(result, dict) else None
