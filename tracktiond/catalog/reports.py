"""Maintenance and reporting: purging long-missing files, ``tracktiond status`` (counts and
recent failures), duplicates, and one file's recording for ``tracktiond show``."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import and_, delete, func, not_, or_, select

from tracktiond.catalog.base import StoreBase, _under
from tracktiond.catalog.models import FileState, files, metadata_entries, recordings, utcnow
from tracktiond.catalog.upkeep import _drop_if_orphan, _touch_graph
from tracktiond.catalog.values import CatalogStatus, DuplicateGroup, Failure


class ReportsMixin(StoreBase):
    """Status, duplicates, show, purge."""

    async def purge_missing(self, older_than: timedelta) -> int:
        cutoff = utcnow() - older_than
        async with self.engine.begin() as conn:
            result = await conn.execute(
                delete(files)
                .where(files.c.state == FileState.MISSING.value, files.c.missing_since < cutoff)
                .returning(files.c.recording_id)
            )
            affected = {r.recording_id for r in result if r.recording_id is not None}
            for rec_id in affected:
                await _drop_if_orphan(conn, rec_id)
            await _touch_graph(conn, affected)
            return len(affected)

    async def queue_stats(self, roots: Sequence[str] = ()) -> tuple[int, datetime | None]:
        """Pending files (under ``roots``, all when empty) and when the oldest became pending."""
        where = [files.c.state == FileState.PENDING.value]
        if roots:
            where.append(or_(*[_under(r) for r in roots]))
        async with self.engine.connect() as conn:
            row = (
                await conn.execute(select(func.count(), func.min(files.c.updated_at)).where(*where))
            ).one()
        oldest = row[1]
        if oldest is not None and oldest.tzinfo is None:
            oldest = oldest.replace(tzinfo=UTC)
        return int(row[0]), oldest

    async def pending_due(self, roots: Sequence[str] = ()) -> int:
        """Pending files (under ``roots``) that are due now or waiting out a retry's backoff;
        not those deferred because they are still being written (see results.py)."""
        now = utcnow()
        deferred = and_(
            files.c.error_class.is_(None),
            files.c.not_before.is_not(None),
            files.c.not_before > now,
        )
        where = [files.c.state == FileState.PENDING.value, not_(deferred)]
        if roots:
            where.append(or_(*[_under(r) for r in roots]))
        async with self.engine.connect() as conn:
            return int((await conn.execute(select(func.count()).where(*where))).scalar_one())

    async def status(self, failures: int = 10) -> CatalogStatus:
        st = CatalogStatus()
        async with self.engine.connect() as conn:
            rows = await conn.execute(select(files.c.state, func.count()).group_by(files.c.state))
            st.files_by_state = {state.value: 0 for state in FileState}
            st.files_by_state.update({r[0]: r[1] for r in rows})
            st.recordings = (
                await conn.execute(select(func.count()).select_from(recordings))
            ).scalar_one()
            dup = _duplicate_counts().subquery()
            agg = (
                await conn.execute(
                    select(func.count(), func.coalesce(func.sum(dup.c.n), 0)).select_from(dup)
                )
            ).one()
            st.duplicate_recordings, st.duplicate_files = int(agg[0]), int(agg[1])
            rows = await conn.execute(
                select(files.c.path, files.c.error_class, files.c.last_error, files.c.updated_at)
                .where(files.c.state == FileState.FAILED.value)
                .order_by(files.c.updated_at.desc(), files.c.id.desc())
                .limit(failures)
            )
            st.recent_failures = [
                Failure(r.path, r.error_class or "", r.last_error or "", r.updated_at) for r in rows
            ]
        return st

    async def duplicates(self, limit: int = 100) -> list[DuplicateGroup]:
        async with self.engine.connect() as conn:
            dup = _duplicate_counts().limit(limit).subquery()
            rows = await conn.execute(
                select(recordings.c.id, recordings.c.sha256_hash, recordings.c.size, files.c.path)
                .join(dup, dup.c.recording_id == recordings.c.id)
                .join(files, files.c.recording_id == recordings.c.id)
                .where(files.c.state != FileState.MISSING.value)
                .order_by(recordings.c.size.desc(), recordings.c.id, files.c.path)
            )
            groups: dict[uuid.UUID, DuplicateGroup] = {}
            for r in rows:
                g = groups.setdefault(r.id, DuplicateGroup(r.id, r.sha256_hash, r.size, []))
                g.paths.append(r.path)
            return list(groups.values())

    async def recording_for_path(self, path: str) -> dict[str, Any] | None:
        """The recording at ``path`` with its metadata, for `tracktiond show` and tests."""
        async with self.engine.connect() as conn:
            row = (
                await conn.execute(
                    select(
                        files,
                        recordings.c.sha256_hash,
                        recordings.c.xxh128_hash,
                        recordings.c.file_path.label("recording_path"),
                    )
                    .select_from(
                        files.outerjoin(recordings, files.c.recording_id == recordings.c.id)
                    )
                    .where(files.c.path == path)
                )
            ).first()
            if row is None:
                return None
            data = dict(row._mapping)
            meta: dict[str, str] = {}
            if row.recording_id is not None:
                for m in await conn.execute(
                    select(metadata_entries.c.key, metadata_entries.c.value).where(
                        metadata_entries.c.recording_id == row.recording_id
                    )
                ):
                    meta[m.key] = m.value
            data["metadata"] = meta
            return data


def _duplicate_counts() -> Any:
    return (
        select(files.c.recording_id, func.count().label("n"))
        .where(files.c.recording_id.is_not(None), files.c.state != FileState.MISSING.value)
        .group_by(files.c.recording_id)
        .having(func.count() > 1)
    )
