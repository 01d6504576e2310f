"""Keeping the graph a projection of the catalog (DESIGN invariant 6).

The catalog writes a ``graph_outbox`` row in the same transaction as every change that affects a
recording's projection. GraphSync drains those rows in batches: it loads the recordings' current
projections, writes them (model.write_batch: idempotent auto-commit statements), and only then
deletes the rows. A crash or outage at any point leaves the rows in place and the next attempt
rewrites the same recordings, so nothing is lost and nothing is applied twice in a way that
matters. Because a projection is read *after* its outbox row, the last write always shows the
latest state; a change committed meanwhile has written a newer row that a later batch handles.

Cataloging never waits for this: the outbox is a table, and GraphSync only reads and deletes it.
While the graph is down, GraphSync backs off (``up`` False, ``last_error`` says why) and the
outbox grows; when the graph is back it catches up.

A marker node records whether the graph holds a complete projection. When it is missing (a new
or wiped graph server, a first start on an existing catalog), from an older model version, or
left "rebuilding" by a rebuild that died, GraphSync rebuilds from the catalog before draining.
"""

from __future__ import annotations

import contextlib
import logging
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping
from datetime import UTC, datetime
from functools import partial
from typing import Any, TypeVar

import anyio
from anyio.abc import TaskStatus

from tracktiond.catalog.health import CatalogHealth, guarded
from tracktiond.catalog.store import Catalog, RecordingProjection
from tracktiond.errors import CatalogUnavailable
from tracktiond.graph import model
from tracktiond.graph.client import GraphClient
from tracktiond.graph.errors import GraphError, GraphUnavailable

__all__ = ["GraphSync"]

log = logging.getLogger(__name__)

T = TypeVar("T")

# A "rebuilding" marker whose heartbeat is older than this belongs to a rebuild that died.
REBUILD_STALE_SECONDS = 300.0


class GraphSync:
    """Drains the catalog's graph outbox into the graph; see the module docstring.

    Counters (read them for metrics and /status; they only grow): ``batches`` written,
    ``failures`` (attempts that failed: graph or catalog unreachable, or a bug), ``synced``
    recordings written or deleted, ``skipped`` recordings the server rejected, ``rebuilds``.
    """

    def __init__(
        self,
        catalog: Catalog,
        client: GraphClient,
        *,
        batch_size: int = 200,
        poll_interval: float = 1.0,
        backoff_initial: float = 0.5,
        backoff_max: float = 30.0,
        marker_check_interval: float = 60.0,
        health: CatalogHealth | None = None,
    ) -> None:
        if batch_size < 1:
            raise ValueError("batch_size must be at least 1")
        self.catalog = catalog
        self.client = client
        self.batch_size = batch_size
        self.poll_interval = poll_interval
        self.backoff_initial = backoff_initial
        self.backoff_max = backoff_max
        self.marker_check_interval = marker_check_interval
        self.health = health
        # Tells our own interrupted rebuild apart from another process's running one.
        self.owner = uuid.uuid4().hex
        self.up = False
        self.last_error: str | None = "not connected yet"
        self.batches = 0
        self.failures = 0
        self.synced = 0
        self.skipped = 0
        self.rebuilds = 0
        self.last_sync: datetime | None = None
        self._prepared = False
        self._orphans_collected = False
        self._marker_checked_at = 0.0
        self._wake = anyio.Event()
        self._rebuild_lock = anyio.Lock()

    # ---- public API ------------------------------------------------------------------------

    def wake(self) -> None:
        """Sync now instead of at the next poll (e.g. right after a catalog commit)."""
        self._wake.set()

    def status(self) -> dict[str, Any]:
        """The sync's state as plain JSON-able values, for /status."""
        return {
            "uri": self.client.uri,
            "dialect": self.client.dialect.name if self.client.connected else None,
            "up": self.up,
            "last_error": self.last_error,
            "batches": self.batches,
            "failures": self.failures,
            "synced": self.synced,
            "skipped": self.skipped,
            "rebuilds": self.rebuilds,
            "last_sync": self.last_sync.isoformat() if self.last_sync else None,
        }

    async def ensure_schema(self) -> None:
        """Create the graph's constraints and indexes where missing (idempotent)."""
        created = await model.ensure_schema(self.client)
        if created:
            log.info("graph schema: %d statements run", len(created))

    async def sync_once(self) -> int:
        """Write one batch of outbox rows to the graph; returns how many rows it consumed.

        Raises GraphUnavailable (graph down) or CatalogUnavailable (catalog down); the rows stay.
        """
        rows = await self._catalog(partial(self.catalog.outbox_batch, self.batch_size))
        if not rows:
            return 0
        rec_ids = list(dict.fromkeys(rec_id for _, rec_id in rows))
        projections = await self._catalog(partial(self.catalog.recording_projections, rec_ids))
        await self._write(projections)
        # Only now: a crash before this line replays the batch, which is harmless.
        await self._catalog(partial(self.catalog.delete_outbox, [i for i, _ in rows]))
        self.batches += 1
        self.synced += len(rec_ids)
        self.last_sync = datetime.now(UTC)
        self._mark_up()
        return len(rows)

    async def drain(self) -> int:
        """Prepare the graph (schema, marker) and sync until the outbox is empty; one-shot."""
        try:
            await self._prepare()
            total = 0
            while n := await self.sync_once():
                total += n
        except GraphUnavailable as exc:
            self._mark_down(exc)
            raise
        return total

    async def rebuild(self) -> int:
        """Recreate the graph from the catalog; returns the number of recordings projected.

        The outbox is emptied first: every change committed before that is covered by the
        projections read afterwards, and every later change writes a new row.
        """
        async with self._rebuild_lock:
            await self.client.connect()
            await self.ensure_schema()
            await model.set_marker(self.client, "rebuilding", self.owner)
            try:
                count = await self._reproject_all()
            except BaseException:
                # Best effort, so the next check (ours or another process's) rebuilds at once
                # instead of waiting for the heartbeat to go stale; a crash skips this.
                with (
                    anyio.CancelScope(shield=True),
                    anyio.move_on_after(5),
                    contextlib.suppress(GraphError),
                ):
                    await model.set_marker(self.client, "interrupted", self.owner)
                raise
            await model.set_marker(self.client, "complete", self.owner)
            self.rebuilds += 1
            self._orphans_collected = True  # a fresh graph has none
            self._marker_checked_at = time.monotonic()
            self._mark_up()
            log.info("graph rebuild: %d recordings projected", count)
            return count

    async def _reproject_all(self) -> int:
        await self._catalog(self.catalog.clear_outbox)
        deleted = await model.clear_graph(self.client)
        log.info("graph rebuild: cleared %d nodes", deleted)
        after: uuid.UUID | None = None
        count = 0
        while True:
            ids = await self._catalog(partial(self.catalog.recording_ids, after, self.batch_size))
            if not ids:
                return count
            projections = await self._catalog(partial(self.catalog.recording_projections, ids))
            await self._write(projections)
            count += sum(1 for p in projections.values() if p is not None)
            after = ids[-1]
            await model.set_marker(self.client, "rebuilding", self.owner)  # the heartbeat

    async def run(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        """Sync forever: poll the outbox, back off while the graph or catalog is down.

        Reports started immediately: the daemon is ready whether or not the graph is.
        """
        task_status.started()
        delay = self.backoff_initial
        while True:
            try:
                if not self._prepared:
                    await self._prepare()
                elif time.monotonic() - self._marker_checked_at >= self.marker_check_interval:
                    await self._check_marker()
                consumed = await self.sync_once()
                delay = self.backoff_initial
                if consumed == 0:
                    await self._idle()
                continue
            except GraphUnavailable as exc:
                self._mark_down(exc)
            except CatalogUnavailable as exc:
                self.failures += 1
                log.warning("graph sync waits for the catalog: %s", exc)
            except Exception as exc:  # a bug: keep the daemon up, say so, try again later
                self.failures += 1
                self.last_error = f"{type(exc).__name__}: {exc}"
                log.exception("graph sync failed")
            await anyio.sleep(delay)
            delay = min(self.backoff_max, delay * 2)

    # ---- internals -------------------------------------------------------------------------

    async def _prepare(self) -> None:
        self._prepared = False
        await self.client.connect()
        await self.ensure_schema()
        await self._check_marker()
        if not self._orphans_collected:
            removed = await model.collect_orphans(self.client)
            if removed:
                log.info("graph: removed %d unreferenced nodes", removed)
            self._orphans_collected = True
        self._prepared = True
        self._mark_up()

    async def _check_marker(self) -> None:
        marker = await model.read_marker(self.client)
        self._marker_checked_at = time.monotonic()
        reason = _rebuild_reason(marker, self.owner)
        if reason is not None:
            log.warning("graph %s: %s; rebuilding it from the catalog", self.client.uri, reason)
            await self.rebuild()

    async def _write(self, projections: Mapping[uuid.UUID, RecordingProjection | None]) -> None:
        try:
            await model.write_batch(self.client, model.build_batch(projections))
            return
        except GraphUnavailable:
            raise
        except Exception as exc:  # rejected by the server, or a bug building its rows
            # If the server itself is the problem this raises GraphUnavailable: back off.
            await self.client.ping()
            log.warning(
                "graph rejected a batch of %d recordings (%s); writing them one by one",
                len(projections),
                exc,
            )
        for rec_id, proj in projections.items():
            try:
                await model.write_batch(self.client, model.build_batch({rec_id: proj}))
            except GraphUnavailable:
                raise
            except Exception:
                # Dropped from this sync so it cannot block the outbox forever; the next
                # change to the recording or a rebuild tries again.
                self.skipped += 1
                log.exception(
                    "graph: cannot write recording %s (%s); skipped",
                    rec_id,
                    proj.file_path if proj else "deleted",
                )

    async def _catalog(self, fn: Callable[[], Awaitable[T]]) -> T:
        # Without a health watcher the catalog's own CatalogUnavailable reaches run(), which
        # backs off; the engine raises nothing else for an outage.
        return await guarded(self.health, fn)

    async def _idle(self) -> None:
        with anyio.move_on_after(self.poll_interval):
            await self._wake.wait()
        if self._wake.is_set():
            self._wake = anyio.Event()

    def _mark_up(self) -> None:
        if not self.up:
            log.info("graph %s is up", self.client.uri)
        self.up = True
        self.last_error = None

    def _mark_down(self, exc: BaseException) -> None:
        self.failures += 1
        self._prepared = False
        if self.up or self.last_error != str(exc):
            log.warning("graph %s unavailable: %s; retrying with backoff", self.client.uri, exc)
        self.up = False
        self.last_error = str(exc)


def _rebuild_reason(marker: dict[str, Any] | None, owner: str) -> str | None:
    """Why the graph needs a rebuild, or None when its projection is complete or in progress."""
    if marker is None:
        return "no tracktiond projection in the graph"
    version = marker.get("model_version")
    if not isinstance(version, int) or version < model.MODEL_VERSION:
        return f"graph model version {version}, this tracktiond writes {model.MODEL_VERSION}"
    if version > model.MODEL_VERSION:
        # A newer tracktiond owns this graph; rebuilding to the old model would fight it.
        log.warning("graph written by a newer tracktiond (model version %s)", version)
        return None
    state = marker.get("state")
    if state == "complete":
        return None
    heartbeat = marker.get("heartbeat")
    if (
        state == "rebuilding"
        and marker.get("owner") != owner
        and isinstance(heartbeat, int | float)
        and time.time() - heartbeat < REBUILD_STALE_SECONDS
    ):
        return None  # another process is rebuilding right now
    return "a rebuild was interrupted"
