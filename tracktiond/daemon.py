"""The daemon's wiring and lifecycle: `tracktiond run`.

Start-up order (uvicorn-style: cheap validation first, resources after):
config (validated by the caller) → HTTP (answers from the first moment) → catalog (retried until
reachable) → worker pool → watchers → first reconciliation of every root → READY=1.

Signals only set state; the lifecycle acts on it. SIGTERM/SIGINT: stop claiming, let running jobs
finish within ``[daemon] shutdown_grace``, cancel the rest, exit 0; a second signal cancels at once.
SIGHUP or an edit of the config file reloads the configuration; a bad new file is rejected and the
running configuration stays.
"""

from __future__ import annotations

import fcntl
import logging
import os
import signal
import time
from collections import deque
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

import anyio
from anyio.abc import TaskGroup

from tracktiond import __version__
from tracktiond.catalog.database import is_sqlite
from tracktiond.catalog.health import CatalogHealth, is_transient
from tracktiond.catalog.store import AnalysisJob, Catalog, Failure, Job, JobResult, Outcome
from tracktiond.config import Config, load_config
from tracktiond.endpoints import graph_query, status_document
from tracktiond.errors import ConfigError, TracktiondError
from tracktiond.http import HttpServer, Request, Response
from tracktiond.logs import set_level
from tracktiond.metrics import CONTENT_TYPE, CatalogSnapshot, Metrics
from tracktiond.scanner import Reconciler, ScanSummary
from tracktiond.systemd import Notifier, watchdog_loop
from tracktiond.watcher import RootWatcher, WatchMode
from tracktiond.workers import IngestPool, make_owner_id, release_dead_local_leases

if TYPE_CHECKING:
    from tracktiond.analysis_stage import AnalysisStage
    from tracktiond.graph import GraphSync
    from tracktiond.tagging_stage import TaggingStage

log = logging.getLogger(__name__)

SNAPSHOT_INTERVAL = 2.0
IDLE_SNAPSHOT_INTERVAL = 60.0
STATUS_INTERVAL = 5.0
WHOLE_ROOT_TRIGGERS = {"startup", "poll", "full", "reload", "root returned", "overflow"}


class _ReconcileProgress:
    """Feeds STATUS= with how far the first reconciliation has come."""

    def __init__(self, daemon: Daemon) -> None:
        self.daemon = daemon
        self.seen = 0

    def discovered(self, files: int) -> None:
        self.seen += files
        self.daemon.reconcile_seen = self.seen

    def queued(self, jobs: int) -> None:
        pass

    def processed(self, outcome: Outcome, size: int) -> None:
        pass


class Daemon:
    def __init__(self, config: Config) -> None:
        self.config = config
        self.config_path = config.source
        self.notifier = Notifier()
        self.snapshot = CatalogSnapshot()
        self.graph: GraphSync | None = None
        self.metrics = Metrics(
            snapshot=lambda: self.snapshot,
            graph=lambda: self.graph.status() if self.graph is not None else None,
        )
        self.metrics.workers.set(self._worker_count(config))
        self.health = CatalogHealth(
            config.database_url,
            on_change=lambda up: self.metrics.catalog_up.set(1 if up else 0),
            on_error=self.metrics.catalog_errors.inc,
        )
        self.owner = make_owner_id()
        self.catalog: Catalog | None = None
        self.pool: IngestPool | None = None
        self.analysis: AnalysisStage | None = None
        self.tagging: TaggingStage | None = None
        self._analysis_done = anyio.Event()
        self.tag_counts: dict[str, int] = {}
        self.tag_problems: list[dict[str, Any]] = []
        self.watchers: dict[str, tuple[RootWatcher, anyio.CancelScope]] = {}
        self.ready = False
        self.first_reconcile_done = False
        self.reconciling: str | None = None
        self.reconcile_seen = 0
        self.stopping = False
        self.exit_code = 0
        self.started_at = time.time()
        self.recent_failures: deque[dict[str, Any]] = deque(maxlen=20)
        self.db_failures: list[dict[str, Any]] = []
        self.last_reload: dict[str, Any] = {"ok": True, "at": time.time(), "error": None}
        self._reconcile_lock = anyio.Lock()
        self._changed = anyio.Event()
        self._tg: TaskGroup | None = None
        self._pool_done = anyio.Event()
        self._lock_fd: int | None = None

    # ---- lifecycle -------------------------------------------------------------------------

    async def run(self) -> int:
        self._take_instance_lock()
        http = HttpServer(
            self.config.http.host,
            self.config.http.port,
            {
                "/healthz": self._healthz,
                "/readyz": self._readyz,
                "/metrics": self._metrics,
                "/status": self._status,
                "/graph/suggestions": self._graph_query,
                "/graph/shared": self._graph_query,
                "/graph/duplicates": self._graph_query,
                "/graph/neighbours": self._graph_query,
            },
        )
        try:
            async with anyio.create_task_group() as tg:
                self._tg = tg
                await tg.start(http.serve)
                log.info("tracktiond %s listening on http://%s", __version__, http.address)
                tg.start_soon(self._signals)
                tg.start_soon(watchdog_loop, self.notifier, lambda: not self.stopping)
                tg.start_soon(self._main)
        except* OSError as group:
            # the HTTP port cannot be bound (in use, not local): a clear message, exit 1
            raise TracktiondError(str(group.exceptions[0])) from None
        finally:
            with anyio.CancelScope(shield=True):
                await self._close()
        return self.exit_code

    async def _main(self) -> None:
        assert self._tg is not None
        self._status_line("connecting to the catalog")
        self.catalog = await self.health.call(partial(Catalog.open, self.config.database_url))
        released = await self.health.call(partial(release_dead_local_leases, self.catalog))
        if released:
            log.info("released %d leases left by an earlier run on this host", released)
        await self._refresh_snapshot()
        self.pool = IngestPool(
            self.catalog,
            concurrency=self._worker_count(self.config),
            max_attempts=self.config.scan.max_attempts,
            owner=self.owner,
            health=self.health,
            on_result=self._on_result,
        )
        self._tg.start_soon(self._run_pool)
        if self.config.analysis.enabled:
            from tracktiond.analysis_stage import AnalysisStage

            self.analysis = AnalysisStage(
                self.catalog,
                self.config.analysis,
                owner=self.owner,
                cpus=os.cpu_count() or 1,
                health=self.health,
                on_result=self._on_analysis,
            )
            self._tg.start_soon(self._run_analysis)
        if self.config.tagging.write:
            self._start_tagging()
        if self.config.graph.enabled:
            from tracktiond.graph import GraphClient, GraphSync

            self.graph = GraphSync(
                self.catalog, GraphClient.from_config(self.config.graph), health=self.health
            )
            await self._tg.start(self.graph.run)
            log.info("mirroring the catalog into the graph at %s", self.config.graph.uri)
        self._tg.start_soon(self._snapshot_loop)
        # Watchers first, so nothing that changes during the first reconciliation is missed.
        for root in self._roots():
            await self._start_watcher(root)
        self._tg.start_soon(self._first_reconcile)
        self._tg.start_soon(self._full_reconcile_loop)
        self._tg.start_soon(self._watch_config_file)

    async def _first_reconcile(self) -> None:
        await self._reconcile(self._roots(), "startup")
        self.first_reconcile_done = True
        self._check_ready()
        await self._status_loop()

    def _check_ready(self) -> None:
        if self.ready or self.stopping or not self.first_reconcile_done:
            return
        if any(w.mode is WatchMode.STARTING for w, _ in self.watchers.values()):
            return
        self.ready = True
        self.metrics.ready.set(1)
        log.info("ready: %s", self._summary_line())
        self.notifier.ready(self._summary_line())

    async def _run_pool(self) -> None:
        assert self.pool is not None
        try:
            await self.pool.run()
        finally:
            self._pool_done.set()

    def _on_tag_write(self, _job: object, status: str) -> None:
        self.mark_changed()
        self.metrics.tag_writes.labels(status).inc()

    def _start_tagging(self) -> None:
        from tracktiond.tagging_stage import TaggingStage

        assert self._tg is not None and self.catalog is not None
        self.tagging = TaggingStage(
            self.catalog,
            self.config.tagging,
            owner=self.owner,
            health=self.health,
            on_result=self._on_tag_write,
        )
        log.info("tag write-back enabled")
        self._tg.start_soon(self.tagging.run)
        self._tg.start_soon(self._cleanup_tag_temp_files)

    async def _cleanup_tag_temp_files(self) -> None:
        # Copies left by a write that was killed (kill -9, power loss) are hidden and ignored by
        # the scanner; remove the ones old enough that no write can still be using them.
        from tracktiond.tagwrite import cleanup_stale_temp_files

        for root in self._roots():
            try:
                removed = await anyio.to_thread.run_sync(
                    partial(cleanup_stale_temp_files, root, recursive=True)
                )
            except OSError as exc:
                log.warning("could not clean temporary tag files under %s: %s", root, exc)
                continue
            for path in removed:
                log.info("removed stale temporary file %s", path, extra={"path": path})

    async def _run_analysis(self) -> None:
        assert self.analysis is not None
        try:
            await self.analysis.run()
        finally:
            self._analysis_done.set()

    async def _close(self) -> None:
        if self.catalog is not None:
            try:
                with anyio.move_on_after(5):
                    await self.catalog.release_leases([self.owner])
            except Exception as exc:  # the catalog may be down: the leases expire on their own
                log.warning("could not release work leases: %s", exc)
            await self.catalog.close()
        self.notifier.close()
        if self._lock_fd is not None:
            os.close(self._lock_fd)

    def _take_instance_lock(self) -> None:
        # Several daemons share work through PostgreSQL; on SQLite one daemon per catalog file.
        if not is_sqlite(self.config.database_url):
            return
        db = self.config.database_url.split(":///", 1)[1]
        lock_path = f"{db}.daemon.lock"
        Path(lock_path).parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(lock_path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise TracktiondError(
                f"another tracktiond daemon already uses the catalog {db} (lock {lock_path}); "
                "use PostgreSQL to run several instances"
            ) from None
        self._lock_fd = fd

    # ---- signals, stop, reload -------------------------------------------------------------

    async def _signals(self) -> None:
        with anyio.open_signal_receiver(signal.SIGTERM, signal.SIGINT, signal.SIGHUP) as signals:
            async for signum in signals:
                if signum == signal.SIGHUP:
                    assert self._tg is not None
                    self._tg.start_soon(self.reload, "SIGHUP")
                elif self.stopping:
                    log.warning("second stop signal: exiting now")
                    self.exit_code = 1
                    assert self._tg is not None
                    self._tg.cancel_scope.cancel()
                else:
                    log.info("received %s: stopping", signal.Signals(signum).name)
                    assert self._tg is not None
                    self._tg.start_soon(self._graceful_stop)

    async def _graceful_stop(self) -> None:
        assert self._tg is not None
        self.stopping = True
        self.ready = False
        self.metrics.ready.set(0)
        self.notifier.stopping()
        for _, scope in self.watchers.values():
            scope.cancel()
        if self.analysis is not None:
            self.analysis.stop_claiming()
        if self.tagging is not None:
            self.tagging.stop_claiming()
        if self.pool is not None:
            self.pool.stop_claiming()
            grace = self.config.daemon.shutdown_grace
            with anyio.move_on_after(grace) as scope:
                await self._pool_done.wait()
                if self.analysis is not None:  # running analyses finish within the grace too
                    await self._analysis_done.wait()
            if scope.cancelled_caught:
                log.warning("jobs still running after %.0f s: cancelling them", grace)
        self._tg.cancel_scope.cancel()

    async def reload(self, trigger: str) -> None:
        self.notifier.reloading()
        try:
            new = await anyio.to_thread.run_sync(load_config, self.config_path)
        except ConfigError as exc:
            log.error(
                "configuration reload (%s) rejected, keeping the running one: %s", trigger, exc
            )
            self.metrics.reload_success.set(0)
            self.metrics.reloads.labels("failure").inc()
            self.last_reload = {"ok": False, "at": time.time(), "error": str(exc)}
            self.notifier.ready(self._summary_line())
            return
        old = self.config
        for key, what in (
            (old.database_url != new.database_url, "[database] url"),
            (old.http.listen != new.http.listen, "[http] listen"),
        ):
            if key:
                log.warning("%s changed: takes effect at the next restart", what)
        set_level(new.daemon.log_level)
        if self.pool is not None:
            self.pool.resize(self._worker_count(new))
            self.pool.max_attempts = new.scan.max_attempts
        self.metrics.workers.set(self._worker_count(new))
        if self.analysis is not None:
            self.analysis.reconfigure(new.analysis)
        if self.tagging is not None:
            if new.tagging.write:
                self.tagging.reconfigure(new.tagging)
            else:
                self.tagging.stop_claiming()
                self.tagging = None
                log.info("tag write-back disabled")
        self.config = new
        if new.tagging.write and self.tagging is None and self.catalog is not None:
            self._start_tagging()
        old_roots, new_roots = set(map(str, old.library.roots)), set(map(str, new.library.roots))
        for root in sorted(old_roots - new_roots):
            watcher, scope = self.watchers.pop(root)
            scope.cancel()
            log.info("stopped watching %s (removed from the configuration)", root)
        for watcher, _ in self.watchers.values():
            watcher.settle = new.library.settle_interval
            watcher.poll_interval = new.library.poll_interval
        added = sorted(new_roots - old_roots)
        for root in added:
            await self._start_watcher(root)
        self.metrics.reload_success.set(1)
        self.metrics.reload_timestamp.set_to_current_time()
        self.metrics.reloads.labels("success").inc()
        self.last_reload = {"ok": True, "at": time.time(), "error": None}
        log.info("configuration reloaded (%s): %d roots", trigger, len(self.watchers))
        self.notifier.ready(self._summary_line())
        if added:
            await self._reconcile(added, "reload")

    async def _watch_config_file(self) -> None:
        if self.config_path is None:
            return
        from watchfiles import awatch

        path = self.config_path  # absolute: load_config was handed an absolute path
        name = path.name
        try:
            async for _ in awatch(
                path.parent,
                watch_filter=lambda _c, p: os.path.basename(p) == name,
                recursive=False,
                debounce=500,
                # Cancelling awatch waits for its thread, which blocks up to rust_timeout
                # (5 s by default): keep a stop quick.
                rust_timeout=1000,
            ):
                await self.reload("config file changed")
        except Exception as exc:  # e.g. inotify limits: SIGHUP still works
            log.warning("not watching %s for edits (%s); send SIGHUP to reload", path, exc)

    # ---- reconciling and watching ----------------------------------------------------------

    def _roots(self) -> list[str]:
        return [str(p) for p in self.config.library.roots]

    async def _start_watcher(self, root: str) -> None:
        assert self._tg is not None
        watcher = RootWatcher(
            root,
            settle=self.config.library.settle_interval,
            poll_interval=self.config.library.poll_interval,
            on_settled=self._on_settled,
            metrics=self.metrics,
        )
        scope = anyio.CancelScope()

        async def run(*, task_status: anyio.abc.TaskStatus[None]) -> None:
            with scope:
                await watcher.run(task_status=task_status)

        self.watchers[root] = (watcher, scope)
        await self._tg.start(run)
        self._update_root_gauges()

    async def _on_settled(self, paths: list[str], trigger: str) -> None:
        await self._reconcile(paths, trigger)

    async def _reconcile(self, paths: list[str], trigger: str) -> None:
        assert self.catalog is not None
        catalog = self.catalog
        whole = trigger in WHOLE_ROOT_TRIGGERS
        async with self._reconcile_lock:
            self.reconciling = trigger
            started = time.monotonic()
            summary = ScanSummary()
            reconciler = Reconciler(
                catalog,
                follow_symlinks=self.config.library.follow_symlinks,
                progress=_ReconcileProgress(self) if trigger == "startup" else None,
                on_queued=lambda _n: self.pool.wake() if self.pool else None,
                summary=summary,
            )
            roots = set(self._roots())
            root_paths = [p for p in paths if p in roots]
            other = [p for p in paths if p not in roots]

            async def attempt() -> None:
                if root_paths:
                    await reconciler.reconcile_roots(root_paths)
                if other:
                    await reconciler.reconcile(other)

            try:
                await self.health.call(attempt)
            finally:
                self.reconciling = None
            elapsed = time.monotonic() - started
            if any(summary.counts.values()):
                self.mark_changed()
            if whole:
                # The queue may hold work this reconcile did not add: files another instance
                # sharing the catalog queued a moment earlier, or an earlier run left. Look now
                # rather than at the stages' next idle poll.
                for stage in (self.pool, self.analysis, self.tagging):
                    if stage is not None:
                        stage.wake()
                self.metrics.reconciliations.labels(trigger).inc()
                self.metrics.reconcile_last_duration.set(elapsed)
                self.metrics.reconcile_last_completion.set_to_current_time()
            counts = {k: v for k, v in summary.counts.items() if v}
            log.info(
                "reconciled %s (%s) in %.2f s: %s",
                paths[0] if len(paths) == 1 else f"{len(paths)} paths",
                trigger,
                elapsed,
                counts or "no change",
            )

    async def _full_reconcile_loop(self) -> None:
        interval = self.config.library.full_reconcile_interval
        while True:
            interval = self.config.library.full_reconcile_interval
            await anyio.sleep(interval if interval > 0 else 60)
            if self.config.library.full_reconcile_interval > 0:
                await self._reconcile(self._roots(), "full")

    # ---- results, snapshots, status --------------------------------------------------------

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
                from tracktiond.tagging_stage import options_fingerprint

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

    @staticmethod
    def _worker_count(config: Config) -> int:
        return config.workers.count or (os.cpu_count() or 1)


def run_daemon(config: Config) -> int:
    daemon = Daemon(config)
    result: int = anyio.run(daemon.run)
    return result
