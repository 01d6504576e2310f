"""The one-shot scan (`tracktiond scan [--analyze]`): reconcile some paths, ingest what became
pending, and optionally analyse it.

A Reconciler walk and the ingest stage's loop run side by side: the loop claims pending rows as
the walk adds them and stops once the walk is over and nothing under the scanned paths is
pending. Unlike the daemon it keeps a wide window of claimed jobs, so every worker stays busy
and the writer commits real batches, and it retries a transient failure after a short pause.

With ``analysis``, the analysis stage runs alongside (the crash-isolated worker processes, as in
the daemon) on the streams held under the scanned paths, until ingest is done and none is left.
Everything is recorded as it finishes, so a scan stopped by Ctrl-C or kill -9 resumes where it
was: leases of a dead scan on this host are released at the next start.
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from datetime import timedelta
from functools import partial
from typing import TYPE_CHECKING

import anyio

from tracktiond.catalog.leases import Backoff, make_owner_id
from tracktiond.catalog.store import Catalog, Outcome
from tracktiond.pipeline.ingest import WRITE_BATCH, IngestStage
from tracktiond.pipeline.reconcile import (
    Reconciler,
    ScanProgress,
    ScanSummary,
    _NoProgress,
    absolute_path,
    default_concurrency,
)
from tracktiond.pipeline.stage import Heartbeat, StageEvent, StageLoop

if TYPE_CHECKING:
    from tracktiond.catalog.store import AnalysisJob
    from tracktiond.config import AnalysisConfig
    from tracktiond.pipeline.analyse import Analysed, AnalysisStage

# Nobody waits on a single file here: the writer gathers bigger batches.
WRITE_LINGER = 0.25
# A one-shot scan retries a transient failure after a short pause, not minutes.
SCAN_BACKOFF = Backoff(base=0.25, cap=2.0)


class Scanner:
    """Reconcile the given paths and ingest everything that became pending under them."""

    def __init__(
        self,
        catalog: Catalog,
        *,
        concurrency: int = 0,
        max_attempts: int = 3,
        follow_symlinks: bool = True,
        purge_missing_after: timedelta | None = None,
        progress: ScanProgress | None = None,
        analysis: AnalysisConfig | None = None,
    ) -> None:
        self.catalog = catalog
        self.summary = ScanSummary()
        self._arriving: set[str] = set()  # paths last seen still being written
        self.progress: ScanProgress = progress or _NoProgress()
        self.purge_missing_after = purge_missing_after
        workers = concurrency or default_concurrency()
        self.heartbeat = Heartbeat(make_owner_id())
        self.stage = IngestStage(catalog, max_attempts=max_attempts, backoff=SCAN_BACKOFF)
        self.loop = StageLoop(
            self.stage,
            self.heartbeat,
            concurrency=workers,
            # The jobs are rows in the catalog, so a wide window costs no safety.
            max_in_flight=max(64, workers * 16),
            write_batch=WRITE_BATCH,
            write_linger=WRITE_LINGER,
            on_event=self._on_event,
        )
        self.analysis: StageLoop[AnalysisJob, Analysed] | None = None
        self.analysis_stage: AnalysisStage
        if analysis is not None:
            from tracktiond.pipeline.analyse import AnalysisStage

            stage = AnalysisStage(catalog, analysis, cpus=os.cpu_count() or 1, backoff=SCAN_BACKOFF)
            self.analysis_stage = stage
            self.analysis = StageLoop(
                stage,
                self.heartbeat,
                concurrency=stage.concurrency,
                max_in_flight=stage.concurrency,
                on_event=self._on_analysed,
            )
        self.reconciler = Reconciler(
            catalog,
            follow_symlinks=follow_symlinks,
            progress=self.progress,
            on_queued=lambda _n: self.loop.wake(),
            summary=self.summary,
        )

    def _on_event(self, event: StageEvent) -> None:
        outcome = Outcome(event.outcome)
        self.summary.bytes_read += event.bytes_read
        if outcome is Outcome.DEFERRED:
            self._arriving.add(event.path)
        elif outcome is not Outcome.RETRY:
            self._arriving.discard(event.path)
            self.summary.count(outcome)
        self.progress.processed(outcome, event.bytes_read)

    def _on_analysed(self, event: StageEvent) -> None:
        if event.outcome == "done":
            self.summary.count("analysed")
        elif event.outcome == "failed":
            self.summary.count("analysis_failed")
        self.progress.analysed(event.outcome)

    async def _drained(self) -> bool:
        # Files still being written are not waited for (a recording may grow for hours): they
        # stay pending, and the daemon or the next scan reads them once they have settled.
        return await self.catalog.pending_due(self.stage.roots) == 0

    async def scan(self, paths: Sequence[str]) -> ScanSummary:
        started = time.monotonic()
        roots = [absolute_path(p) for p in paths]
        self.stage.roots = roots
        walked = anyio.Event()

        async def reconcile() -> None:
            try:
                await self.reconciler.reconcile_roots(roots)
            finally:
                walked.set()
                self.progress.walked()
                self.loop.wake()

        ingested = anyio.Event()

        async def ingest() -> None:
            try:
                await self.loop.run(until=walked, drained=self._drained)
            finally:
                ingested.set()
                if self.analysis is not None:
                    self.analysis.wake()

        async def stages() -> None:
            async with anyio.create_task_group() as running:
                running.start_soon(ingest)
                if self.analysis is not None:
                    self.analysis_stage.roots = roots
                    running.start_soon(
                        partial(
                            self.analysis.run, until=ingested, drained=self.analysis_stage.drained
                        )
                    )
            tg.cancel_scope.cancel()  # the heartbeat's job is done

        # A scan killed earlier on this host left leases: free them, so its work is done now.
        await self.catalog.release_dead_local_leases()
        try:
            async with anyio.create_task_group() as tg:
                tg.start_soon(self.heartbeat.run)
                tg.start_soon(stages)
                tg.start_soon(reconcile)
        finally:
            # Stopped early (Ctrl-C): what this scan held is due again at once, not in a minute.
            with anyio.CancelScope(shield=True), anyio.move_on_after(5):
                await self.catalog.release_leases([self.heartbeat.owner])
        if self._arriving:
            self.summary.count(Outcome.DEFERRED, len(self._arriving))
            self.summary.warn(
                f"{len(self._arriving)} file(s) still being written, left pending: they are read "
                "once they have settled (by the daemon, or the next scan)"
            )
        if self.purge_missing_after is not None:
            await self.catalog.purge_missing(self.purge_missing_after)
        self.summary.elapsed = time.monotonic() - started
        return self.summary
