"""What every part of the store shares: the base class of its mixins, and statement helpers
(chunked IN lists, path ranges, the known-file row, dialect-specific inserts).

Private to the catalog package: the underscored names are imported by its modules only."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from sqlalchemy import String, and_, or_, select, type_coerce
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncEngine

from tracktiond.catalog.models import files
from tracktiond.catalog.values import KnownFile, Observed, to_int64

# How many bound parameters one IN (...) may carry; SQLite's default limit is 32766.
IN_CHUNK = 900


class StoreBase:
    """The attributes every mixin of :class:`tracktiond.catalog.store.Catalog` works with;
    ``Catalog.__init__`` sets them."""

    engine: AsyncEngine
    url: str
    dialect: str  # the SQLAlchemy dialect name: "sqlite" or "postgresql"


def _chunks(items: Sequence[Any] | Iterable[Any], size: int) -> Iterable[list[Any]]:
    batch: list[Any] = []
    for item in items:
        batch.append(item)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch


def _under(root: str) -> Any:
    # Path range instead of LIKE: no escaping of % and _, and it uses the unique index.
    root = root.rstrip("/") or "/"
    prefix = root if root == "/" else root + "/"
    upper = prefix[:-1] + chr(ord("/") + 1)
    return or_(files.c.path == root, and_(files.c.path >= prefix, files.c.path < upper))


_KNOWN_COLUMNS = 9


def _known_select() -> Any:
    return select(
        files.c.id,
        files.c.path,
        files.c.size,
        files.c.mtime_ns,
        files.c.ctime_ns,
        files.c.inode,
        files.c.device,
        files.c.state,
        # Raw, not through the Uuid type's result processing: see KnownFile.recording_ref.
        type_coerce(files.c.recording_id, String).label("recording_ref"),
    )


def _known(row: Any) -> KnownFile:
    # Positional: the columns of _known_select(), in the order of KnownFile's fields (a query
    # may add columns after them).
    return KnownFile(*row[:_KNOWN_COLUMNS])


def _stat_values(o: Observed) -> dict[str, int]:
    return {
        "size": o.size,
        "mtime_ns": o.mtime_ns,
        "ctime_ns": o.ctime_ns,
        "inode": to_int64(o.inode),
        "device": to_int64(o.device),
    }


def _dialect_insert(dialect: str, table: Any) -> Any:
    module = postgresql if dialect == "postgresql" else sqlite
    return module.insert(table)
