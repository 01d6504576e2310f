"""The lease queue: the one mechanism every stage's work goes through.

A queue is rows of a catalog table that carry four columns of their own (DESIGN invariant 1):
who holds the row (``owner``), until when (``expires``), not before when it may be tried again
(``not_before``) and how often it was tried (``attempts``). Claiming is one statement::

    UPDATE t SET owner = :me, expires = now + lease
     WHERE key IN (SELECT key ... due ... FOR UPDATE SKIP LOCKED LIMIT n) RETURNING ...

followed by at most one query for what the stage needs of all claimed rows (never one per row).
On PostgreSQL several instances claim disjoint rows without waiting for each other; on SQLite
the statement runs under the database write lock, which is just as exclusive.

Leases are heartbeats: short (a minute), and renewed by one loop for every running job of an
owner (``renew``), so no job loses its lease however long it runs, while the work of a dead
instance is free again a minute after its last beat. A failed attempt either frees the row
after a capped exponential backoff or, after ``max_attempts``, leaves it dead; what "dead" means
is the stage's own state column (a failed file, analysis or tag write).

Each queue is a subclass naming its table, key and lease columns, what makes a row due and what
a claimed job carries (``catalog.work`` holds the stages' queues)."""

from __future__ import annotations

import os
import secrets
import socket
from abc import ABC, abstractmethod
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Generic, TypeVar

from sqlalchemy import Column, Select, Table, func, or_, select, update
from sqlalchemy.engine import Row
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from tracktiond.catalog.models import utcnow

C = TypeVar("C")  # what a claim is asked with (roots, a settings fingerprint, ...)
J = TypeVar("J")  # what a claimed job carries to its stage

# A heartbeat lease: renewed every RENEW_EVERY while its job runs, so an owner that stops
# beating (kill -9, power loss, a partition) loses its work within LEASE.
LEASE = timedelta(seconds=60)
RENEW_EVERY = timedelta(seconds=15)


@dataclass(frozen=True, slots=True)
class Backoff:
    """Capped exponential backoff between attempts: base, 2 × base, 4 × base, ... ≤ cap."""

    base: float = 5.0
    cap: float = 300.0

    def delay(self, attempts: int) -> float:
        return float(min(self.cap, self.base * 2 ** max(0, attempts - 1)))


DEFAULT_BACKOFF = Backoff()


@dataclass(frozen=True, slots=True)
class Attempt:
    """What a finished attempt leaves on its row: the values to write, and whether the row is
    due again later (``retry``) or dead (neither done nor retried)."""

    values: dict[str, Any]
    retry: bool


class LeaseQueue(ABC, Generic[C, J]):
    """One stage's work queue over one table. Subclasses say what is due and what a job is."""

    name: str  # the stage's name: "ingest", "analysis", "tags"
    table: Table
    key: Column[Any]
    owner: Column[Any]
    expires: Column[Any]
    not_before: Column[Any]
    attempts: Column[Any]

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine

    # -- what a subclass says ----------------------------------------------------------------

    @abstractmethod
    def due(self, context: C) -> Select[Any]:
        """SELECT of the keys of due rows, best first (the lease conditions are added here)."""

    def returning(self) -> Sequence[Column[Any]]:
        """The columns of the claimed rows that ``jobs`` is handed."""
        return (self.key,)

    @abstractmethod
    async def jobs(self, conn: AsyncConnection, rows: Sequence[Row[Any]], context: C) -> list[J]:
        """The jobs for the claimed ``rows``: at most one further query for all of them."""

    # -- the mechanism -----------------------------------------------------------------------

    def free(self, now: datetime) -> list[Any]:
        """Not leased (or the lease ran out) and not waiting out a backoff."""
        return [
            or_(self.expires.is_(None), self.expires < now),
            or_(self.not_before.is_(None), self.not_before <= now),
        ]

    def held_by(self, owner: str) -> Any:
        return self.owner == owner

    async def claim(self, owner: str, limit: int, context: C, lease: timedelta = LEASE) -> list[J]:
        """Lease up to ``limit`` due rows to ``owner`` and return their jobs."""
        if limit <= 0:
            return []
        now = utcnow()
        candidates = (
            self.due(context)
            .where(*self.free(now))
            .limit(limit)
            .with_for_update(skip_locked=True, of=self.table)
        )
        async with self.engine.begin() as conn:
            rows = (
                await conn.execute(
                    update(self.table)
                    .where(self.key.in_(candidates.scalar_subquery()))
                    .values({self.owner.name: owner, self.expires.name: now + lease})
                    .returning(*self.returning())
                )
            ).all()
            return await self.jobs(conn, rows, context) if rows else []

    async def renew(self, owner: str, lease: timedelta = LEASE) -> int:
        """Extend every lease ``owner`` holds in this queue: the heartbeat of running jobs."""
        async with self.engine.begin() as conn:
            result = await conn.execute(
                update(self.table)
                .where(self.held_by(owner))
                .values({self.expires.name: utcnow() + lease})
            )
            return int(result.rowcount or 0)

    async def release(self, owners: Sequence[str]) -> int:
        """Give the rows held by ``owners`` back, due at once (a graceful stop, dead owners)."""
        if not owners:
            return 0
        async with self.engine.begin() as conn:
            result = await conn.execute(
                update(self.table)
                .where(self.owner.in_(list(owners)))
                .values({self.owner.name: None, self.expires.name: None})
            )
            return int(result.rowcount or 0)

    async def owners(self, prefix: str) -> set[str]:
        """Distinct owners of leases in this queue whose id starts with ``prefix``."""
        upper = prefix[:-1] + chr(ord(prefix[-1]) + 1)
        async with self.engine.connect() as conn:
            rows = await conn.execute(
                select(self.owner).where(self.owner >= prefix, self.owner < upper).distinct()
            )
            return {r[0] for r in rows}

    async def due_count(self, context: C) -> int:
        """How many rows are due for ``context``, leased or waiting out a backoff included:
        the work a one-shot run still has ahead of it."""
        async with self.engine.connect() as conn:
            due = self.due(context).order_by(None).subquery()
            return int((await conn.execute(select(func.count()).select_from(due))).scalar_one())

    async def lease_of(self, key: Any) -> tuple[str | None, datetime | None]:
        """(owner, expiry) of one row: for tests and diagnostics."""
        async with self.engine.connect() as conn:
            row = (
                await conn.execute(select(self.owner, self.expires).where(self.key == key))
            ).first()
        return (row[0], row[1]) if row is not None else (None, None)

    # -- what an attempt leaves behind (written by the stage's record, in its transaction) ----

    @classmethod
    def done(cls) -> dict[str, Any]:
        """Values for a row whose job is finished: lease freed, attempts reset."""
        return {
            cls.owner.name: None,
            cls.expires.name: None,
            cls.not_before.name: None,
            cls.attempts.name: 0,
        }

    @classmethod
    def deferred(cls, until: datetime) -> dict[str, Any]:
        """Values for a row put back untried: lease freed, due again at ``until``, no attempt
        counted (the job could not start, e.g. its file was still being written)."""
        return {cls.owner.name: None, cls.expires.name: None, cls.not_before.name: until}

    @classmethod
    def failed(
        cls,
        attempts_before: int,
        *,
        retryable: bool,
        max_attempts: int,
        now: datetime,
        backoff: Backoff = DEFAULT_BACKOFF,
    ) -> Attempt:
        """Values for a row whose attempt failed: due again after the backoff while it is
        retryable and has attempts left, dead otherwise (the count stays, to be reported)."""
        attempts = attempts_before + 1
        retry = retryable and attempts < max_attempts
        values: dict[str, Any] = {
            cls.owner.name: None,
            cls.expires.name: None,
            cls.attempts.name: attempts,
            cls.not_before.name: now + timedelta(seconds=backoff.delay(attempts))
            if retry
            else None,
        }
        return Attempt(values, retry)


# -- owners: who holds a lease -----------------------------------------------------------------


def make_owner_id() -> str:
    """host:pid:nonce — unique per process run; host and pid let a restart free dead leases."""
    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}"


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def dead_local_owners(owners: Iterable[str]) -> list[str]:
    """The owners among ``owners`` that were processes on this host and no longer run."""
    host = socket.gethostname()
    dead = []
    for owner in owners:
        parts = owner.split(":")
        if len(parts) < 3 or parts[0] != host:
            continue
        try:
            pid = int(parts[1])
        except ValueError:
            continue
        if pid != os.getpid() and not _pid_alive(pid):
            dead.append(owner)
    return sorted(dead)
