"""The daemon's stages: one loop per stage on one heartbeat, woken along the data flow.

Ingest always runs; analysis when ``[analysis] enabled``; tag write-back when ``[tagging] write``;
the tracklist stage when ``[tracklists] enabled``; fingerprinting and identification of sets when
``[fingerprint] enabled`` (each started and stopped by a reload). A finished job wakes the
stages after it — a new or changed file wakes analysis, fingerprinting and the tracklist stage,
a finished analysis wakes tag write-back, a fingerprinted set wakes identification (a new track
in the index reaches the sets through the debounce, at the stage's idle poll) — and every event
goes on to the daemon's bookkeeping.
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
    from tracktiond.pipeline.identifying import FingerprintStage, IdentifyStage
    from tracktiond.pipeline.inbox import InboxStage
    from tracktiond.pipeline.tagging import TaggingStage
    from tracktiond.pipeline.tracklisting import TracklistStage

log = logging.getLogger("tracktiond.service.daemon")

# A file cataloged (or analysed) may be an inbox file the organise stage moves into the library.
_ORGANISE_WAKES = {
    ("ingest", "new"),
    ("ingest", "changed"),
    ("ingest", "moved"),
    ("ingest", "duplicate"),
    ("analysis", "done"),
    ("analysis", "failed"),
}

# A finished job with one of these outcomes means work for the next stage.
_WAKES: dict[tuple[str, str], tuple[str, ...]] = {
    # A cataloged file may be the audio a waiting sheet or list names, or hold a sheet itself.
    ("ingest", "new"): ("analysis", "tracklists", "fingerprint"),
    ("ingest", "changed"): ("analysis", "tracklists", "fingerprint"),
    ("ingest", "duplicate"): ("fingerprint",),
    ("ingest", "moved"): ("tracklists",),
    ("analysis", "done"): ("tags",),
    ("fingerprint", "set"): ("identify",),
}


INGEST_LINGER = 0.1  # seconds the ingest writer waits for more results to batch


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
        self.inbox: InboxStage | None = None
        self.tracklists: TracklistStage | None = None
        self.fingerprint: FingerprintStage | None = None
        self.identify: IdentifyStage | None = None
        self._done: dict[str, anyio.Event] = {}
        self._tg: TaskGroup | None = None

    # -- what runs ---------------------------------------------------------------------------

    async def run(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        async with anyio.create_task_group() as tg:
            self._tg = tg
            tg.start_soon(self.heartbeat.run)
            self.ingest = IngestStage(self.catalog, max_attempts=self.config.scan.max_attempts)
            workers = ingest_workers(self.config)
            # A burst (a folder copied in) is read at scan speed: enough claimed jobs to keep
            # every worker busy, and results gathered into real batches (a transaction's fixed
            # cost dominates small ones) at the price of at most INGEST_LINGER of latency.
            self._start(
                self.ingest,
                concurrency=workers,
                max_in_flight=max(32, workers * 8),
                write_batch=256,
                write_linger=INGEST_LINGER,
            )
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
            if self.config.organise.auto:
                self._start_inbox()
            if self.config.tracklists.enabled:
                self._start_tracklists()
            if self.config.fingerprint.enabled:
                self._start_fingerprint()
            task_status.started()

    def _start(
        self,
        stage: Any,
        *,
        concurrency: int,
        max_in_flight: int = 0,
        write_batch: int = 1,
        write_linger: float = 0.0,
    ) -> None:
        assert self._tg is not None
        loop: StageLoop[Any, Any] = StageLoop(
            stage,
            self.heartbeat,
            concurrency=concurrency,
            max_in_flight=max_in_flight,
            write_batch=write_batch,
            write_linger=write_linger,
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

    def _start_inbox(self) -> None:
        from tracktiond.organise.settings import settings_from_config
        from tracktiond.pipeline.inbox import InboxStage

        self.inbox = InboxStage(self.catalog, settings_from_config(self.config))
        # One move at a time: a directory's cover art goes with the last file to leave it.
        self._start(self.inbox, concurrency=1, max_in_flight=4)
        log.info("organising new files from %s", ", ".join(self.inbox.settings.inboxes))

    def _start_tagging(self) -> None:
        from tracktiond.pipeline.tagging import TaggingStage

        self.tagging = TaggingStage(self.catalog, self.config.tagging)
        self._start(self.tagging, concurrency=2, max_in_flight=2)
        log.info("tag write-back enabled")

    def _start_tracklists(self) -> None:
        from tracktiond.pipeline.tracklisting import TracklistStage

        self.tracklists = TracklistStage(self.catalog, self.config.tracklists)
        # Reading a sheet is a thread's work of a few milliseconds; two at once keep up.
        self._start(self.tracklists, concurrency=2, max_in_flight=8, write_batch=8)

    def _start_fingerprint(self) -> None:
        from tracktiond.pipeline.identifying import FingerprintStage, IdentifyStage

        self.fingerprint = FingerprintStage(self.catalog, self.config)
        workers = self.fingerprint.concurrency
        # Tracks are written to the index in batches: one batch per write, fewer merges.
        self._start(
            self.fingerprint,
            concurrency=workers,
            max_in_flight=workers,
            write_batch=32,
            write_linger=2.0,
        )
        self.identify = IdentifyStage(self.catalog, self.config)
        self._start(self.identify, concurrency=1, max_in_flight=1)
        log.info(
            "fingerprinting enabled (tracks below %.0f s are indexed)", self.fingerprint.track_max
        )

    def _stop_fingerprint(self) -> None:
        for name in ("fingerprint", "identify"):
            self.loops.pop(name).stop_claiming()
        self.fingerprint = self.identify = None
        log.info("fingerprinting disabled")

    def _handle(self, event: StageEvent) -> None:
        if self.inbox is not None and (event.stage, event.outcome) in _ORGANISE_WAKES:
            self.wake("organise")
        for downstream in _WAKES.get((event.stage, event.outcome), ()):
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
        if self.tracklists is not None and not new.tracklists.enabled:
            self.loops.pop("tracklists").stop_claiming()
            self.tracklists = None
        elif self.tracklists is not None:
            self.tracklists.reconfigure(new.tracklists)
        elif new.tracklists.enabled and not old.tracklists.enabled:
            self._start_tracklists()
        if self.fingerprint is not None and not new.fingerprint.enabled:
            self._stop_fingerprint()
        elif self.fingerprint is not None and self.identify is not None:
            self.fingerprint.reconfigure(new)
            self.identify.reconfigure(new)
            self.wake("fingerprint")
        elif new.fingerprint.enabled and not old.fingerprint.enabled:
            self._start_fingerprint()
        if self.inbox is not None and not new.organise.auto:
            self.loops.pop("organise").stop_claiming()
            self.inbox = None
            log.info("organising of inbox files disabled")
        elif self.inbox is not None:
            from tracktiond.organise.settings import settings_from_config

            self.inbox.reconfigure(settings_from_config(new))
            self.wake("organise")
        elif new.organise.auto and not old.organise.auto:
            self._start_inbox()
