"""The daemon's roots: their watchers and the reconcile walks.

A reconcile walk makes the catalog true to the disk under some paths and queues the work it finds:
whole roots at startup, every `[library] full_reconcile_interval`, when a reload adds roots, on
each poll of a root that cannot be watched, after a watcher overflow or a root's return; settled
paths for live events. One walk runs at a time.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

import anyio
from anyio.abc import TaskGroup, TaskStatus

from tracktiond.catalog.health import CatalogHealth
from tracktiond.catalog.store import Catalog, Outcome
from tracktiond.config import Config
from tracktiond.pipeline.reconcile import Reconciler, ScanSummary
from tracktiond.pipeline.watch import RootWatcher, WatchMode
from tracktiond.service.metrics import Metrics

# the daemon's own logger: log lines keep the logger name "tracktiond.service.daemon"
log = logging.getLogger("tracktiond.service.daemon")

WHOLE_ROOT_TRIGGERS = {"startup", "poll", "full", "reload", "root returned", "overflow"}


class _ReconcileProgress:
    """Feeds STATUS= with how far the first reconciliation has come."""

    def __init__(self, roots: Roots) -> None:
        self.roots = roots

    def discovered(self, files: int) -> None:
        self.roots.reconcile_seen += files

    def queued(self, jobs: int) -> None:
        pass

    def processed(self, outcome: Outcome, size: int) -> None:
        pass

    def analysed(self, outcome: str) -> None:
        pass

    def walked(self) -> None:
        pass


class Roots:
    def __init__(
        self,
        config: Config,
        *,
        health: CatalogHealth,
        metrics: Metrics,
        on_queued: Callable[[], None],
        on_walked: Callable[[], None],
        on_changed: Callable[[], None],
    ) -> None:
        self.config = config
        self.health = health
        self.metrics = metrics
        self.on_queued = on_queued  # a walk queued files: wake the ingest stage
        self.on_walked = on_walked  # a whole-root walk ended: every stage looks for work
        self.on_changed = on_changed  # the catalog changed: refresh the snapshot
        self.catalog: Catalog | None = None
        self.watchers: dict[str, tuple[RootWatcher, anyio.CancelScope]] = {}
        self.reconciling: str | None = None
        self.reconcile_seen = 0
        self._lock = anyio.Lock()
        self._tg: TaskGroup | None = None

    def paths(self) -> list[str]:
        return [str(p) for p in self.config.library.roots]

    def starting(self) -> list[str]:
        """Roots whose watcher is still setting up."""
        return [r for r, (w, _) in self.watchers.items() if w.mode is WatchMode.STARTING]

    def describe(self) -> list[dict[str, object]]:
        return [w.describe() for w, _ in self.watchers.values()]

    def update_gauges(self) -> None:
        for mode in WatchMode:
            n = sum(1 for w, _ in self.watchers.values() if w.mode is mode)
            self.metrics.roots_by_mode.labels(mode.value).set(n)

    # ---- watchers --------------------------------------------------------------------------

    async def run(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        """Start a watcher per root (before the first walk, so nothing that changes during it
        is missed), then keep them and the periodic full walk running."""
        async with anyio.create_task_group() as tg:
            self._tg = tg
            for root in self.paths():
                await self._start_watcher(root)
            tg.start_soon(self._full_reconcile_loop)
            task_status.started()

    async def _start_watcher(self, root: str) -> None:
        assert self._tg is not None
        watcher = RootWatcher(
            root,
            settle=self.config.library.settle_interval,
            poll_interval=self.config.library.poll_interval,
            on_settled=self.reconcile,
            counters=self.metrics,
        )
        scope = anyio.CancelScope()

        async def run(*, task_status: TaskStatus[None]) -> None:
            with scope:
                await watcher.run(task_status=task_status)

        self.watchers[root] = (watcher, scope)
        await self._tg.start(run)
        self.update_gauges()

    def stop_watching(self) -> None:
        for _, scope in self.watchers.values():
            scope.cancel()

    async def reconfigure(self, new: Config) -> list[str]:
        """Watch the roots of ``new``: stop removed ones, start added ones (returned, for the
        caller to walk), retune the rest."""
        old, self.config = self.config, new
        old_roots, new_roots = set(map(str, old.library.roots)), set(map(str, new.library.roots))
        for root in sorted(old_roots - new_roots):
            _, scope = self.watchers.pop(root)
            scope.cancel()
            log.info("stopped watching %s (removed from the configuration)", root)
        for watcher, _ in self.watchers.values():
            watcher.settle = new.library.settle_interval
            watcher.poll_interval = new.library.poll_interval
        added = sorted(new_roots - old_roots)
        for root in added:
            await self._start_watcher(root)
        self.update_gauges()
        return added

    # ---- walks -----------------------------------------------------------------------------

    async def reconcile(self, paths: list[str], trigger: str) -> None:
        assert self.catalog is not None
        catalog = self.catalog
        whole = trigger in WHOLE_ROOT_TRIGGERS
        async with self._lock:
            self.reconciling = trigger
            started = time.monotonic()
            summary = ScanSummary()
            reconciler = Reconciler(
                catalog,
                follow_symlinks=self.config.library.follow_symlinks,
                progress=_ReconcileProgress(self) if trigger == "startup" else None,
                on_queued=lambda _n: self.on_queued(),
                summary=summary,
            )
            roots = set(self.paths())
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
                self.on_changed()
            if whole:
                # The queue may hold work this reconcile did not add: files another instance
                # sharing the catalog queued a moment earlier, or an earlier run left. Look now
                # rather than at the stages' next idle poll.
                self.on_walked()
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
        while True:
            interval = self.config.library.full_reconcile_interval
            await anyio.sleep(interval if interval > 0 else 60)
            if self.config.library.full_reconcile_interval > 0:
                await self.reconcile(self.paths(), "full")
