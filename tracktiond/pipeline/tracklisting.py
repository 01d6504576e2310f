"""The tracklist stage: reads sheets and lists into versioned tracklists, matched to the library.

Claims tracklist sources (``catalog.work.TracklistQueue``): sheets and lists the walk or the
watcher found next to audio (new, changed or gone), sheets ingest found embedded in audio, and
sources waiting for their audio once a file of their directory was cataloged. Reading a file
and parsing it run on a worker thread (pure Python, bounded at 1 MiB: no worker process is
needed); resolving the audio and matching ask the catalog; recording is one transaction per
source (``Catalog.record_source``). Ingest wakes the stage after each new or changed file.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import timedelta
from typing import Any

import anyio

from tracktiond.catalog.leases import LEASE, Backoff, make_owner_id
from tracktiond.catalog.store import Catalog
from tracktiond.catalog.tracklistvalues import SourceJob
from tracktiond.catalog.work import TracklistQueue
from tracktiond.config import TracklistsConfig
from tracktiond.errors import BadInput, CatalogError, FileJobError, TransientFileError
from tracktiond.pipeline.stage import Finished, Stage, StageEvent
from tracktiond.tracklists.reading import Parsed, SourceRead, parse_text, read_file, read_source

log = logging.getLogger(__name__)

RETRY_BACKOFF = Backoff(base=10.0, cap=600.0)


def parse_job(job: SourceJob, config: TracklistsConfig) -> Parsed:
    """The source's text, parsed (blocking: run on a worker thread)."""
    if job.kind == "embedded":
        return parse_text(job.embedded_text or "", kind="embedded", encoding=None)
    return read_file(
        job.path, kind=job.kind, legacy=config.legacy_encoding, override=job.encoding_override
    )


class TracklistStage(Stage[SourceJob, SourceRead]):
    name = "tracklists"

    def __init__(self, catalog: Catalog, config: TracklistsConfig) -> None:
        self.catalog = catalog
        self.config = config
        self.backoff = RETRY_BACKOFF

    @property
    def queue(self) -> TracklistQueue:
        return self.catalog.tracklist_queue

    def reconfigure(self, config: TracklistsConfig) -> None:
        self.config = config

    def describe(self, job: SourceJob) -> tuple[int | str, str]:
        return job.id, job.path

    async def claim(self, owner: str, limit: int, lease: timedelta) -> list[SourceJob]:
        return await self.catalog.tracklist_queue.claim(owner, limit, None, lease)

    async def process(self, job: SourceJob) -> SourceRead:
        parsed: Parsed | None = None
        error: BadInput | None = None
        if job.state != "gone":
            try:
                parsed = await anyio.to_thread.run_sync(parse_job, job, self.config)
            except TransientFileError as exc:
                return SourceRead("failed", error=exc.reason, retry=True)
            except FileJobError as exc:
                error = exc if isinstance(exc, BadInput) else BadInput(exc.reason)
        try:
            return await read_source(self.catalog, job, parsed, error=error)
        except CatalogError as exc:  # the catalog went away while we looked: try again later
            return SourceRead("failed", error=f"catalog unavailable: {exc.reason}", retry=True)

    def crashed(self, job: SourceJob, exc: Exception) -> SourceRead:
        return SourceRead("failed", error=f"internal error: {type(exc).__name__}: {exc}")

    async def record(
        self, owner: str, done: Sequence[Finished[SourceJob, SourceRead]]
    ) -> list[StageEvent]:
        events = []
        for f in done:
            job, read = f.job, f.result
            outcome = await self.catalog.record_source(
                job,
                owner,
                state=read.state,
                saved=[(t.recording_id, t.draft, t.matches) for t in read.targets],
                error=read.error,
                encoding=read.encoding,
                retry=read.retry,
                max_attempts=self.config.max_attempts,
                backoff=self.backoff,
            )
            outcome = outcome or "lost"
            extra = {"path": job.path, "job_id": job.id, "tracklist_outcome": outcome}
            entries = sum(len(t.draft.entries) for t in read.targets)
            matched = sum(1 for t in read.targets for m in t.matches if m.status == "matched")
            if outcome in ("new", "unchanged"):
                log.info(
                    "tracklist of %s read from %s: %d entries, %d in the library (%s)",
                    ", ".join(str(t.recording_id) for t in read.targets),
                    job.path,
                    entries,
                    matched,
                    outcome,
                    extra=extra,
                )
            elif outcome == "failed":
                log.warning("cannot use %s: %s", job.path, read.error, extra=extra)
            elif outcome in ("waiting", "retry"):
                log.info("%s: %s", job.path, read.error, extra=extra)
            elif outcome == "retired":
                log.info("%s is gone: its tracklist is history now", job.path, extra=extra)
            events.append(
                StageEvent(
                    stage=self.name,
                    job_id=job.id,
                    path=job.path,
                    outcome=outcome,
                    seconds=f.seconds,
                    failure_class="bad_input" if outcome == "failed" else None,
                    reason=read.error if outcome in ("failed", "waiting", "retry") else None,
                    final=outcome != "retry",
                )
            )
        return events


async def read_due_sources(catalog: Catalog, config: TracklistsConfig) -> list[dict[str, Any]]:
    """Read every due tracklist source now, once (``tracklist import``; tests): the stage's own
    claim, process and record, one source at a time, without a daemon."""
    stage = TracklistStage(catalog, config)
    owner = make_owner_id()
    results: list[dict[str, Any]] = []
    seen: set[int] = set()
    try:
        while True:
            jobs = [j for j in await stage.claim(owner, 32, LEASE) if j.id not in seen]
            if not jobs:
                return results
            for job in jobs:
                seen.add(job.id)
                read = await stage.process(job)
                [event] = await stage.record(owner, [Finished(job, read, 0.0)])
                results.append(
                    {
                        "path": job.path,
                        "outcome": event.outcome,
                        "reason": event.reason,
                        "recordings": [str(t.recording_id) for t in read.targets],
                        "entries": sum(len(t.draft.entries) for t in read.targets),
                        "matched": sum(
                            1 for t in read.targets for m in t.matches if m.status == "matched"
                        ),
                    }
                )
    finally:
        await catalog.release_leases([owner])
