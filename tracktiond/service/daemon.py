"""The daemon's lifecycle: `tracktiond run`, composed of its parts.

Parts: ``Lifecycle`` (the run state), ``Bookkeeping`` (stage events, the catalog snapshot),
``Roots`` (watchers and reconcile walks), ``Stages`` (the stage loops), the graph sync, the HTTP
server and its routes, the metrics and the systemd notifier. The daemon wires them and owns the
order things happen in.

Start-up order (uvicorn-style: cheap validation first, resources after): signal handlers (a
stop during start-up is a clean stop: see tracktiond.startup) → instance lock → HTTP (answers
from the first moment) → catalog (retried until reachable) → stages → graph → watchers → first
reconciliation of every root → READY=1.

Signals only set state; the lifecycle acts on it. SIGTERM/SIGINT: stop claiming, let running jobs
finish within ``[daemon] shutdown_grace``, cancel the rest, exit 0; a second signal cancels at once.
SIGHUP or an edit of the config file reloads the configuration; a bad new file is rejected and the
running configuration stays. A reload diffs the configuration and tells each part what changed.
"""

from __future__ import annotations

import fcntl
import logging
import os
import signal
import time
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

import anyio
from anyio.abc import TaskStatus

from tracktiond import __version__
from tracktiond.catalog.database import is_sqlite
from tracktiond.catalog.health import CatalogHealth
from tracktiond.catalog.leases import make_owner_id
from tracktiond.catalog.store import Catalog
from tracktiond.config import Config, load_config
from tracktiond.errors import ConfigError, TracktiondError
from tracktiond.service.bookkeeping import Bookkeeping
from tracktiond.service.logs import set_level
from tracktiond.service.metrics import CONTENT_TYPE, Metrics
from tracktiond.service.roots import Roots
from tracktiond.service.routes import graph_query
from tracktiond.service.sdnotify import Notifier, watchdog_loop
from tracktiond.service.stages import Stages, ingest_workers
from tracktiond.service.state import Lifecycle, RunState
from tracktiond.service.status import status_document
from tracktiond.service.webserver import HttpServer, Request, Response
from tracktiond.startup import take_deferred

if TYPE_CHECKING:
    from anyio.abc import TaskGroup

    from tracktiond.graph import GraphSync

log = logging.getLogger(__name__)

STATUS_INTERVAL = 5.0


class Daemon:
    def __init__(self, config: Config) -> None:
        self.config = config
        self.config_path = config.source
        self.owner = make_owner_id()
        self.started_at = time.time()
        self.lifecycle = Lifecycle()
        self.notifier = Notifier()
        self.graph: GraphSync | None = None
        self.metrics = Metrics(
            # read at scrape time: the collector never queries the catalog itself
            snapshot=lambda: self.books.snapshot,
            graph=lambda: self.graph.status() if self.graph is not None else None,
        )
        self.metrics.workers.set(ingest_workers(config))
        self.health = CatalogHealth(
            config.database_url,
            on_change=lambda up: self.metrics.catalog_up.set(1 if up else 0),
            on_error=self.metrics.catalog_errors.inc,
        )
        self.books = Bookkeeping(self.metrics, self.health)
        self.roots = Roots(
            config,
            health=self.health,
            metrics=self.metrics,
            on_queued=lambda: self.stages.wake("ingest") if self.stages else None,
            on_walked=lambda: self.stages.wake() if self.stages else None,
            on_changed=self.books.mark_changed,
        )
        self.catalog: Catalog | None = None
        self.stages: Stages | None = None
        self.exit_code = 0
        self.last_reload: dict[str, Any] = {"ok": True, "at": time.time(), "error": None}
        self._tg: TaskGroup | None = None
        self._lock_fd: int | None = None

    # ---- lifecycle -------------------------------------------------------------------------

    async def run(self) -> int:
        try:
            async with anyio.create_task_group() as tg:
                self._tg = tg
                # First, before anything slow: a stop signal from now on is a clean stop.
                await tg.start(self._signals)
                self._take_instance_lock()
                http = HttpServer(self.config.http.host, self.config.http.port, self._routes())
                await tg.start(http.serve)
                log.info("tracktiond %s listening on http://%s", __version__, http.address)
                # No veto: the event loop answering is the health the watchdog checks; a stop
                # in progress is not ill health (systemd's own stop timeout covers a hung one).
                tg.start_soon(watchdog_loop, self.notifier)
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
        self.notifier.status("connecting to the catalog")

        async def open_catalog() -> Catalog:
            # Shielded: a stop that comes while the catalog is being opened (and perhaps
            # migrated) waits for that attempt, which is never torn halfway; between attempts
            # (catalog unreachable) it stops at once. Kept on self at once, so _close disposes
            # of it even when the stop cancels what follows.
            with anyio.CancelScope(shield=True):
                self.catalog = catalog = await Catalog.open(self.config.database_url)
            return catalog

        self.catalog = await self.health.call(open_catalog)
        released = await self.health.call(self.catalog.release_dead_local_leases)
        if released:
            log.info("released %d leases left by an earlier run on this host", released)
        await self._finish_organise_plans()
        self.books.catalog = self.roots.catalog = self.catalog
        await self.books.refresh()
        self.stages = Stages(
            self.catalog,
            self.config,
            owner=self.owner,
            health=self.health,
            on_event=self.books.on_event,
        )
        self.books.stages = self.stages
        await self._tg.start(self.stages.run)
        if self.config.tagging.write:
            self._tg.start_soon(self._cleanup_tag_temp_files)
        if self.config.graph.enabled:
            from tracktiond.graph import GraphClient, GraphSync

            self.graph = GraphSync(
                self.catalog, GraphClient.from_config(self.config.graph), health=self.health
            )
            await self._tg.start(self.graph.run)
            self.books.graph_wake = self.graph.wake
            log.info("mirroring the catalog into the graph at %s", self.config.graph.uri)
        self._tg.start_soon(self.books.snapshot_loop)
        # Watchers first, so nothing that changes during the first reconciliation is missed.
        await self._tg.start(self.roots.run)
        self._tg.start_soon(self._first_reconcile)
        self._tg.start_soon(self._watch_config_file)

    async def _finish_organise_plans(self) -> None:
        # A plan whose applier died (kill -9, power loss: this daemon's inbox flow or an
        # `organise` command) is settled from the disk and finished before any new move.
        from tracktiond.organise.journal import Journal, recover
        from tracktiond.organise.settings import settings_from_config

        assert self.catalog is not None
        settings = settings_from_config(self.config)
        journal = Journal(frozenset(settings.protected_dirs), settings.journal_batch)
        for info in await self.health.call(partial(recover, self.catalog, self.owner, journal)):
            log.info("finished organise plan %d, interrupted earlier: %s", info.id, info.state)

    async def _first_reconcile(self) -> None:
        self.lifecycle.advance(RunState.RECONCILING)
        assert self._tg is not None
        self._tg.start_soon(self._status_loop)  # STATUS= shows the walk's progress too
        await self.roots.reconcile(self.roots.paths(), "startup")
        # READY's STATUS= line must count what the walk just queued, not the snapshot taken
        # before it.
        await self.books.refresh()
        self.lifecycle.advance(RunState.AWAITING_WATCHERS)
        self._check_ready()

    async def _status_loop(self) -> None:
        while not self.lifecycle.stopping:
            self.notifier.status(self.summary_line())
            await anyio.sleep(STATUS_INTERVAL)

    async def _cleanup_tag_temp_files(self) -> None:
        # Copies left by a write that was killed (kill -9, power loss) are hidden and ignored by
        # the scanner; remove the ones old enough that no write can still be using them.
        from tracktiond.tagwrite import cleanup_stale_temp_files

        for root in self.roots.paths():
            try:
                removed = await anyio.to_thread.run_sync(
                    partial(cleanup_stale_temp_files, root, recursive=True)
                )
            except OSError as exc:
                log.warning("could not clean temporary tag files under %s: %s", root, exc)
                continue
            for path in removed:
                log.info("removed stale temporary file %s", path, extra={"path": path})

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

    # ---- readiness -------------------------------------------------------------------------

    def not_ready_reason(self) -> str | None:
        state = self.lifecycle.state
        if state is RunState.STOPPING:
            return "stopping"
        if not self.health.up:
            return self.health.reason or "catalog unreachable"
        if not self.lifecycle.walked:
            return f"reconciling ({self.roots.reconcile_seen:,} files so far)"
        starting = self.roots.starting()
        if starting:
            return f"watcher starting for {', '.join(starting)}"
        return None

    def _check_ready(self) -> None:
        if self.lifecycle.state is not RunState.AWAITING_WATCHERS or self.roots.starting():
            return
        self.lifecycle.advance(RunState.READY)
        self.metrics.ready.set(1)
        log.info("ready: %s", self.summary_line())
        self.notifier.ready(self.summary_line())

    def summary_line(self) -> str:
        """The STATUS= line: true at every moment (taken from the latest snapshot)."""
        snap = self.books.snapshot
        if self.lifecycle.state is RunState.STARTING:
            return "starting" if self.health.up else "connecting to the catalog"
        if not self.lifecycle.walked and not self.lifecycle.stopping:
            seen = self.roots.reconcile_seen
            known = sum(v for k, v in snap.files_by_state.items() if k != "missing")
            # The catalog's count is the expected total on a rescan; on a first walk it
            # trails what has been found, and is no total at all.
            return (
                f"reconciling {seen:,} / {known:,} files"
                if known >= seen
                else f"reconciling: {seen:,} files found so far"
            )
        roots = len(self.roots.watchers)
        line = f"watching {roots} root{'s' if roots != 1 else ''}, {snap.queue_depth:,} pending"
        return line if self.health.up else f"{line}; {self.health.reason}"

    # ---- HTTP (cheap handlers: they read cached state) -------------------------------------

    def _routes(self) -> dict[str, Any]:
        from tracktiond.graph.registry import QUERIES
        from tracktiond.service.tracklistroutes import PREFIX, tracklists_handler

        routes: dict[str, Any] = {
            "/healthz": self._healthz,
            "/readyz": self._readyz,
            "/metrics": self._metrics,
            "/status": self._status,
            PREFIX: tracklists_handler(lambda: self.catalog),  # and every path under it
        }
        routes.update({f"/graph/{query.route}": self._graph_query for query in QUERIES})
        return routes

    async def _healthz(self, request: Request) -> Response:
        return Response.text("ok\n")

    async def _readyz(self, request: Request) -> Response:
        reason = self.not_ready_reason()
        if reason is None:
            self._check_ready()
            return Response.text("ready\n")
        return Response.text(f"not ready: {reason}\n", status=503)

    async def _metrics(self, request: Request) -> Response:
        self.roots.update_gauges()
        self.books.update_busy()
        return Response(200, self.metrics.exposition(), content_type=CONTENT_TYPE)

    async def _status(self, request: Request) -> Response:
        return Response.json(self.status_dict(), indent=2)

    async def _graph_query(self, request: Request) -> Response:
        return await graph_query(self.graph, request)

    def status_dict(self) -> dict[str, Any]:
        return status_document(self)

    # ---- signals, stop, reload -------------------------------------------------------------

    async def _signals(self, *, task_status: TaskStatus[None]) -> None:
        with anyio.open_signal_receiver(signal.SIGTERM, signal.SIGINT, signal.SIGHUP) as signals:
            task_status.started()
            # Signals that came while the program was still importing (tracktiond.startup).
            for signum in take_deferred():
                self._on_signal(signum)
            async for signum in signals:
                self._on_signal(signum)

    def _on_signal(self, signum: int) -> None:
        assert self._tg is not None
        if signum == signal.SIGHUP:
            self._tg.start_soon(self.reload, "SIGHUP")
        elif self.lifecycle.stopping:
            log.warning("second stop signal: exiting now")
            self.exit_code = 1
            self._tg.cancel_scope.cancel()
        else:
            log.info("received %s: stopping", signal.Signals(signum).name)
            self.lifecycle.advance(RunState.STOPPING)
            self._tg.start_soon(self._graceful_stop)

    async def _graceful_stop(self) -> None:
        assert self._tg is not None
        self.metrics.ready.set(0)
        self.notifier.stopping()
        self.roots.stop_watching()
        if self.stages is not None:
            self.stages.stop_claiming()
            grace = self.config.daemon.shutdown_grace
            with anyio.move_on_after(grace) as scope:
                await self.stages.stopped()
            if scope.cancelled_caught:
                log.warning("jobs still running after %.0f s: cancelling them", grace)
        self._tg.cancel_scope.cancel()

    async def reload(self, trigger: str) -> None:
        if self.lifecycle.stopping:
            return
        self.notifier.reloading()
        try:
            new = await anyio.to_thread.run_sync(load_config, self.config_path)
            check_organise(new)
        except ConfigError as exc:
            log.error(
                "configuration reload (%s) rejected, keeping the running one: %s", trigger, exc
            )
            self.metrics.reload_success.set(0)
            self.metrics.reloads.labels("failure").inc()
            self.last_reload = {"ok": False, "at": time.time(), "error": str(exc)}
            self.notifier.ready(self.summary_line())
            return
        old, self.config = self.config, new
        for changed, what in (
            (old.database_url != new.database_url, "[database] url"),
            (old.http.listen != new.http.listen, "[http] listen"),
        ):
            if changed:
                log.warning("%s changed: takes effect at the next restart", what)
        set_level(new.daemon.log_level)
        self.metrics.workers.set(ingest_workers(new))
        if self.stages is not None:
            started_tagging = new.tagging.write and not old.tagging.write
            self.stages.reconfigure(new)
            if started_tagging:
                assert self._tg is not None
                self._tg.start_soon(self._cleanup_tag_temp_files)
        added = await self.roots.reconfigure(new)
        self.metrics.reload_success.set(1)
        self.metrics.reload_timestamp.set_to_current_time()
        self.metrics.reloads.labels("success").inc()
        self.last_reload = {"ok": True, "at": time.time(), "error": None}
        log.info("configuration reloaded (%s): %d roots", trigger, len(self.roots.watchers))
        self.notifier.ready(self.summary_line())
        if added:
            await self.roots.reconcile(added, "reload")

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


def check_organise(config: Config) -> None:
    """The [organise] patterns compile (ConfigError naming the key and column otherwise)."""
    from tracktiond.organise.settings import settings_from_config

    settings_from_config(config)


def run_daemon(config: Config) -> int:
    check_organise(config)
    daemon = Daemon(config)
    result: int = anyio.run(daemon.run)
    return result
