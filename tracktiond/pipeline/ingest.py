"""The worker pool: claims pending files from the catalog, ingests them, records the results.

The catalog is the queue (DESIGN invariant 1): work is claimed with a lease, a bounded number of
jobs is held in memory, and results are written back in batched transactions that also release
the lease. A crash loses nothing: unfinished leases expire (or are released at the next start on
the same host) and the rows are claimed again.

    claimer --jobs (bounded)--> N workers (threads for blocking I/O) --results--> writer
"""

from __future__ import annotations

import logging
import os
import secrets
import socket
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from functools import partial
from typing import TypeVar

import anyio
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

from tracktiond.catalog.health import CatalogHealth, guarded
from tracktiond.catalog.store import Catalog, Job, JobResult, Outcome
from tracktiond.errors import FailureClass, FileJobError
from tracktiond.media import probe
from tracktiond.pipeline.wakeup import Wakeup

log = logging.getLogger(__name__)
T = TypeVar("T")

WRITE_BATCH = 256
LINGER_POLL = 0.01  # seconds between looks for more results while a batch lingers
LEASE = timedelta(seconds=120)


def make_owner_id() -> str:
    """host:pid:nonce — unique per process run; host and pid let a restart free dead leases."""
    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}"


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


async def release_dead_local_leases(catalog: Catalog) -> int:
    """Leases held by earlier processes on this host that no longer run (kill -9, crash)."""
    dead = []
    for owner in await catalog.lease_owners(f"{socket.gethostname()}:"):
        try:
            pid = int(owner.split(":")[1])
        except (IndexError, ValueError):
            continue
        if pid != os.getpid() and not pid_alive(pid):
            dead.append(owner)
    return await catalog.release_leases(dead)


def exponential_backoff(attempts: int) -> float:
    return float(min(300, 5 * 2 ** max(0, attempts - 1)))


@dataclass(slots=True)
class PoolStats:
    busy: int = 0
    in_flight: int = 0
    processed: int = 0
    outcomes: dict[str, int] = field(default_factory=dict)


ResultHook = Callable[[Job, Outcome, JobResult, float], None]


class IngestPool:
    def __init__(
        self,
        catalog: Catalog,
        *,
        concurrency: int,
        max_attempts: int,
        owner: str | None = None,
        roots: Sequence[str] = (),
        retry_delay: Callable[[int], float] = exponential_backoff,
        on_result: ResultHook | None = None,
        idle_poll: float = 5.0,
        health: CatalogHealth | None = None,
        max_in_flight: int = 0,
        write_linger: float = 0.0,
    ) -> None:
        self.catalog = catalog
        self.concurrency = max(1, concurrency)
        self.max_attempts = max_attempts
        self.owner = owner or make_owner_id()
        self.roots = list(roots)
        self.retry_delay = retry_delay
        self.on_result = on_result
        self.idle_poll = idle_poll
        self.health = health
        # Jobs claimed but not yet recorded. A daemon keeps this small: leased jobs are held
        # back from the other instances sharing a PostgreSQL catalog. A one-shot scan widens it
        # (see Scanner) so the writer commits real batches.
        self.max_in_flight = max_in_flight or max(8, self.concurrency * 4)
        self.write_linger = write_linger
        self.stats = PoolStats()
        self._wake = Wakeup()
        self._limiter = anyio.CapacityLimiter(self.concurrency)
        self._accepting = True
        self._writer_done = anyio.Event()

    # -- control -----------------------------------------------------------------------------

    def wake(self) -> None:
        """New work was queued: claim now instead of at the next poll."""
        self._wake.set()

    def stop_claiming(self) -> None:
        """Graceful stop: no new claims; jobs in memory still finish."""
        self._accepting = False
        self._wake.set()

    def resize(self, concurrency: int) -> None:
        self.concurrency = max(1, concurrency)
        self._limiter.total_tokens = self.concurrency

    # -- running -----------------------------------------------------------------------------

    async def run(self, *, until_drained: anyio.Event | None = None) -> None:
        """Run until cancelled, or — with ``until_drained`` — until that event is set and the
        queue (under ``roots``) is empty with nothing in flight."""
        jobs_send, jobs_recv = anyio.create_memory_object_stream[Job](self.concurrency)
        results_send, results_recv = anyio.create_memory_object_stream[tuple[JobResult, float]](
            WRITE_BATCH
        )
        self._writer_done = anyio.Event()
        async with anyio.create_task_group() as tg:
            tg.start_soon(self._renew_leases)
            tg.start_soon(self._writer, results_recv)
            async with results_send:
                for _ in range(self.concurrency):
                    tg.start_soon(self._worker, jobs_recv.clone(), results_send.clone())
                jobs_recv.close()
            async with jobs_send:
                await self._claimer(jobs_send, until_drained)
            # Writer finishes once every worker has closed its results stream; then stop renewing.
            await self._writer_done.wait()
            tg.cancel_scope.cancel()

    async def _claimer(self, jobs: MemoryObjectSendStream[Job], until: anyio.Event | None) -> None:
        while self._accepting:
            # A fresh event before claiming: a wake() that comes while the claim runs (new work
            # queued, or room freed by the writer) is not lost.
            self._wake.arm()
            free = self.max_in_flight - self.stats.in_flight
            claimed: list[Job] = []
            if free > 0:
                claimed = await self._db(
                    partial(self.catalog.claim, self.owner, free, LEASE, self.roots)
                )
            if claimed:
                self.stats.in_flight += len(claimed)
                for job in claimed:
                    await jobs.send(job)
                continue
            if until is not None and until.is_set() and self.stats.in_flight == 0:
                pending, _ = await self._db(lambda: self.catalog.queue_stats(self.roots))
                if pending == 0:
                    return
            await self._wake.wait(0.2 if until is not None else self.idle_poll)

    async def _worker(
        self,
        jobs: MemoryObjectReceiveStream[Job],
        results: MemoryObjectSendStream[tuple[JobResult, float]],
    ) -> None:
        async with jobs, results:
            async for job in jobs:
                self.stats.busy += 1
                started = time.monotonic()
                try:
                    result = await self._ingest(job)
                finally:
                    self.stats.busy -= 1
                await results.send((result, time.monotonic() - started))

    async def _ingest(self, job: Job) -> JobResult:
        extra = {"path": job.path, "job_id": job.file_id}
        try:
            result = await anyio.to_thread.run_sync(
                probe.ingest_file, job.path, limiter=self._limiter
            )
            return JobResult(job, result=result)
        except FileJobError as exc:
            log.info(
                "cannot catalog %s: %s",
                job.path,
                exc.reason,
                extra={**extra, "failure_class": exc.failure_class.value},
            )
            return JobResult(job, error=exc)
        except Exception as exc:  # a bug: keep the traceback, lose only this file
            log.exception(
                "internal error while cataloging %s",
                job.path,
                extra={**extra, "failure_class": FailureClass.BUG.value},
            )
            return JobResult(
                job, error=FileJobError(f"internal error: {type(exc).__name__}: {exc}")
            )

    async def _writer(self, results: MemoryObjectReceiveStream[tuple[JobResult, float]]) -> None:
        try:
            async with results:
                while True:
                    try:
                        batch = [await results.receive()]
                    except anyio.EndOfStream:
                        return
                    await self._fill(batch, results)
                    await self._write(batch)
        finally:
            self._writer_done.set()

    async def _fill(
        self,
        batch: list[tuple[JobResult, float]],
        results: MemoryObjectReceiveStream[tuple[JobResult, float]],
    ) -> None:
        """Add what else is ready to ``batch``; with ``write_linger``, wait that long for more
        while other jobs are still in flight.

        Every transaction has a fixed cost (about 15 ms of SQLite and driver round trips, more
        while hashing threads contend for the GIL), so a few big batches beat many small ones.
        Polled rather than a cancelled receive(): cancelling a receive can drop an item that
        was already handed over, and a lost result would leave the job counted in flight.
        """
        deadline = anyio.current_time() + self.write_linger
        while len(batch) < WRITE_BATCH:
            try:
                batch.append(results.receive_nowait())
                continue
            except anyio.EndOfStream:
                return
            except anyio.WouldBlock:
                pass
            if self.stats.in_flight <= len(batch) or anyio.current_time() >= deadline:
                return
            await anyio.sleep(LINGER_POLL)

    async def _write(self, batch: list[tuple[JobResult, float]]) -> None:
        async def attempt() -> list[Outcome]:
            # Each attempt is shielded: a shutdown never leaves a batch half-written. Between
            # attempts (catalog down) cancellation is allowed; the leases then expire or are
            # released at the next start, and the files are processed again.
            with anyio.CancelScope(shield=True):
                done = await self.catalog.record_results(
                    [jr for jr, _ in batch],
                    max_attempts=self.max_attempts,
                    owner=self.owner,
                    retry_delay=self.retry_delay,
                )
            return done

        outcomes = await self._db(attempt)
        self.stats.in_flight -= len(batch)
        self._wake.set()  # room for more: the claimer must not sleep until its next idle poll
        for (jr, seconds), outcome in zip(batch, outcomes, strict=True):
            self.stats.processed += 1
            self.stats.outcomes[outcome.value] = self.stats.outcomes.get(outcome.value, 0) + 1
            if self.on_result is not None:
                self.on_result(jr.job, outcome, jr, seconds)

    async def _renew_leases(self) -> None:
        while True:
            await anyio.sleep(LEASE.total_seconds() / 3)
            if self.stats.in_flight:
                await self._db(lambda: self.catalog.renew_leases(self.owner, LEASE))

    async def _db(self, fn: Callable[[], Awaitable[T]]) -> T:
        return await guarded(self.health, fn)
