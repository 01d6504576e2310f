"""The catalog store: every query tracktiond runs, behind typed methods.

Callers hand in and get back plain dataclasses; connections and transactions never leave this
package. Statements are SQLAlchemy Core so one code path serves SQLite and PostgreSQL.

:class:`Catalog` is composed of one mixin per concern, each in its own module, each working
through ``self.engine`` (declared by ``base.StoreBase``):

- ``discovery``: reconciling with a directory walk: known files by directory and by inode, new
  files queued, changed, renamed, restored and missing files, entries the walk could not stat;
- ``queue``: the ingest work queue: leases on pending files, renewed and released; its depth;
- ``results``: applying ingest results: new content, duplicates, moves, edits, failures
  (``batch``: a first scan's new content in a few statements per batch);
- ``analysis_queue``: the analysis queue (one row per audio stream) and its results;
- ``tagstate``: tag write-back: which files' tags are in line with their analysis, and why not;
- ``outbox``: the graph outbox and what the graph shows of each recording;
- ``reports``: status, duplicates, ``show``, and purging long-missing files.

Shared by them: ``values`` (the dataclasses callers see), ``base`` (the base class and statement
helpers) and ``upkeep`` (writes inside a transaction that keep a recording's rows consistent).
The value types are re-exported here, so ``tracktiond.catalog.store`` stays the one import."""

from __future__ import annotations

from sqlalchemy import text
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.exc import InterfaceError as SAInterfaceError
from sqlalchemy.ext.asyncio import AsyncEngine

from tracktiond.catalog import migrate
from tracktiond.catalog.analysis_queue import AnalysisQueueMixin
from tracktiond.catalog.base import IN_CHUNK
from tracktiond.catalog.database import create_engine
from tracktiond.catalog.discovery import DiscoveryMixin
from tracktiond.catalog.outbox import GraphOutboxMixin
from tracktiond.catalog.queue import WorkQueueMixin
from tracktiond.catalog.reports import ReportsMixin
from tracktiond.catalog.results import ResultsMixin
from tracktiond.catalog.tagstate import TagStateMixin
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
from tracktiond.config import redact_url
from tracktiond.errors import CatalogUnavailable

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

_TRANSIENT_DB_ERRORS = (OperationalError, SAInterfaceError, OSError, ConnectionError)


class Catalog(
    DiscoveryMixin,
    WorkQueueMixin,
    ResultsMixin,
    AnalysisQueueMixin,
    TagStateMixin,
    GraphOutboxMixin,
    ReportsMixin,
):
    """The catalog database. Open with ``await Catalog.open(url)``; close with ``close()``."""

    def __init__(self, engine: AsyncEngine, url: str) -> None:
        self.engine = engine
        self.url = url
        self.dialect = engine.dialect.name

    @classmethod
    async def open(cls, url: str, *, upgrade: bool = True) -> Catalog:
        engine = create_engine(url)
        catalog = cls(engine, url)
        try:
            if upgrade:
                await migrate.upgrade(engine)
            else:
                await catalog.ping()
        except _TRANSIENT_DB_ERRORS as exc:
            await engine.dispose()
            raise CatalogUnavailable(
                f"catalog {redact_url(url)} unreachable: {_reason(exc)}"
            ) from exc
        except DBAPIError as exc:
            await engine.dispose()
            raise CatalogUnavailable(f"catalog {redact_url(url)} unusable: {_reason(exc)}") from exc
        return catalog

    async def close(self) -> None:
        await self.engine.dispose()

    async def ping(self) -> None:
        async with self.engine.connect() as conn:
            await conn.execute(text("SELECT 1"))

    async def schema_revision(self) -> str | None:
        return await migrate.current_revision(self.engine)


def _reason(exc: BaseException) -> str:
    orig = getattr(exc, "orig", None)
    text_ = str(orig or exc).strip().splitlines()
    return text_[0] if text_ else type(exc).__name__
