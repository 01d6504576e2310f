"""Tag write-back state: which cataloged files have tags in line with their analysis.

``files.tag_fingerprint`` names the analysis settings and tagging options the file's tags were
last brought in line with; a file whose fingerprint differs is due (``work.TagQueue``). Writing
the tags is tracktiond.tagwrite's; this module remembers the outcome and why a write was
skipped or failed."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select, update

from tracktiond.catalog.base import StoreBase
from tracktiond.catalog.leases import DEFAULT_BACKOFF, Backoff
from tracktiond.catalog.models import AnalysisState, FileState, analyses, files, recordings, utcnow
from tracktiond.catalog.values import Failure, TagJob
from tracktiond.catalog.work import TagQueue


class TagStateMixin(StoreBase):
    """What tag write-back has done, and what is left."""

    async def record_tag_write(
        self,
        job: TagJob,
        owner: str | None,
        status: str,
        error: str | None,
        *,
        max_attempts: int = 3,
        backoff: Backoff = DEFAULT_BACKOFF,
    ) -> str | None:
        """Remember that the file's tags are in line with ``job.fingerprint``, or why not.

        ``status`` "retry" (the file changed during the write, the disk is full) leaves the
        job due again after a backoff, until ``max_attempts``: then it is recorded "failed".
        Returns the status recorded, or None when the row moved or ``owner`` (when given) no
        longer holds its tag lease."""
        where = [files.c.id == job.file_id, files.c.path == job.path]
        if owner is not None:
            where.append(TagQueue.owner == owner)
        async with self.engine.begin() as conn:
            attempts = (
                await conn.execute(select(TagQueue.attempts).where(*where))
            ).scalar_one_or_none()
            if attempts is None:
                return None
            values: dict[str, Any]
            if status == "retry":
                attempt = TagQueue.failed(
                    attempts,
                    retryable=True,
                    max_attempts=max_attempts,
                    now=utcnow(),
                    backoff=backoff,
                )
                values = dict(attempt.values)
                if not attempt.retry:
                    status = "failed"
                    error = f"{error} (gave up after {attempts + 1} attempts)"
            else:
                values = TagQueue.done()
            if status != "retry":
                values |= {
                    "tag_fingerprint": job.fingerprint,
                    "tag_status": status,
                    "tag_error": error,
                }
            await conn.execute(update(files).where(*where).values(**values))
            return status

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
