"""The one stage loop: claim from a lease queue, process in bounded parallel, record in batches.

Every stage of the pipeline (ingest, analysis, tag write-back, and the ones to come) is a
:class:`Stage` — a name, a lease queue to claim from, ``process`` for one job and ``record``
for a batch of finished ones — run by a :class:`StageLoop`::

    claim (up to the free room) --> one task per job, at most `concurrency` processing
        --> finished jobs (bounded) --> writer: batches of `write_batch`, lingering up to
            `write_linger` for more --> stage.record (one shielded transaction) --> StageEvent

The loop owns what the stages used to write three times: waking on new work without losing a
wake-up, the idle poll, stopping claims for a graceful stop, resizing, catalog outages (through
``CatalogHealth``: a claim or a record waits the outage out instead of failing the job) and
draining for a one-shot run. One :class:`Heartbeat` renews the leases of every running job of
every loop of an owner, so no job's lease runs out however long it runs (DESIGN invariant 1).

What happened to each job leaves as one :class:`StageEvent`; the daemon's state, its metrics and
the logs consume those, the one-shot scan its summary and progress bar."""

from __future__ import annotations

import logging
import time
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import timedelta
from functools import partial
from typing import Any, Generic, TypeVar

import anyio
from anyio.abc import TaskGroup
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

from tracktiond.catalog.health import CatalogHealth, guarded
from tracktiond.catalog.leases import LEASE, RENEW_EVERY, LeaseQueue

log = logging.getLogger(__name__)

J = TypeVar("J")  # a claimed job
R = TypeVar("R")  # what processing it gave
T = TypeVar("T")

LINGER_POLL = 0.01  # seconds between looks for more finished jobs while a batch lingers
DRAIN_POLL = 0.2  # the idle poll of a one-shot run, which waits for the walk to add work


@dataclass(frozen=True, slots=True)
class StageEvent:
    """What one job of one stage came to. ``outcome`` is the stage's word for it (ingest:
    new, moved, failed, ...; analysis: done, pending (a retry), failed, lost; tags: written,
    unchanged, skipped, retry, failed). A failure carries its class and reason; ``final``
    says it will not be retried."""

    stage: str
    job_id: int | str
    path: str
    outcome: str
    seconds: float = 0.0
    failure_class: str | None = None
    reason: str | None = None
    final: bool = True
    audio_seconds: float = 0.0  # audio processed (analysis)
    bytes_read: int = 0  # bytes read (ingest)
    entries: int = 0  # tracks found (identify)


@dataclass(frozen=True, slots=True)
class Finished(Generic[J, R]):
    job: J
    result: R
    seconds: float


class Stage(ABC, Generic[J, R]):
    """One stage: what to claim, how to process one job, how to record finished ones."""

    name: str
    # A job whose processing must never be torn by cancellation (a tag write in progress).
    shield_process: bool = False

    @property
    @abstractmethod
    def queue(self) -> LeaseQueue[Any, J]:
        """The lease queue this stage claims from (the heartbeat renews its leases)."""

    @abstractmethod
    async def claim(self, owner: str, limit: int, lease: timedelta) -> list[J]: ...

    @abstractmethod
    async def process(self, job: J) -> R:
        """Do one job. A failure of the job is a result, not an exception."""

    @abstractmethod
    def crashed(self, job: J, exc: Exception) -> R:
        """The result for a job whose ``process`` raised: a bug, recorded as a failure."""

    @abstractmethod
    async def record(self, owner: str, done: Sequence[Finished[J, R]]) -> list[StageEvent]:
        """Record finished jobs in the catalog (one transaction per call; shielded by the
        caller) and say what each came to, in order."""

    def describe(self, job: J) -> tuple[int | str, str]:
        """(job id, path) for log lines about ``job``."""
        return getattr(job, "file_id", ""), getattr(job, "path", "")

    async def aclose(self) -> None:
        """Release what the stage holds (worker processes) once its loop has ended."""


class Wakeup:
    """A wake-up call for a claim loop that is never lost: the loop arms a fresh call *before*
    it looks for work and sleeps on that one, so a wake-up that comes while it looks counts."""

    def __init__(self) -> None:
        self._event = anyio.Event()

    def arm(self) -> None:
        self._event = anyio.Event()

    def set(self) -> None:
        self._event.set()

    async def wait(self, at_most: float) -> None:
        """Sleep until set() or for ``at_most`` seconds (the idle poll), whichever is first."""
        with anyio.move_on_after(at_most):
            await self._event.wait()


class Heartbeat:
    """Renews, every ``renew_every``, the leases an owner holds in the queues of its loops that
    have jobs in flight: one loop for every running job (as apscheduler 4 does)."""

    def __init__(
        self,
        owner: str,
        *,
        lease: timedelta = LEASE,
        renew_every: timedelta = RENEW_EVERY,
        health: CatalogHealth | None = None,
    ) -> None:
        self.owner = owner
        self.lease = lease
        self.renew_every = renew_every
        self.health = health
        self._loops: list[StageLoop[Any, Any]] = []

    def register(self, loop: StageLoop[Any, Any]) -> None:
        self._loops.append(loop)

    def unregister(self, loop: StageLoop[Any, Any]) -> None:
        if loop in self._loops:
            self._loops.remove(loop)

    async def beat(self) -> None:
        """One round of renewals (the queues of busy loops, each once)."""
        queues = {id(loop.stage.queue): loop.stage.queue for loop in self._loops if loop.in_flight}
        for queue in queues.values():
            await guarded(self.health, partial(queue.renew, self.owner, self.lease))

    async def run(self) -> None:
        while True:
            await anyio.sleep(self.renew_every.total_seconds())
            await self.beat()


class StageLoop(Generic[J, R]):
    """Runs one stage: the claim loop, its workers and its writer."""

    def __init__(
        self,
        stage: Stage[J, R],
        heartbeat: Heartbeat,
        *,
        concurrency: int,
        max_in_flight: int = 0,
        write_batch: int = 1,
        write_linger: float = 0.0,
        idle_poll: float = 5.0,
        on_event: Callable[[StageEvent], None] | None = None,
    ) -> None:
        self.stage = stage
        self.heartbeat = heartbeat
        self.owner = heartbeat.owner
        self.health = heartbeat.health
        self.concurrency = max(1, concurrency)
        # Jobs claimed but not yet recorded. A daemon keeps this small: leased jobs are held
        # back from the other instances sharing a PostgreSQL catalog. A one-shot run widens it
        # so the writer commits real batches.
        self._fixed_in_flight = max_in_flight
        self.write_batch = max(1, write_batch)
        self.write_linger = write_linger
        self.idle_poll = idle_poll
        self.on_event = on_event
        self.in_flight = 0
        self.busy = 0
        self.processed = 0
        self._wake = Wakeup()
        self._limiter = anyio.CapacityLimiter(self.concurrency)
        self._accepting = True

    @property
    def max_in_flight(self) -> int:
        return self._fixed_in_flight or max(8, self.concurrency * 4)

    # -- control -----------------------------------------------------------------------------

    def wake(self) -> None:
        """New work was queued: claim now instead of at the next poll."""
        self._wake.set()

    def stop_claiming(self) -> None:
        """Graceful stop: no new claims; jobs already claimed still finish and are recorded."""
        self._accepting = False
        self._wake.set()

    def resize(self, concurrency: int) -> None:
        self.concurrency = max(1, concurrency)
        self._limiter.total_tokens = self.concurrency
        self._wake.set()

    # -- running -----------------------------------------------------------------------------

    async def run(
        self,
        *,
        until: anyio.Event | None = None,
        drained: Callable[[], Awaitable[bool]] | None = None,
    ) -> None:
        """Run until cancelled or stopped, or — with ``until`` — until that event is set and
        ``drained()`` says the queue holds nothing more for this run, with nothing in flight."""
        send, receive = anyio.create_memory_object_stream[Finished[J, R]](self.write_batch)
        self.heartbeat.register(self)
        try:
            async with anyio.create_task_group() as tg:
                tg.start_soon(self._writer, receive)
                async with send, anyio.create_task_group() as workers:
                    await self._claim_loop(workers, send, until, drained)
                    # every worker has handed its result over; the writer drains the rest
        finally:
            self.heartbeat.unregister(self)
            with anyio.CancelScope(shield=True):
                await self.stage.aclose()

    async def _claim_loop(
        self,
        workers: TaskGroup,
        send: MemoryObjectSendStream[Finished[J, R]],
        until: anyio.Event | None,
        drained: Callable[[], Awaitable[bool]] | None,
    ) -> None:
        lease = self.heartbeat.lease
        while self._accepting:
            self._wake.arm()
            free = self.max_in_flight - self.in_flight
            claimed: list[J] = []
            if free > 0:
                claimed = await self._db(partial(self.stage.claim, self.owner, free, lease))
            if claimed:
                self.in_flight += len(claimed)
                for job in claimed:
                    workers.start_soon(self._work, job, send)
                continue
            finished = until is not None and until.is_set() and self.in_flight == 0
            if finished and (drained is None or await self._db(drained)):
                return
            await self._wake.wait(DRAIN_POLL if until is not None else self.idle_poll)

    async def _work(self, job: J, send: MemoryObjectSendStream[Finished[J, R]]) -> None:
        async with self._limiter:
            self.busy += 1
            started = time.monotonic()
            try:
                with anyio.CancelScope(shield=self.stage.shield_process):
                    try:
                        result = await self.stage.process(job)
                    except Exception as exc:  # a bug: keep the traceback, lose only this job
                        job_id, path = self.stage.describe(job)
                        log.exception(
                            "internal error in the %s stage for %s",
                            self.stage.name,
                            path,
                            extra={"path": path, "job_id": job_id, "failure_class": "bug"},
                        )
                        result = self.stage.crashed(job, exc)
            finally:
                self.busy -= 1
        await send.send(Finished(job, result, time.monotonic() - started))

    async def _writer(self, receive: MemoryObjectReceiveStream[Finished[J, R]]) -> None:
        async with receive:
            while True:
                try:
                    batch = [await receive.receive()]
                except anyio.EndOfStream:
                    return
                await self._fill(batch, receive)
                await self._record(batch)

    async def _fill(
        self, batch: list[Finished[J, R]], receive: MemoryObjectReceiveStream[Finished[J, R]]
    ) -> None:
        """Add what else is ready to ``batch``; with ``write_linger``, wait that long for more
        while other jobs are still in flight.

        Every transaction has a fixed cost (about 15 ms of SQLite and driver round trips, more
        while worker threads contend for the GIL), so a few big batches beat many small ones.
        Polled rather than a cancelled receive(): cancelling a receive can drop an item that
        was already handed over, and a lost result would leave its job counted in flight.
        """
        deadline = anyio.current_time() + self.write_linger
        while len(batch) < self.write_batch:
            try:
                batch.append(receive.receive_nowait())
                continue
            except anyio.EndOfStream:
                return
            except anyio.WouldBlock:
                pass
            if self.in_flight <= len(batch) or anyio.current_time() >= deadline:
                return
            await anyio.sleep(LINGER_POLL)

    async def _record(self, batch: list[Finished[J, R]]) -> None:
        async def attempt() -> list[StageEvent]:
            # Each attempt is shielded: a shutdown never leaves a batch half-written. Between
            # attempts (catalog down) cancellation is allowed; the leases then run out or are
            # released at the next start, and the jobs are done again.
            with anyio.CancelScope(shield=True):
                events = await self.stage.record(self.owner, batch)
            return events

        events = await self._db(attempt)
        self.in_flight -= len(batch)
        self.processed += len(batch)
        self._wake.set()  # room for more: the claimer must not sleep until its next idle poll
        if self.on_event is not None:
            for event in events:
                self.on_event(event)

    async def _db(self, fn: Callable[[], Awaitable[T]]) -> T:
        return await guarded(self.health, fn)
