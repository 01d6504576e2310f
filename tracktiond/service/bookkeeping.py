"""The daemon's bookkeeping: what the stages did, and the catalog snapshot everything reads.

Every stage event is counted in the metrics and, when it is a failure, kept in a short list of
recent failures, at once. The catalog snapshot (files by state, queue depth, analysis and tag
counts, the outbox) is refreshed in the background — within two seconds of a change, else once a
minute — so /metrics, /status, /readyz and systemd STATUS= only ever read cached state.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Callable
from dataclasses import asdict
from typing import Any

import anyio

from tracktiond.catalog.health import CatalogHealth, is_transient
from tracktiond.catalog.store import Catalog, Failure
from tracktiond.pipeline.stage import StageEvent
from tracktiond.service.metrics import CatalogSnapshot, Metrics
from tracktiond.service.stages import Stages

log = logging.getLogger("tracktiond.service.daemon")

SNAPSHOT_INTERVAL = 2.0
IDLE_SNAPSHOT_INTERVAL = 60.0
RETIRE_INTERVAL = 600.0  # how often unfinished work that can never run is retired


class Bookkeeping:
    def __init__(self, metrics: Metrics, health: CatalogHealth) -> None:
        self.metrics = metrics
        self.health = health
        self.snapshot = CatalogSnapshot()
        self.recent_failures: deque[dict[str, Any]] = deque(maxlen=20)
        self.db_failures: list[dict[str, Any]] = []
        self.tag_counts: dict[str, int] = {}
        self.tag_problems: list[dict[str, Any]] = []
        # Set by the daemon once it has them: the catalog, the stages, a graph to wake.
        self.catalog: Catalog | None = None
        self.stages: Stages | None = None
        self.graph_wake: Callable[[], None] | None = None
        self._changed = anyio.Event()
        self._retired_at: float | None = None

    # ---- stage events ----------------------------------------------------------------------

    def on_event(self, event: StageEvent) -> None:
        self.mark_changed()
        self.metrics.observe(event)
        if event.failure_class is not None:
            self.recent_failures.appendleft(
                {
                    "path": event.path,
                    "job_id": event.job_id,
                    "stage": event.stage,
                    "class": event.failure_class,
                    "reason": event.reason or "",
                    "at": time.time(),
                    "final": event.final,
                }
            )
        if self.graph_wake is not None and _changes_graph(event):
            self.graph_wake()
        log.debug(
            "%s: %s %s",
            event.stage,
            event.outcome,
            event.path,
            extra={"path": event.path, "job_id": event.job_id, "outcome": event.outcome},
        )

    def mark_changed(self) -> None:
        """Something in the catalog changed: the snapshot is refreshed within 2 seconds."""
        self._changed.set()

    # ---- the snapshot ----------------------------------------------------------------------

    async def snapshot_loop(self) -> None:
        # Refresh when something changed (at most every SNAPSHOT_INTERVAL), else once a minute
        # (changes made by other instances sharing a PostgreSQL catalog): an idle daemon does
        # not query its catalog every two seconds.
        last_full = time.monotonic()
        while True:
            await anyio.sleep(SNAPSHOT_INTERVAL)
            if self._changed.is_set() or time.monotonic() - last_full >= IDLE_SNAPSHOT_INTERVAL:
                self._changed = anyio.Event()
                last_full = time.monotonic()
                await self.refresh()
            else:
                await self._ping()  # keeps /readyz and catalog_up honest when idle

    async def _ping(self) -> None:
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

    async def refresh(self) -> None:
        catalog = self.catalog
        if catalog is None:
            return
        stages = self.stages
        try:
            now = time.monotonic()
            if self._retired_at is None or now - self._retired_at >= RETIRE_INTERVAL:
                self._retired_at = now
                retired = await catalog.retire_orphaned_analyses()
                if retired:
                    log.info("retired %d analyses of audio no present file holds", retired)
                if stages is not None and stages.fingerprint is not None:
                    gone = await catalog.retire_orphaned_fingerprints()
                    if gone:
                        log.info("removed %d fingerprints of audio no file holds", gone)
            st = await catalog.status(failures=10)
            depth, oldest = await catalog.queue_stats()
            outbox_depth, outbox_oldest = await catalog.outbox_stats()
            if self.graph_wake is None and outbox_depth > 10_000:
                # No graph configured: nothing drains the outbox. A graph enabled later rebuilds
                # itself from the catalog (its marker node is missing), so nothing is lost.
                await catalog.clear_outbox()
                outbox_depth, outbox_oldest = 0, None
            tagging: dict[str, int] = {}
            tag_problems: list[dict[str, Any]] = []
            if stages is not None and stages.tagging is not None:
                from tracktiond.pipeline.tagging import options_fingerprint

                tagging = await catalog.tag_stats(options_fingerprint(stages.tagging.options))
                tag_problems = [
                    {"path": f.path, "status": f.error_class, "reason": f.reason}
                    for f in await catalog.tag_problems(10)
                ]
            tracklists: dict[str, dict[str, int]] = {}
            tracklist_failures: list[Failure] = []
            if stages is not None and stages.tracklists is not None:
                tracklists = await catalog.tracklist_counts()
                tracklist_failures = await catalog.tracklist_failures(10)
            fingerprint: dict[str, float] = {}
            if stages is not None and stages.fingerprint is not None:
                fingerprint = asdict(await catalog.index_stats())
            analysis: dict[str, int] = {}
            analysis_failures: list[Failure] = []
            if stages is not None and stages.analysis is not None:
                analysis = await catalog.analysis_stats(stages.analysis.settings.fingerprint())
                analysis_failures = await catalog.analysis_failures(10)
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
            duplicate_files=st.duplicate_files,
            queue_depth=depth,
            oldest_pending_epoch=oldest.timestamp() if oldest else None,
            analysis=analysis,
            outbox_depth=outbox_depth,
            outbox_oldest_epoch=outbox_oldest.timestamp() if outbox_oldest else None,
            tracklists=tracklists,
            fingerprint=fingerprint,
            taken=time.monotonic(),
        )
        self.tag_counts, self.tag_problems = tagging, tag_problems
        self.db_failures = (
            [_failure("ingest", f) for f in st.recent_failures]
            + [_failure("analysis", f) for f in analysis_failures]
            + [_failure("tracklists", f) for f in tracklist_failures]
        )
        self.update_busy()

    def update_busy(self) -> None:
        if self.stages is None:
            return
        if (ingest := self.stages.get("ingest")) is not None:
            self.metrics.workers_busy.set(ingest.busy)
        if (analysis := self.stages.get("analysis")) is not None:
            self.metrics.analysis_busy.set(analysis.busy)


def _changes_graph(event: StageEvent) -> bool:
    if event.stage == "ingest":
        return event.outcome != "unchanged"
    if event.stage == "tracklists":  # a new or retired tracklist version is in the outbox
        return event.outcome in ("new", "retired")
    return event.stage == "analysis" and event.outcome == "done"


def _failure(stage: str, f: Failure) -> dict[str, Any]:
    return {
        "path": f.path,
        "stage": stage,
        "class": f.error_class,
        "reason": f.reason,
        "at": f.at.isoformat(),
    }
