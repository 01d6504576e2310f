"""The ingest stage: catalog each pending file (hash, identify by content, check, read tags).

Claims pending file rows (``catalog.work.IngestQueue``), reads each on a worker thread
(``media.probe``: blocking I/O and pure-Python parsing, no native decoder) and records the
results in batched transactions (``Catalog.record_results``), which also free the leases. A file
that fails is recorded with its reason; a transient failure is retried after a backoff.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import timedelta

import anyio

from tracktiond.catalog.leases import DEFAULT_BACKOFF, Backoff
from tracktiond.catalog.store import Catalog, Job, JobResult, Outcome
from tracktiond.catalog.work import IngestQueue
from tracktiond.errors import FileJobError, FileStillArriving
from tracktiond.media import probe
from tracktiond.pipeline.stage import Finished, Stage, StageEvent

log = logging.getLogger(__name__)

WRITE_BATCH = 256


class IngestStage(Stage[Job, JobResult]):
    name = "ingest"

    def __init__(
        self,
        catalog: Catalog,
        *,
        max_attempts: int,
        roots: Sequence[str] = (),
        backoff: Backoff = DEFAULT_BACKOFF,
    ) -> None:
        self.catalog = catalog
        self.max_attempts = max_attempts
        self.roots = list(roots)  # claim only under these (a one-shot scan); all when empty
        self.backoff = backoff

    @property
    def queue(self) -> IngestQueue:
        return self.catalog.ingest_queue

    async def claim(self, owner: str, limit: int, lease: timedelta) -> list[Job]:
        return await self.catalog.ingest_queue.claim(owner, limit, self.roots, lease)

    async def process(self, job: Job) -> JobResult:
        try:
            result = await anyio.to_thread.run_sync(probe.ingest_file, job.path)
            return JobResult(job, result=result)
        except FileStillArriving as exc:
            log.info(
                "%s is still being written; it is read once it has settled (%s)",
                job.path,
                exc.reason,
                extra={"path": job.path, "job_id": job.file_id},
            )
            return JobResult(job, error=exc)
        except FileJobError as exc:
            log.info(
                "cannot catalog %s: %s",
                job.path,
                exc.reason,
                extra={
                    "path": job.path,
                    "job_id": job.file_id,
                    "failure_class": exc.failure_class.value,
                },
            )
            return JobResult(job, error=exc)

    def crashed(self, job: Job, exc: Exception) -> JobResult:
        return JobResult(job, error=FileJobError(f"internal error: {type(exc).__name__}: {exc}"))

    async def record(
        self, owner: str, done: Sequence[Finished[Job, JobResult]]
    ) -> list[StageEvent]:
        outcomes = await self.catalog.record_results(
            [f.result for f in done],
            max_attempts=self.max_attempts,
            owner=owner,
            backoff=self.backoff,
        )
        return [_event(f, outcome) for f, outcome in zip(done, outcomes, strict=True)]


def _event(finished: Finished[Job, JobResult], outcome: Outcome) -> StageEvent:
    jr = finished.result
    error = jr.error if outcome in (Outcome.FAILED, Outcome.RETRY) else None
    return StageEvent(
        stage="ingest",
        job_id=jr.job.file_id,
        path=jr.job.path,
        outcome=outcome.value,
        seconds=finished.seconds,
        failure_class=error.failure_class.value if error else None,
        reason=error.reason if error else None,
        final=outcome is not Outcome.RETRY,
        bytes_read=jr.result.digest.size if jr.result else 0,
    )
