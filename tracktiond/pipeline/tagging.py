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
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import anyio

from tracktiond.catalog.leases import Backoff
from tracktiond.catalog.store import Catalog, Job, JobResult, TagJob
from tracktiond.catalog.work import TagQueue
from tracktiond.config import TaggingConfig
from tracktiond.errors import FileJobError
from tracktiond.media import probe
from tracktiond.pipeline.stage import Finished, Stage, StageEvent
from tracktiond.tagwrite import TagValues, TagWriteOptions, TagWriteResult, write_tags

log = logging.getLogger(__name__)

# A write that failed for a passing reason (the file changed meanwhile, the disk was full) is
# tried again a minute later, then two, four ...
RETRY_BACKOFF = Backoff(base=60.0, cap=1800.0)


def options_from_config(config: TaggingConfig) -> TagWriteOptions:
    return TagWriteOptions(
        overwrite=config.overwrite,
        key_notation=config.key_notation,
        energy_field=config.energy_field or None,
        uncertain_bpm=config.uncertain_bpm,
    )


def options_fingerprint(options: TagWriteOptions) -> str:
    text = f"{options.overwrite}|{options.key_notation}|{options.energy_field}"
    if options.uncertain_bpm:  # appended only when set: existing fingerprints stay valid
        text += "|uncertain-bpm"
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def values_from_analysis(
    result: dict[str, Any], *, with_energy: bool, uncertain_bpm: bool = False
) -> TagValues:
    """The tag values an analysis result calls for (AnalysisResult.to_dict() form).

    A tempo the analysis marked uncertain is left out unless ``uncertain_bpm``."""

    def number(key: str) -> float | None:
        value = result.get(key)
        return float(value) if isinstance(value, int | float) else None

    tonic, mode = result.get("key_tonic"), result.get("key_mode")
    has_key = isinstance(tonic, str) and isinstance(mode, str)
    mood = result.get("mood")
    return TagValues(
        bpm=None
        if result.get("beatless") or (result.get("bpm_uncertain") and not uncertain_bpm)
        else number("bpm"),
        key_tonic=tonic if has_key else None,
        key_mode=mode if has_key else None,
        replaygain_track_gain=number("replaygain_track_gain"),
        replaygain_track_peak=number("replaygain_track_peak"),
        energy=mood if with_energy and isinstance(mood, str) and mood else None,
    )


@dataclass(frozen=True, slots=True)
class TagWrite:
    """What writing one file's tags gave: the status to record ("written", "unchanged",
    "skipped", "failed", or "retry" for a passing failure), the write's result, and the file
    as re-read after a write."""

    status: str
    result: TagWriteResult
    reread: JobResult | None = None


def write_file_tags(job: TagJob, options: TagWriteOptions) -> TagWrite:
    """Write one file's tags and re-read it (blocking: run it on a worker thread)."""
    try:
        values = values_from_analysis(
            job.analysis,
            with_energy=options.energy_field is not None,
            uncertain_bpm=options.uncertain_bpm,
        )
    except ValueError as exc:  # an analysis value no tag can hold (NaN, 0 BPM): write nothing
        return TagWrite(
            "failed", TagWriteResult(path=job.path, error=f"analysis values not writable: {exc}")
        )
    result = write_tags(job.path, values, options)
    if result.error:
        return TagWrite("retry" if result.retryable else "failed", result)
    if result.skipped_reason:
        return TagWrite("skipped", result)
    if not result.written:
        return TagWrite("unchanged", result)
    # Re-read the rewritten file now, so its row matches the disk before the watcher reports
    # the change; the audio identity is unchanged, so nothing is analysed or written again.
    file_job = Job(job.file_id, job.path)
    try:
        reread = JobResult(file_job, result=probe.ingest_file(job.path))
    except FileJobError as exc:
        reread = JobResult(file_job, error=exc)
    return TagWrite("written", result, reread)


async def record_tag_write(
    catalog: Catalog,
    job: TagJob,
    write: TagWrite,
    owner: str | None,
    *,
    max_attempts: int = 3,
    backoff: Backoff = RETRY_BACKOFF,
) -> str:
    """Record what writing ``job``'s tags gave; returns the status recorded ("lost" when the
    row moved or the lease went to another worker)."""
    result = write.result
    status = await catalog.record_tag_write(
        job,
        owner,
        write.status,
        result.error or result.skipped_reason,
        max_attempts=max_attempts,
        backoff=backoff,
    )
    if write.reread is not None:
        await catalog.record_results([write.reread], max_attempts=max_attempts)
    return status or "lost"


async def write_and_record(
    catalog: Catalog, job: TagJob, options: TagWriteOptions, owner: str | None
) -> tuple[str, TagWriteResult]:
    """Write one file's tags and bring its catalog row in line (the one-shot `tag` command)."""
    write = await anyio.to_thread.run_sync(write_file_tags, job, options)
    return await record_tag_write(catalog, job, write, owner), write.result


class TaggingStage(Stage[TagJob, TagWrite]):
    name = "tags"
    shield_process = True  # a write in progress is finished, never torn

    def __init__(self, catalog: Catalog, config: TaggingConfig, *, max_attempts: int = 3) -> None:
        self.catalog = catalog
        self.options = options_from_config(config)
        self.max_attempts = max_attempts
        self.backoff = RETRY_BACKOFF

    @property
    def queue(self) -> TagQueue:
        return self.catalog.tag_queue

    def reconfigure(self, config: TaggingConfig) -> None:
        self.options = options_from_config(config)

    async def claim(self, owner: str, limit: int, lease: timedelta) -> list[TagJob]:
        fingerprint = options_fingerprint(self.options)
        return await self.catalog.tag_queue.claim(owner, limit, fingerprint, lease)

    async def process(self, job: TagJob) -> TagWrite:
        return await anyio.to_thread.run_sync(write_file_tags, job, self.options)

    def crashed(self, job: TagJob, exc: Exception) -> TagWrite:
        error = f"internal error: {type(exc).__name__}: {exc}"
        return TagWrite("failed", TagWriteResult(path=job.path, error=error))

    async def record(
        self, owner: str, done: Sequence[Finished[TagJob, TagWrite]]
    ) -> list[StageEvent]:
        events = []
        for f in done:
            job, write = f.job, f.result
            status = await record_tag_write(
                self.catalog,
                job,
                write,
                owner,
                max_attempts=self.max_attempts,
                backoff=self.backoff,
            )
            result = write.result
            reason = result.error or result.skipped_reason
            extra = {"path": job.path, "job_id": job.file_id, "tag_status": status}
            if status == "written":
                changed = ", ".join(f"{c.field}={c.new}" for c in result.changes)
                log.info("wrote tags to %s: %s", job.path, changed, extra=extra)
            elif status in ("failed", "skipped"):
                log.warning("tags of %s not written: %s", job.path, reason, extra=extra)
            elif status == "retry":
                log.info("tags of %s will be written later: %s", job.path, reason, extra=extra)
            events.append(
                StageEvent(
                    stage=self.name,
                    job_id=job.file_id,
                    path=job.path,
                    outcome=status,
                    seconds=f.seconds,
                    reason=reason if status in ("failed", "skipped", "retry") else None,
                    final=status != "retry",
                )
            )
        return events
