"""Reconciling and watching: the daemon's roots, their watchers and the reconcile walks.

A reconcile walk makes the catalog true to the disk under some paths and queues the work it finds:
whole roots at startup, every `[library] full_reconcile_interval`, when a reload adds roots, on
each poll of a root that cannot be watched, after a watcher overflow or a root's return; settled
paths for live events. One walk runs at a time.
"""

from __future__ import annotations

import logging
import time

import anyio
from anyio.abc import TaskGroup

from tracktiond.catalog.store import Outcome
from tracktiond.config import Config
from tracktiond.pipeline.reconcile import Reconciler, ScanSummary
from tracktiond.pipeline.watch import RootWatcher
from tracktiond.service.bookkeeping import Bookkeeping

# the daemon's own logger: log lines keep the logger name "tracktiond.service.daemon"
log = logging.getLogger("tracktiond.service.daemon")

WHOLE_ROOT_TRIGGERS = {"startup", "poll", "full", "reload", "root returned", "overflow"}


class _ReconcileProgress:
    """Feeds STATUS= with how far the first reconciliation has come."""

    def __init__(self, daemon: Reconciling) -> None:
        self.daemon = daemon
        self.seen = 0

    def discovered(self, files: int) -> None:
        self.seen += files
        self.daemon.reconcile_seen = self.seen

    def queued(self, jobs: int) -> None:
        pass

    def processed(self, outcome: Outcome, size: int) -> None:
        pass


class Reconciling(Bookkeeping):
    """The reconcile and watch orchestration of the daemon (a mixin of `Daemon`)."""

    config: Config
    _tg: TaskGroup | None
    _reconcile_lock: anyio.Lock

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
