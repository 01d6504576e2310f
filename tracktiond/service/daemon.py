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

from tracktiond import __version__
from tracktiond.catalog.database import is_sqlite
from tracktiond.catalog.health import CatalogHealth
from tracktiond.catalog.store import Catalog
from tracktiond.config import Config, load_config
from tracktiond.errors import ConfigError, TracktiondError
from tracktiond.pipeline.ingest import IngestPool, make_owner_id, release_dead_local_leases
from tracktiond.pipeline.watch import RootWatcher
from tracktiond.service.logs import set_level
from tracktiond.service.metrics import CatalogSnapshot, Metrics
from tracktiond.service.roots import Reconciling
from tracktiond.service.sdnotify import Notifier, watchdog_loop
from tracktiond.service.webserver import HttpServer

if TYPE_CHECKING:
    from anyio.abc import TaskGroup

    from tracktiond.graph import GraphSync
    from tracktiond.pipeline.analyse import AnalysisStage
    from tracktiond.pipeline.tagging import TaggingStage

log = logging.getLogger(__name__)


class Daemon(Reconciling):
    """The wiring and lifecycle; reconciling and watching (`daemon_reconcile`) and the results,
    snapshot, readiness and HTTP handlers (`daemon_status`) are its mixins."""

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
            from tracktiond.pipeline.analyse import AnalysisStage

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

    async def _run_pool(self) -> None:
        assert self.pool is not None
        try:
            await self.pool.run()
        finally:
            self._pool_done.set()

    def _start_tagging(self) -> None:
        from tracktiond.pipeline.tagging import TaggingStage

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

    @staticmethod
    def _worker_count(config: Config) -> int:
        return config.workers.count or (os.cpu_count() or 1)


def run_daemon(config: Config) -> int:
    daemon = Daemon(config)
    result: int = anyio.run(daemon.run)
    return result
