"""Reconciling the catalog with the disk: the one-shot scan and the daemon's reconcile walks.

Three concurrent parts, connected by bounded streams so memory stays flat whatever the library
size (the database holds the backlog, DESIGN invariant 1):

    walk (thread) --batches--> reconcile --jobs--> N ingest workers (threads) --results--> writer

* reconcile compares each batch with the catalog: unchanged files cost their `stat` and nothing
  else (invariant 3); new and changed files become pending rows (the queue) and jobs; renames
  with the same inode are re-pointed without any read; vanished files are marked missing.
* workers hash and read tags (tracktiond.ingest) on threads; the writer applies results in
  batched transactions.
"""

from __future__ import annotations

import logging
import os
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Protocol

import anyio
from anyio.abc import ObjectReceiveStream, ObjectSendStream
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

from tracktiond.catalog.models import FileState
from tracktiond.catalog.store import (
    Catalog,
    Job,
    JobResult,
    KnownFile,
    Observed,
    Outcome,
    to_int64,
)
from tracktiond.errors import FailureClass, FileJobError
from tracktiond.ingest import IngestResult, ingest_file
from tracktiond.walk import DirBatch, Walker, WalkFailure, observe_file

log = logging.getLogger(__name__)

WRITE_BATCH = 256


class ScanProgress(Protocol):
    """Receives progress as it happens (the CLI draws a bar; the daemon sets STATUS=)."""

    def discovered(self, files: int) -> None: ...

    def queued(self, jobs: int) -> None: ...

    def processed(self, outcome: Outcome, size: int) -> None: ...


class _NoProgress:
    def discovered(self, files: int) -> None:
        pass

    def queued(self, jobs: int) -> None:
        pass

    def processed(self, outcome: Outcome, size: int) -> None:
        pass


@dataclass(slots=True)
class ScanSummary:
    counts: Counter[str] = field(default_factory=Counter)
    files_seen: int = 0
    bytes_read: int = 0
    elapsed: float = 0.0
    warnings: list[str] = field(default_factory=list)

    def count(self, outcome: Outcome | str, n: int = 1) -> None:
        self.counts[str(outcome)] += n

    @property
    def files_per_second(self) -> float:
        return self.files_seen / self.elapsed if self.elapsed > 0 else 0.0

    def as_dict(self) -> dict[str, object]:
        keys = ("new", "changed", "moved", "duplicate", "missing", "unchanged", "failed")
        return {
            **{k: self.counts.get(k, 0) for k in keys},
            "files_seen": self.files_seen,
            "bytes_read": self.bytes_read,
            "elapsed_seconds": round(self.elapsed, 3),
            "files_per_second": round(self.files_per_second, 1),
            "megabytes_per_second": round(self.bytes_read / 1e6 / self.elapsed, 1)
            if self.elapsed > 0
            else 0.0,
            "warnings": list(self.warnings),
        }


def default_concurrency() -> int:
    # Hashing is I/O plus GIL-free sha256: a few threads per core keep disks and cores busy.
    return max(2, min(8, (os.cpu_count() or 2) * 2))


class Scanner:
    def __init__(
        self,
        catalog: Catalog,
        *,
        concurrency: int = 0,
        max_attempts: int = 3,
        follow_symlinks: bool = True,
        purge_missing_after: timedelta | None = None,
        progress: ScanProgress | None = None,
    ) -> None:
        self.catalog = catalog
        self.concurrency = concurrency or default_concurrency()
        self.max_attempts = max_attempts
        self.follow_symlinks = follow_symlinks
        self.purge_missing_after = purge_missing_after
        self.progress: ScanProgress = progress or _NoProgress()
        self.summary = ScanSummary()
        self._limiter = anyio.CapacityLimiter(self.concurrency)

    async def scan(self, paths: Sequence[str]) -> ScanSummary:
        started = time.monotonic()
        roots = [absolute_path(p) for p in paths]
        await self._pipeline(self._reconcile_roots, roots)
        # Transient failures (a file still being copied, say) go back to pending: give them
        # their remaining attempts now, with a short pause for the disk to settle.
        for attempt in range(1, self.max_attempts):
            if not await self.catalog.pending_jobs(roots, 0, 1):
                break
            await anyio.sleep(0.25 * attempt)
            await self._pipeline(self._drain_pending, roots)
        if self.purge_missing_after is not None:
            await self.catalog.purge_missing(self.purge_missing_after)
        self.summary.elapsed = time.monotonic() - started
        return self.summary

    # ---- the pipeline ----------------------------------------------------------------------

    async def _pipeline(self, source: _Source, roots: list[str]) -> None:
        jobs_send, jobs_recv = anyio.create_memory_object_stream[Job](self.concurrency * 4)
        results_send, results_recv = anyio.create_memory_object_stream[JobResult](WRITE_BATCH)
        async with anyio.create_task_group() as tg:
            tg.start_soon(self._writer, results_recv)
            async with results_send:
                for _ in range(self.concurrency):
                    tg.start_soon(self._worker, jobs_recv.clone(), results_send.clone())
                jobs_recv.close()
            async with jobs_send:
                await source(roots, jobs_send)

    async def _worker(
        self, jobs: MemoryObjectReceiveStream[Job], results: MemoryObjectSendStream[JobResult]
    ) -> None:
        async with jobs, results:
            async for job in jobs:
                await results.send(await self._ingest(job))

    async def _ingest(self, job: Job) -> JobResult:
        try:
            result: IngestResult = await anyio.to_thread.run_sync(
                ingest_file, job.path, limiter=self._limiter
            )
            return JobResult(job, result=result)
        except FileJobError as exc:
            log.info(
                "cannot catalog %s: %s",
                job.path,
                exc.reason,
                extra={"path": job.path, "job_id": job.file_id, "failure_class": exc.failure_class},
            )
            return JobResult(job, error=exc)
        except Exception as exc:  # a bug: keep the traceback, lose only this file
            log.exception(
                "internal error while cataloging %s",
                job.path,
                extra={"path": job.path, "job_id": job.file_id, "failure_class": FailureClass.BUG},
            )
            return JobResult(
                job, error=FileJobError(f"internal error: {type(exc).__name__}: {exc}")
            )

    async def _writer(self, results: ObjectReceiveStream[JobResult]) -> None:
        async with results:
            while True:
                try:
                    batch = [await results.receive()]
                except anyio.EndOfStream:
                    return
                while len(batch) < WRITE_BATCH:
                    try:
                        batch.append(results.receive_nowait())  # type: ignore[attr-defined]
                    except (anyio.WouldBlock, anyio.EndOfStream):
                        break
                outcomes = await self.catalog.record_results(batch, max_attempts=self.max_attempts)
                for jr, outcome in zip(batch, outcomes, strict=True):
                    size = jr.result.digest.size if jr.result else 0
                    self.summary.bytes_read += size
                    if outcome is not Outcome.RETRY:
                        self.summary.count(outcome)
                    self.progress.processed(outcome, size)

    # ---- job sources -----------------------------------------------------------------------

    async def _drain_pending(self, roots: list[str], jobs: ObjectSendStream[Job]) -> None:
        after = 0
        while True:
            page = await self.catalog.pending_jobs(roots, after, 500)
            if not page:
                return
            self.progress.queued(len(page))
            for job in page:
                await jobs.send(job)
            after = page[-1].file_id

    async def _reconcile_roots(self, roots: list[str], jobs: ObjectSendStream[Job]) -> None:
        for root in roots:
            kind = await anyio.to_thread.run_sync(_path_kind, root)
            if kind == "dir":
                await self._reconcile_dir(root, jobs)
            elif kind == "file":
                await self._reconcile_file(root, jobs)
            else:
                # An unmounted drive looks exactly like this: never mark its files missing.
                self.summary.warnings.append(f"{root}: not found; nothing under it was changed")
                log.warning(
                    "scan root %s not found; its catalog entries are left as they are", root
                )

    async def _reconcile_dir(self, root: str, jobs: ObjectSendStream[Job]) -> None:
        walker = Walker(root, follow_symlinks=self.follow_symlinks)
        batches = walker.batches()
        while True:
            batch = await anyio.to_thread.run_sync(next, batches, None)
            if batch is None:
                break
            await self._reconcile_batch(batch, jobs)
        # Directories that were cataloged but are gone as a whole (moved or deleted with their
        # contents); directories we could not list keep their files as they are.
        gone = [
            d
            for d in await self.catalog.dirs_under(root)
            if d not in walker.visited_dirs and not _under_any(d, walker.unlisted_dirs)
        ]
        if gone:
            vanished = await self.catalog.files_in_dirs(gone)
            await self._settle_missing(vanished)

    async def _reconcile_file(self, path: str, jobs: ObjectSendStream[Job]) -> None:
        seen = await anyio.to_thread.run_sync(observe_file, path)
        batch = DirBatch()
        if isinstance(seen, Observed):
            batch.files.append(seen)
        elif isinstance(seen, WalkFailure):
            batch.failures.append(seen)
        known = await self.catalog.known_file(path)
        await self._reconcile_batch(batch, jobs, known={path: known} if known else {})

    async def _reconcile_batch(
        self,
        batch: DirBatch,
        jobs: ObjectSendStream[Job],
        known: dict[str, KnownFile] | None = None,
    ) -> None:
        if known is None:
            known = await self.catalog.known_in_dirs(batch.dirs)
        self.summary.files_seen += len(batch.files)
        self.progress.discovered(len(batch.files))
        new: list[Observed] = []
        changed: list[tuple[KnownFile, Observed]] = []
        unchanged: list[int] = []
        restored: list[int] = []
        still_failed: list[int] = []
        queued: list[Job] = []
        for seen in batch.files:
            k = known.pop(seen.path, None)
            if k is None:
                new.append(seen)
            elif k.state == FileState.PENDING.value:
                # Left over from an interrupted run: refresh its stat and take the job.
                changed.append((k, seen))
            elif k.same_content_signature(seen):
                if k.state == FileState.MISSING.value:
                    if k.recording_id is not None:
                        restored.append(k.id)
                    else:
                        changed.append((k, seen))
                elif k.state == FileState.FAILED.value:
                    if k.ctime_ns != seen.ctime_ns:
                        changed.append((k, seen))  # permissions fixed, say: worth another try
                    else:
                        still_failed.append(k.id)  # not read again, but still reported
                else:
                    unchanged.append(k.id)
            else:
                changed.append((k, seen))

        # Renames: a new path whose inode, size and mtime belong to a file whose path is gone.
        moved: list[tuple[KnownFile, Observed]] = []
        if new:
            by_inode = await self.catalog.by_inode(new)
            still_new = []
            claimed: set[int] = set()
            for seen in new:
                source = _rename_source(seen, by_inode, claimed)
                if source is None:
                    still_new.append(seen)
                else:
                    claimed.add(source.id)
                    moved.append((source, seen))
            new = still_new
            for path in [p for p, k in known.items() if k.id in claimed]:
                del known[path]

        failures = [f for f in batch.failures if not f.is_dir]
        for f in batch.failures:
            if f.is_dir:
                self.summary.warnings.append(f"{f.path}: {f.reason}")
                log.warning("%s: %s", f.path, f.reason, extra={"path": f.path})
            else:
                log.info("cannot catalog %s: %s", f.path, f.reason, extra={"path": f.path})
        await self.catalog.relocate(moved)
        queued += await self.catalog.add_pending(new)
        queued += await self.catalog.mark_changed(changed)
        await self.catalog.touch(unchanged + still_failed)
        await self.catalog.restore(restored)
        if failures:
            await self.catalog.record_walk_failures([(f.path, f.dir, f.reason) for f in failures])
        await self._settle_missing(list(known.values()))

        self.summary.count(Outcome.UNCHANGED, len(unchanged) + len(restored))
        self.summary.count(Outcome.MOVED, len(moved))
        self.summary.count(Outcome.FAILED, len(failures) + len(still_failed))
        self.progress.queued(len(queued))
        for job in queued:
            await jobs.send(job)

    async def _settle_missing(self, gone: list[KnownFile]) -> None:
        ids = [k.id for k in gone if k.state != FileState.MISSING.value]
        if ids:
            marked = await self.catalog.mark_missing(ids)
            self.summary.count(Outcome.MISSING, marked)


class _Source(Protocol):
    async def __call__(self, roots: list[str], jobs: ObjectSendStream[Job], /) -> None: ...


def _rename_source(
    seen: Observed, by_inode: dict[tuple[int, int], list[KnownFile]], claimed: set[int]
) -> KnownFile | None:
    for k in by_inode.get((to_int64(seen.device), to_int64(seen.inode)), []):
        if k.id in claimed or k.path == seen.path:
            continue
        if (k.size, k.mtime_ns) != (seen.size, seen.mtime_ns):
            continue
        if k.state == FileState.MISSING.value or not os.path.lexists(k.path):
            return k
    return None


def absolute_path(path: str) -> str:
    # Normalised without resolving symlinks: the catalog records paths as the user sees them.
    return os.path.normpath(os.path.join(os.getcwd(), path))


def _path_kind(path: str) -> str:
    if os.path.isdir(path):
        return "dir"
    return "file" if os.path.lexists(path) else "none"


def _under_any(directory: str, parents: set[str]) -> bool:
    return any(directory == p or directory.startswith(p.rstrip("/") + "/") for p in parents)
