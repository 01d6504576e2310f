"""The ingest work queue: pending file rows, leased to workers.

Pending work lives in the database (DESIGN invariant 1). A claim is a lease with an expiry, so
work held by an instance that died goes back to the queue when the lease runs out; leases are
renewed while work is in progress and released on a graceful stop. Releasing and listing
leases covers the analysis queue too."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

from sqlalchemy import func, or_, select, update

from tracktiond.catalog.base import StoreBase, _under
from tracktiond.catalog.models import FileState, analyses, files, utcnow
from tracktiond.catalog.values import Job


class WorkQueueMixin(StoreBase):
    """Claiming pending files, and the leases on them."""

    async def pending_jobs(self, roots: Sequence[str], after_id: int, limit: int) -> list[Job]:
        """Pending rows under ``roots`` (all when empty), in id order, for draining the queue."""
        where = [files.c.state == FileState.PENDING.value, files.c.id > after_id]
        if roots:
            where.append(or_(*[_under(r) for r in roots]))
        async with self.engine.connect() as conn:
            rows = await conn.execute(
                select(files.c.id, files.c.path).where(*where).order_by(files.c.id).limit(limit)
            )
            return [Job(r.id, r.path) for r in rows]

    async def claim(
        self, owner: str, limit: int, lease: timedelta, roots: Sequence[str] = ()
    ) -> list[Job]:
        """Lease up to ``limit`` pending files to ``owner``.

        One UPDATE ... WHERE id IN (SELECT ... FOR UPDATE SKIP LOCKED): on PostgreSQL several
        instances claim disjoint rows without waiting for each other; on SQLite the statement
        runs under the database write lock, which makes it just as exclusive.
        """
        now = utcnow()
        where = [
            files.c.state == FileState.PENDING.value,
            or_(files.c.lease_expires.is_(None), files.c.lease_expires < now),
            or_(files.c.not_before.is_(None), files.c.not_before <= now),
        ]
        if roots:
            where.append(or_(*[_under(r) for r in roots]))
        candidates = (
            select(files.c.id)
            .where(*where)
            .order_by(files.c.id)
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
        async with self.engine.begin() as conn:
            rows = await conn.execute(
                update(files)
                .where(files.c.id.in_(candidates.scalar_subquery()))
                .values(lease_owner=owner, lease_expires=now + lease)
                .returning(files.c.id, files.c.path)
            )
            jobs = [Job(r.id, r.path) for r in rows]
        return sorted(jobs, key=lambda j: j.file_id)

    async def renew_leases(self, owner: str, lease: timedelta) -> int:
        async with self.engine.begin() as conn:
            result = await conn.execute(
                update(files)
                .where(files.c.lease_owner == owner)
                .values(lease_expires=utcnow() + lease)
            )
            return int(result.rowcount or 0)

    async def release_leases(self, owners: Sequence[str]) -> int:
        """Give leased work back to its queue — files and analyses alike (graceful stop, or
        owners known to be dead)."""
        if not owners:
            return 0
        released = 0
        async with self.engine.begin() as conn:
            for table in (files, analyses):
                result = await conn.execute(
                    update(table)
                    .where(table.c.lease_owner.in_(list(owners)))
                    .values(lease_owner=None, lease_expires=None)
                )
                released += int(result.rowcount or 0)
        return released

    async def lease_owners(self, prefix: str) -> list[str]:
        """Distinct owners of leases in any queue whose id starts with ``prefix`` (this host's)."""
        upper = prefix[:-1] + chr(ord(prefix[-1]) + 1)
        owners: set[str] = set()
        async with self.engine.connect() as conn:
            for table in (files, analyses):
                rows = await conn.execute(
                    select(table.c.lease_owner)
                    .where(table.c.lease_owner >= prefix, table.c.lease_owner < upper)
                    .distinct()
                )
                owners.update(r.lease_owner for r in rows)
        return sorted(owners)

    async def queue_stats(self, roots: Sequence[str] = ()) -> tuple[int, datetime | None]:
        """Pending files and when the oldest of them became pending."""
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
