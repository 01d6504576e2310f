"""The daemon's stages: one loop per stage on one heartbeat, woken along the data flow.

Ingest always runs; analysis when ``[analysis] enabled``; tag write-back when ``[tagging] write``
(started and stopped by a reload). A finished job wakes the stage after it — a new or changed
file wakes analysis, a finished analysis wakes tag write-back — and every event goes on to the
daemon's bookkeeping.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import anyio
from anyio.abc import TaskGroup, TaskStatus

from tracktiond.catalog.health import CatalogHealth
from tracktiond.catalog.store import Catalog
from tracktiond.config import Config
from tracktiond.pipeline.ingest import IngestStage
from tracktiond.pipeline.stage import Heartbeat, StageEvent, StageLoop

if TYPE_CHECKING:
    from tracktiond.pipeline.analyse import AnalysisStage
    from tracktiond.pipeline.tagging import TaggingStage

log = logging.getLogger("tracktiond.service.daemon")

# A finished job with one of these outcomes means work for the next stage.
_WAKES = {
    ("ingest", "new"): "analysis",
    ("ingest", "changed"): "analysis",
    ("analysis", "done"): "tags",
}


def ingest_workers(config: Config) -> int:
    return config.workers.count or (os.cpu_count() or 1)


class Stages:
    def __init__(
        self,
        catalog: Catalog,
        config: Config,
        *,
        owner: str,
        health: CatalogHealth,
        on_event: Callable[[StageEvent], None],
    ) -> None:
        self.catalog = catalog
        self.config = config
        self.health = health
        self.on_event = on_event
        self.heartbeat = Heartbeat(owner, health=health)
        self.loops: dict[str, StageLoop[Any, Any]] = {}
        # The stages themselves, typed, for what only one of them has (settings, options).
        self.ingest: IngestStage | None = None
        self.analysis: AnalysisStage | None = None
        self.tagging: TaggingStage | None = None
        self._done: dict[str, anyio.Event] = {}
        self._tg: TaskGroup | None = None

    # -- what runs ---------------------------------------------------------------------------

    async def run(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        async with anyio.create_task_group() as tg:
            self._tg = tg
            tg.start_soon(self.heartbeat.run)
            self.ingest = IngestStage(self.catalog, max_attempts=self.config.scan.max_attempts)
            self._start(self.ingest, concurrency=ingest_workers(self.config), write_batch=256)
            if self.config.analysis.enabled:
                from tracktiond.pipeline.analyse import AnalysisStage

                self.analysis = analysis = AnalysisStage(
                    self.catalog, self.config.analysis, cpus=os.cpu_count() or 1
                )
                # Claim no more than can run: a queued analysis would hold its lease back from
                # another instance sharing the catalog.
                self._start(
                    analysis, concurrency=analysis.concurrency, max_in_flight=analysis.concurrency
                )
            if self.config.tagging.write:
                self._start_tagging()
            task_status.started()

    def _start(
        self, stage: Any, *, concurrency: int, max_in_flight: int = 0, write_batch: int = 1
    ) -> None:
        assert self._tg is not None
        loop: StageLoop[Any, Any] = StageLoop(
            stage,
            self.heartbeat,
            concurrency=concurrency,
            max_in_flight=max_in_flight,
            write_batch=write_batch,
            on_event=self._handle,
        )
        done = anyio.Event()
        self.loops[stage.name] = loop
        self._done[stage.name] = done

        async def run() -> None:
            try:
                await loop.run()
            finally:
                done.set()

        self._tg.start_soon(run)

    def _start_tagging(self) -> None:
        from tracktiond.pipeline.tagging import TaggingStage

        self.tagging = TaggingStage(self.catalog, self.config.tagging)
        self._start(self.tagging, concurrency=2, max_in_flight=2)
        log.info("tag write-back enabled")

    def _handle(self, event: StageEvent) -> None:
        downstream = _WAKES.get((event.stage, event.outcome))
        if downstream is not None:
            self.wake(downstream)
        self.on_event(event)

    # -- control -----------------------------------------------------------------------------

    def get(self, name: str) -> StageLoop[Any, Any] | None:
        return self.loops.get(name)

    def wake(self, name: str | None = None) -> None:
        """New work for stage ``name`` (every stage when None): claim now, not at the poll."""
        for stage, loop in self.loops.items():
            if name is None or stage == name:
                loop.wake()

    def stop_claiming(self) -> None:
        for loop in self.loops.values():
            loop.stop_claiming()

    async def stopped(self) -> None:
        """Wait until every loop has finished its claimed jobs (after ``stop_claiming``)."""
        for done in list(self._done.values()):
            await done.wait()

    def reconfigure(self, new: Config) -> None:
        """Apply a reloaded configuration: worker counts, attempts, analysis and tag settings;
        tag write-back starts or stops."""
        old, self.config = self.config, new
        self.loops["ingest"].resize(ingest_workers(new))
        if self.ingest is not None:
            self.ingest.max_attempts = new.scan.max_attempts
        if self.analysis is not None:
            self.analysis.reconfigure(new.analysis)
            self.wake("analysis")
        if self.tagging is not None and not new.tagging.write:
            self.loops.pop("tags").stop_claiming()
            self.tagging = None
            log.info("tag write-back disabled")
        elif self.tagging is not None:
            self.tagging.reconfigure(new.tagging)
            self.wake("tags")
        elif new.tagging.write and not old.tagging.write:
            self._start_tagging()
