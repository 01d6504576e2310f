"""The daemon's bookkeeping: job results, the catalog snapshot, readiness and the HTTP handlers.

The stages report each job here; metrics and the recent-failure list are updated at once, and the
catalog snapshot (files by state, queue depth, analysis and tag counts) is refreshed in the
background, so /metrics, /status, /readyz and systemd STATUS= only ever read cached state.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from typing import TYPE_CHECKING, Any

import anyio

from tracktiond.catalog.health import CatalogHealth, is_transient
from tracktiond.catalog.store import AnalysisJob, Catalog, Failure, Job, JobResult, Outcome
from tracktiond.pipeline.ingest import IngestPool
from tracktiond.pipeline.watch import RootWatcher, WatchMode
from tracktiond.service.metrics import CONTENT_TYPE, CatalogSnapshot, Metrics
from tracktiond.service.routes import graph_query, status_document
from tracktiond.service.sdnotify import Notifier
from tracktiond.service.webserver import Request, Response

if TYPE_CHECKING:
    from pathlib import Path

    from tracktiond.graph import GraphSync
    from tracktiond.pipeline.analyse import AnalysisStage
    from tracktiond.pipeline.tagging import TaggingStage

# the daemon's own logger: log lines keep the logger name "tracktiond.service.daemon"
log = logging.getLogger("tracktiond.service.daemon")

SNAPSHOT_INTERVAL = 2.0
IDLE_SNAPSHOT_INTERVAL = 60.0
STATUS_INTERVAL = 5.0


class Bookkeeping:
    """Results, snapshots, readiness and status of the daemon (a mixin of `Daemon`).

    The state below is set up by `Daemon.__init__`; it is declared here for the type checker."""

    config_path: Path | None
    notifier: Notifier
    snapshot: CatalogSnapshot
    graph: GraphSync | None
    metrics: Metrics
    health: CatalogHealth
    owner: str
    catalog: Catalog | None
    pool: IngestPool | None
    analysis: AnalysisStage | None
    tagging: TaggingStage | None
    tag_counts: dict[str, int]
    tag_problems: list[dict[str, Any]]
    watchers: dict[str, tuple[RootWatcher, anyio.CancelScope]]
    ready: bool
    first_reconcile_done: bool
    reconciling: str | None
    reconcile_seen: int
    stopping: bool
    started_at: float
    recent_failures: deque[dict[str, Any]]
    db_failures: list[dict[str, Any]]
    last_reload: dict[str, Any]
    _changed: anyio.Event

    # ---- results -------------------------------------------------------------------------

    def _on_result(self, job: Job, outcome: Outcome, jr: JobResult, seconds: float) -> None:
        self.mark_changed()
        stage = "ingest"
        self.metrics.jobs.labels(stage, outcome.value).inc()
        self.metrics.stage_duration.labels(stage).observe(seconds)
        if jr.error is not None and outcome in (Outcome.FAILED, Outcome.RETRY):
            self.metrics.job_failures.labels(stage, jr.error.failure_class.value).inc()
            self.recent_failures.appendleft(
                {
                    "path": job.path,
                    "job_id": job.file_id,
                    "class": jr.error.failure_class.value,
                    "reason": jr.error.reason,
                    "at": time.time(),
                    "final": outcome is Outcome.FAILED,
                }
            )
        if self.analysis is not None and outcome in (Outcome.NEW, Outcome.CHANGED):
            self.analysis.wake()
        if self.graph is not None and outcome is not Outcome.UNCHANGED:
            self.graph.wake()
        log.debug(
            "%s %s",
            outcome.value,
            job.path,
            extra={"path": job.path, "job_id": job.file_id, "outcome": outcome.value},
        )

    def _on_analysis(
        self, job: AnalysisJob, state: str, seconds: float, failure: str | None, audio: float
    ) -> None:
        self.mark_changed()
        stage = "analysis"
        self.metrics.jobs.labels(stage, state).inc()
        self.metrics.stage_duration.labels(stage).observe(seconds)
        if failure is not None:
            self.metrics.job_failures.labels(stage, failure).inc()
            self.recent_failures.appendleft(
                {
                    "path": job.path,
                    "job_id": job.audio_hash,
                    "stage": stage,
                    "class": failure,
                    "reason": "analysis failed",
                    "at": time.time(),
                    "final": state == "failed",
                }
            )
        elif audio > 0 and seconds > 0:
            self.metrics.analysis_audio.inc(audio)
            self.metrics.analysis_realtime.set(audio / seconds)
        if state == "done" and self.tagging is not None:
            self.tagging.wake()
        if state == "done" and self.graph is not None:
            self.graph.wake()

    def _on_tag_write(self, _job: object, status: str) -> None:
        self.mark_changed()
        self.metrics.tag_writes.labels(status).inc()

    # ---- snapshots, status, readiness ------------------------------------------------------

    def mark_changed(self) -> None:
        """Something in the catalog changed: the snapshot is refreshed within 2 seconds."""
        self._changed.set()

    async def _snapshot_loop(self) -> None:
        # Refresh when something changed (at most every SNAPSHOT_INTERVAL), else once a minute
        # (changes made by other instances sharing a PostgreSQL catalog): an idle daemon does
        # not query its catalog every two seconds.
        last_full = time.monotonic()
        while True:
            await anyio.sleep(SNAPSHOT_INTERVAL)
            if self._changed.is_set() or time.monotonic() - last_full >= IDLE_SNAPSHOT_INTERVAL:
                self._changed = anyio.Event()
                last_full = time.monotonic()
                await self._refresh_snapshot()
            else:
                await self._ping_catalog()  # keeps /readyz and catalog_up honest when idle

    async def _ping_catalog(self) -> None:
        if self.catalog is None:
            return
        try:
            await self.catalog.ping()
        except Exception as exc:
            if not is_transient(exc):
                raise
            self.health.mark_down(exc)
            self.mark_changed()  # refresh everything once it is back
            return
        self.health.mark_up()

    async def _refresh_snapshot(self) -> None:
        if self.catalog is None:
            return
        try:
            st = await self.catalog.status(failures=10)
            depth, oldest = await self.catalog.queue_stats()
            outbox_depth, outbox_oldest = await self.catalog.outbox_stats()
            if self.graph is None and outbox_depth > 10_000:
                # No graph configured: nothing drains the outbox. A graph enabled later rebuilds
                # itself from the catalog (its marker node is missing), so nothing is lost.
                await self.catalog.clear_outbox()
                outbox_depth, outbox_oldest = 0, None
            tagging: dict[str, int] = {}
            if self.tagging is not None:
                from tracktiond.pipeline.tagging import options_fingerprint

                tagging = await self.catalog.tag_stats(options_fingerprint(self.tagging.options))
                self.tag_problems = [
                    {"path": f.path, "status": f.error_class, "reason": f.reason}
                    for f in await self.catalog.tag_problems(10)
                ]
            analysis: dict[str, int] = {}
            analysis_failures: list[Failure] = []
            if self.analysis is not None:
                analysis = await self.catalog.analysis_stats(self.analysis.settings.fingerprint())
                analysis_failures = await self.catalog.analysis_failures(10)
        except Exception as exc:
            if not is_transient(exc):
                raise
            self.health.mark_down(exc)
            return
        self.health.mark_up()
        self.snapshot = CatalogSnapshot(
            files_by_state=st.files_by_state,
            recordings=st.recordings,
            duplicate_recordings=st.duplicate_recordings,
            queue_depth=depth,
            oldest_pending_epoch=oldest.timestamp() if oldest else None,
            analysis=analysis,
            outbox_depth=outbox_depth,
            outbox_oldest_epoch=outbox_oldest.timestamp() if outbox_oldest else None,
            taken=time.monotonic(),
        )
        self.tag_counts = tagging
        self.db_failures = [
            {
                "path": f.path,
                "stage": "ingest",
                "class": f.error_class,
                "reason": f.reason,
                "at": f.at.isoformat(),
            }
            for f in st.recent_failures
        ] + [
            {
                "path": f.path,
                "stage": "analysis",
                "class": f.error_class,
                "reason": f.reason,
                "at": f.at.isoformat(),
            }
            for f in analysis_failures
        ]
        if self.pool is not None:
            self.metrics.workers_busy.set(self.pool.stats.busy)

    async def _status_loop(self) -> None:
        while not self.stopping:
            self._status_line(self._summary_line())
            await anyio.sleep(STATUS_INTERVAL)

    def _summary_line(self) -> str:
        if not self.first_reconcile_done:
            total = sum(v for k, v in self.snapshot.files_by_state.items() if k != "missing")
            return f"reconciling {self.reconcile_seen:,} / {total:,} files"
        return f"watching {len(self.watchers)} roots, {self.snapshot.queue_depth:,} pending" + (
            "" if self.health.up else f"; {self.health.reason}"
        )

    def _status_line(self, text: str) -> None:
        self.notifier.status(text)

    def _update_root_gauges(self) -> None:
        for mode in WatchMode:
            n = sum(1 for w, _ in self.watchers.values() if w.mode is mode)
            self.metrics.roots_by_mode.labels(mode.value).set(n)

    def not_ready_reason(self) -> str | None:
        if self.stopping:
            return "stopping"
        if not self.health.up:
            return self.health.reason or "catalog unreachable"
        if not self.first_reconcile_done:
            return f"reconciling ({self.reconcile_seen:,} files so far)"
        starting = [r for r, (w, _) in self.watchers.items() if w.mode is WatchMode.STARTING]
        if starting:
            return f"watcher starting for {', '.join(starting)}"
        return None

    def _check_ready(self) -> None:
        if self.ready or self.stopping or not self.first_reconcile_done:
            return
        if any(w.mode is WatchMode.STARTING for w, _ in self.watchers.values()):
            return
        self.ready = True
        self.metrics.ready.set(1)
        log.info("ready: %s", self._summary_line())
        self.notifier.ready(self._summary_line())

    # ---- HTTP handlers (cheap: they read cached state) -------------------------------------

    async def _healthz(self, request: Request) -> Response:
        return Response.text("ok\n")

    async def _readyz(self, request: Request) -> Response:
        reason = self.not_ready_reason()
        if reason is None:
            self._check_ready()
            return Response.text("ready\n")
        return Response.text(f"not ready: {reason}\n", status=503)

    async def _metrics(self, request: Request) -> Response:
        self._update_root_gauges()
        if self.pool is not None:
            self.metrics.workers_busy.set(self.pool.stats.busy)
        if self.analysis is not None:
            self.metrics.analysis_busy.set(self.analysis.busy)
        return Response(200, self.metrics.exposition(), content_type=CONTENT_TYPE)

    async def _status(self, request: Request) -> Response:
        return Response.json(self.status_dict(), indent=2)

    async def _graph_query(self, request: Request) -> Response:
        return await graph_query(self.graph, request)

    def status_dict(self) -> dict[str, Any]:
        return status_document(self)
