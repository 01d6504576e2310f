"""Tag write-back in the daemon: brings files' tags in line with their analysis, once.

Opt-in ([tagging] write). The queue is the catalog: a cataloged file whose recording's analysis is
done and whose ``tag_fingerprint`` differs from (analysis settings, tagging options). Writing is
tracktiond.tagwrite's job (atomic replace, verified audio); after a write the file is re-read and
its catalog row updated at once, so the watcher's event finds nothing changed: the daemon's own
writes never trigger re-analysis or another write (DESIGN invariant 7).
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable
from datetime import timedelta
from functools import partial
from typing import Any

import anyio

from tracktiond.catalog.health import CatalogHealth, guarded
from tracktiond.catalog.store import Catalog, Job, JobResult, TagJob
from tracktiond.config import TaggingConfig
from tracktiond.errors import FileJobError
from tracktiond.media import probe
from tracktiond.pipeline.wakeup import Wakeup
from tracktiond.tagwrite import TagValues, TagWriteOptions, TagWriteResult, write_tags

log = logging.getLogger(__name__)

LEASE = timedelta(minutes=5)
RETRY_AFTER = timedelta(minutes=1)

ResultHook = Callable[[TagJob, str], None]


def options_from_config(config: TaggingConfig) -> TagWriteOptions:
    return TagWriteOptions(
        overwrite=config.overwrite,
        key_notation=config.key_notation,
        energy_field=config.energy_field or None,
    )


def options_fingerprint(options: TagWriteOptions) -> str:
    text = f"{options.overwrite}|{options.key_notation}|{options.energy_field}"
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def values_from_analysis(result: dict[str, Any], *, with_energy: bool) -> TagValues:
    """The tag values an analysis result calls for (AnalysisResult.to_dict() form)."""

    def number(key: str) -> float | None:
        value = result.get(key)
        return float(value) if isinstance(value, int | float) else None

    tonic, mode = result.get("key_tonic"), result.get("key_mode")
    has_key = isinstance(tonic, str) and isinstance(mode, str)
    mood = result.get("mood")
    return TagValues(
        bpm=None if result.get("beatless") else number("bpm"),
        key_tonic=tonic if has_key else None,
        key_mode=mode if has_key else None,
        replaygain_track_gain=number("replaygain_track_gain"),
        replaygain_track_peak=number("replaygain_track_peak"),
        energy=mood if with_energy and isinstance(mood, str) and mood else None,
    )


async def write_and_record(
    catalog: Catalog,
    job: TagJob,
    options: TagWriteOptions,
    owner: str | None,
    *,
    max_attempts: int = 3,
) -> tuple[str, TagWriteResult]:
    """Write one file's tags and bring its catalog row in line; returns (status, result)."""
    try:
        values = values_from_analysis(job.analysis, with_energy=options.energy_field is not None)
    except ValueError as exc:  # an analysis value no tag can hold (NaN, 0 BPM): write nothing
        result = TagWriteResult(path=job.path, error=f"analysis values not writable: {exc}")
        await catalog.record_tag_write(job, owner, "failed", result.error, release=True)
        return "failed", result
    result = await anyio.to_thread.run_sync(write_tags, job.path, values, options)
    if result.error and result.retryable:
        # e.g. the file changed during the write, or the disk is full: leave the job due, and
        # let its lease run out first so it is retried a minute later, not in a tight loop.
        await catalog.hold_lease(job.file_id, owner, RETRY_AFTER)
        return "retry", result
    if result.error:
        status = "failed"
    elif result.skipped_reason:
        status = "skipped"
    elif result.written:
        status = "written"
    else:
        status = "unchanged"
    await catalog.record_tag_write(
        job,
        owner,
        status,
        result.error or result.skipped_reason,
        release=not result.written,
    )
    if result.written:
        # Re-read the rewritten file now and record it, under our lease: its row then matches
        # the disk before the watcher reports the change, and the audio identity is unchanged,
        # so nothing is analysed or written again.
        try:
            fresh = await anyio.to_thread.run_sync(probe.ingest_file, job.path)
            jr = JobResult(Job(job.file_id, job.path), result=fresh)
        except FileJobError as exc:
            jr = JobResult(Job(job.file_id, job.path), error=exc)
        await catalog.record_results([jr], max_attempts=max_attempts, owner=owner)
    return status, result


class TaggingStage:
    def __init__(
        self,
        catalog: Catalog,
        config: TaggingConfig,
        *,
        owner: str,
        concurrency: int = 2,
        health: CatalogHealth | None = None,
        on_result: ResultHook | None = None,
        idle_poll: float = 5.0,
    ) -> None:
        self.catalog = catalog
        self.options = options_from_config(config)
        self.owner = owner
        self.concurrency = concurrency
        self.health = health
        self.on_result = on_result
        self.idle_poll = idle_poll
        self.busy = 0
        self._wake = Wakeup()
        self._accepting = True

    def wake(self) -> None:
        self._wake.set()

    def stop_claiming(self) -> None:
        self._accepting = False
        self._wake.set()

    def reconfigure(self, config: TaggingConfig) -> None:
        self.options = options_from_config(config)
        self._wake.set()

    async def _db(self, fn: Callable[[], Any]) -> Any:
        return await guarded(self.health, fn)

    async def run(self) -> None:
        async with anyio.create_task_group() as tg:
            while self._accepting:
                self._wake.arm()
                free = self.concurrency - self.busy
                jobs: list[TagJob] = []
                if free > 0:
                    fp = options_fingerprint(self.options)
                    jobs = await self._db(
                        partial(self.catalog.claim_tag_writes, self.owner, free, LEASE, fp)
                    )
                for job in jobs:
                    self.busy += 1
                    tg.start_soon(self._one, job)
                if jobs:
                    continue
                await self._wake.wait(self.idle_poll)

    async def _one(self, job: TagJob) -> None:
        try:
            with anyio.CancelScope(shield=True):  # a write in progress is finished, not torn
                status, result = await self._db(
                    partial(write_and_record, self.catalog, job, self.options, self.owner)
                )
        finally:
            self.busy -= 1
            self._wake.set()
        extra = {"path": job.path, "job_id": job.file_id, "tag_status": status}
        if status == "written":
            changed = ", ".join(f"{c.field}={c.new}" for c in result.changes)
            log.info("wrote tags to %s: %s", job.path, changed, extra=extra)
        elif status in ("failed", "skipped"):
            log.warning(
                "tags of %s not written: %s",
                job.path,
                result.error or result.skipped_reason,
                extra=extra,
            )
        if status == "retry":
            log.info("tags of %s will be written later: %s", job.path, result.error, extra=extra)
        if self.on_result is not None:
            self.on_result(job, status)
