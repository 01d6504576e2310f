"""The catalog store: every query tracktiond runs, behind typed methods.

Callers hand in and get back plain dataclasses; connections and transactions never leave this
package. Statements are SQLAlchemy Core so one code path serves SQLite and PostgreSQL.

:class:`Catalog` is composed of one mixin per concern, each in its own module, each working
through ``self.engine`` (declared by ``base.StoreBase``):

- ``discovery``: reconciling with a directory walk: known files by directory and by inode, new
  files queued, changed, renamed, restored and missing files, entries the walk could not stat;
- ``leases`` and ``work``: the lease queue, and one instance of it per stage (ingest, analysis,
  tag write-back), on ``Catalog.ingest_queue`` / ``analysis_queue`` / ``tag_queue``;
- ``results``: applying ingest results: new content, duplicates, moves, edits, failures
  (``batch``: a first scan's new content in a few statements per batch);
- ``analyses``: analysis results (one row per audio stream) and their counts;
- ``tagstate``: tag write-back: which files' tags are in line with their analysis, and why not;
- ``outbox``: the graph outbox and what the graph shows of each recording;
- ``reports``: status, queue depth, duplicates, ``show``, and purging long-missing files;
- ``plans``: organise plans, their journal, and the inbox queue (``Catalog.organise_queue``);
- ``sources`` and ``tracklists``: the sheets and lists tracklists are read from (the tracklist
  queue, ``Catalog.tracklist_queue``), tracklist versions, entries and matches (``wordindex``:
  the search words matching looks candidates up by; ``tracklistvalues``: their dataclasses);
- ``fingerprints``: the fingerprint index (posting batches per group of tracks), the
  fingerprint and identification queues (``Catalog.fingerprint_queue`` / ``identify_queue``)
  and the sets' "auto" tracklists.

Shared by them: ``values`` (the dataclasses callers see), ``base`` (the base class and statement
helpers) and ``upkeep`` (writes inside a transaction that keep a recording's rows consistent).
The value types are re-exported here, so ``tracktiond.catalog.store`` stays the one import."""

from __future__ import annotations

import socket
from collections.abc import Sequence
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from tracktiond.catalog import migrate
from tracktiond.catalog.analyses import AnalysisResultsMixin
from tracktiond.catalog.base import IN_CHUNK
from tracktiond.catalog.database import create_engine
from tracktiond.catalog.discovery import DiscoveryMixin
from tracktiond.catalog.fingerprints import FingerprintsMixin
from tracktiond.catalog.leases import LeaseQueue, dead_local_owners
from tracktiond.catalog.outbox import GraphOutboxMixin
from tracktiond.catalog.plans import OrganiseMixin
from tracktiond.catalog.reports import ReportsMixin
from tracktiond.catalog.results import ResultsMixin
from tracktiond.catalog.sources import SourcesMixin
from tracktiond.catalog.tagstate import TagStateMixin
from tracktiond.catalog.tracklists import TracklistsMixin
from tracktiond.catalog.values import (
    AnalysisJob,
    CatalogStatus,
    DuplicateGroup,
    Failure,
    Job,
    JobResult,
    KnownFile,
    Observed,
    Outcome,
    RecordingProjection,
    TagJob,
    to_int64,
)
from tracktiond.catalog.work import (
    AnalysisQueue,
    FingerprintQueue,
    IdentifyQueue,
    IngestQueue,
    OrganiseQueue,
    TagQueue,
    TracklistQueue,
)

__all__ = [
    "IN_CHUNK",
    "AnalysisJob",
    "Catalog",
    "CatalogStatus",
    "DuplicateGroup",
    "Failure",
    "Job",
    "JobResult",
    "KnownFile",
    "Observed",
    "Outcome",
    "RecordingProjection",
    "TagJob",
    "to_int64",
]


class Catalog(
    DiscoveryMixin,
    ResultsMixin,
    AnalysisResultsMixin,
    TagStateMixin,
    GraphOutboxMixin,
    ReportsMixin,
    OrganiseMixin,
    SourcesMixin,
    TracklistsMixin,
    FingerprintsMixin,
):
    """The catalog database. Open with ``await Catalog.open(url)``; close with ``close()``."""

    def __init__(self, engine: AsyncEngine, url: str) -> None:
        self.engine = engine
        self.url = url
        self.dialect = engine.dialect.name
        self.ingest_queue = IngestQueue(engine)
        self.analysis_queue = AnalysisQueue(engine)
        self.tag_queue = TagQueue(engine)
        self.organise_queue = OrganiseQueue(engine)
        self.tracklist_queue = TracklistQueue(engine)
        self.fingerprint_queue = FingerprintQueue(engine)
        self.identify_queue = IdentifyQueue(engine)
        self.queues: tuple[LeaseQueue[Any, Any], ...] = (
            self.ingest_queue,
            self.analysis_queue,
            self.tag_queue,
            self.organise_queue,
            self.tracklist_queue,
            self.fingerprint_queue,
            self.identify_queue,
        )

    @classmethod
    async def open(cls, url: str, *, upgrade: bool = True) -> Catalog:
        """Connect (and migrate, with ``upgrade``). A catalog that cannot be reached or used
        raises CatalogUnavailable: the engine translates driver errors (see database.py)."""
        engine = create_engine(url)
        catalog = cls(engine, url)
        try:
            if upgrade:
                await migrate.upgrade(engine)
            else:
                await catalog.ping()
        except Exception:
            await engine.dispose()
            raise
        return catalog

    async def close(self) -> None:
        await self.engine.dispose()

    async def ping(self) -> None:
        async with self.engine.connect() as conn:
            await conn.execute(text("SELECT 1"))

    async def schema_revision(self) -> str | None:
        return await migrate.current_revision(self.engine)

    # -- leases across every queue -------------------------------------------------------------

    async def release_leases(self, owners: Sequence[str]) -> int:
        """Give the work ``owners`` hold in any queue back (a graceful stop, dead owners)."""
        return sum([await queue.release(owners) for queue in self.queues])

    async def lease_owners(self, prefix: str) -> list[str]:
        """Distinct owners of leases in any queue whose id starts with ``prefix``."""
        owners: set[str] = set()
        for queue in self.queues:
            owners |= await queue.owners(prefix)
        return sorted(owners)

    async def release_dead_local_leases(self) -> int:
        """Leases held by earlier processes on this host that no longer run (kill -9, crash)."""
        dead = dead_local_owners(await self.lease_owners(f"{socket.gethostname()}:"))
        return await self.release_leases(dead)
