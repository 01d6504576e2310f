"""Reconciling the catalog with the disk: the walks of the one-shot scan and of the daemon.

The Reconciler walks directories (on a thread, batch by batch) and compares each batch with the
catalog: unchanged files cost their `stat` and nothing else (DESIGN invariant 3); new and changed
files become pending rows, which are the work queue; renames with the same inode are re-pointed
without any read; vanished files are marked missing. It never reads a file.

The ingest stage (pipeline.ingest) claims the pending rows as they appear and reads them; the
one-shot scan (pipeline.scan) runs both side by side. Memory stays flat whatever the library
size: batches are bounded, the database holds the backlog.
"""

from __future__ import annotations

import logging
import os
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

import anyio

from tracktiond.catalog.models import FileState
from tracktiond.catalog.store import (
    Catalog,
    Job,
    KnownFile,
    Observed,
    Outcome,
    to_int64,
)
from tracktiond.media.sidecar import sidecar_kind
from tracktiond.pipeline.walk import DirBatch, Walker, WalkFailure, observe_file, observe_sidecar

log = logging.getLogger(__name__)


# How many settled files one reconcile compares with the catalog at once.
FILE_BATCH = 500


class ScanProgress(Protocol):
    """Receives progress as it happens (the CLI draws a bar; the daemon sets STATUS=)."""

    def discovered(self, files: int) -> None: ...

    def queued(self, jobs: int) -> None: ...

    def processed(self, outcome: Outcome, size: int) -> None: ...

    def analysed(self, outcome: str) -> None: ...

    def walked(self) -> None:
        """The walk is over (the count of files found is final)."""


class _NoProgress:
    def discovered(self, files: int) -> None:
        pass

    def queued(self, jobs: int) -> None:
        pass

    def processed(self, outcome: Outcome, size: int) -> None:
        pass

    def analysed(self, outcome: str) -> None:
        pass

    def walked(self) -> None:
        pass


@dataclass(slots=True)
class ScanSummary:
    counts: Counter[str] = field(default_factory=Counter)
    files_seen: int = 0
    bytes_read: int = 0
    elapsed: float = 0.0
    warnings: list[str] = field(default_factory=list)

    def warn(self, message: str, path: str | None = None) -> None:
        """Something the user should hear about: logged once, and kept for the summary."""
        self.warnings.append(message)
        log.warning("%s", message, extra={"path": path} if path else None)

    def count(self, outcome: Outcome | str, n: int = 1) -> None:
        self.counts[str(outcome)] += n

    @property
    def files_per_second(self) -> float:
        return self.files_seen / self.elapsed if self.elapsed > 0 else 0.0

    def as_dict(self) -> dict[str, object]:
        keys = (
            "new",
            "changed",
            "moved",
            "duplicate",
            "missing",
            "unchanged",
            "failed",
            "failed_not_retried",
            "deferred",
            "analysed",
            "analysis_failed",
        )
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


class Reconciler:
    """Brings the catalog in line with what is on disk under some paths; reads no file."""

    def __init__(
        self,
        catalog: Catalog,
        *,
        follow_symlinks: bool = True,
        progress: ScanProgress | None = None,
        on_queued: Callable[[int], None] | None = None,
        summary: ScanSummary | None = None,
        on_sidecars: Callable[[int], None] | None = None,
    ) -> None:
        self.catalog = catalog
        self.follow_symlinks = follow_symlinks
        self.progress: ScanProgress = progress or _NoProgress()
        self.on_queued = on_queued
        self.summary = summary or ScanSummary()
        self.on_sidecars = on_sidecars  # tracklist sources became due (wakes their stage)

    async def reconcile(self, paths: Sequence[str]) -> None:
        """Reconcile each path: a directory recursively, a file on its own, a vanished path by
        marking what the catalog had there as missing."""
        kinds = await anyio.to_thread.run_sync(lambda: [_path_kind(p) for p in paths])
        # Plain files are reconciled together, a batch at a time: a burst of settled files
        # (a folder copied in, a download finishing) costs a few queries, not a few per file.
        plain = [
            p
            for p, kind in zip(paths, kinds, strict=True)
            if kind == "file" and sidecar_kind(p) is None
        ]
        for start in range(0, len(plain), FILE_BATCH):
            await self._reconcile_files(plain[start : start + FILE_BATCH])
        for root, kind in zip(paths, kinds, strict=True):
            if kind == "dir":
                await self._reconcile_dir(root)
            elif kind == "file" and sidecar_kind(root) is not None:
                await self._reconcile_sidecar(root)
        # Vanished paths last: a directory renamed is its old path gone and its new one come,
        # and once the new one is reconciled its files are found moved (by inode), so the old
        # one has nothing left to mark missing (not "11 missing, 11 moved" for one rename).
        for root, kind in zip(paths, kinds, strict=True):
            if kind not in ("dir", "file"):
                await self._vanished(root)

    async def reconcile_roots(self, roots: Sequence[str]) -> None:
        """Like reconcile(), but a root that does not exist changes nothing: an unmounted drive
        looks exactly like that, and its files must not all be marked missing."""
        for root in roots:
            if await anyio.to_thread.run_sync(_path_kind, root) == "none":
                self.summary.warn(f"{root}: not found; nothing under it was changed", root)
                continue
            await self.reconcile([root])

    async def _reconcile_dir(self, root: str) -> None:
        walker = Walker(root, follow_symlinks=self.follow_symlinks)
        batches = walker.batches()
        # The walk (system calls, on a thread) runs one batch ahead of the reconcile (database
        # work): the two overlap, and at most two batches are held in memory.
        send, receive = anyio.create_memory_object_stream[DirBatch](1)

        async def walk() -> None:
            async with send:
                while (batch := await anyio.to_thread.run_sync(next, batches, None)) is not None:
                    await send.send(batch)

        async with anyio.create_task_group() as tg:
            tg.start_soon(walk)
            async with receive:
                async for batch in receive:
                    await self._reconcile_batch(batch)
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
            self._sidecars_due(await self.catalog.sidecars_vanished(gone))

    async def _vanished(self, path: str) -> None:
        gone = await self.catalog.files_under(path)
        await self._settle_missing(gone)
        self._sidecars_due(await self.catalog.sidecars_vanished([path]))

    async def _reconcile_sidecar(self, path: str) -> None:
        kind = sidecar_kind(path)
        assert kind is not None
        seen = await anyio.to_thread.run_sync(observe_sidecar, path, kind)
        if seen is None:
            self._sidecars_due(await self.catalog.sidecars_vanished([path]))
        else:
            self._sidecars_due(await self.catalog.sync_sidecars([], [seen]))

    def _sidecars_due(self, count: int) -> None:
        if count and self.on_sidecars is not None:
            self.on_sidecars(count)

    async def _reconcile_files(self, paths: Sequence[str]) -> None:
        seen = await anyio.to_thread.run_sync(lambda: [observe_file(p) for p in paths])
        batch = DirBatch()
        for one in seen:
            if isinstance(one, Observed):
                batch.files.append(one)
            elif isinstance(one, WalkFailure):
                batch.failures.append(one)
        known = await self.catalog.known_files(paths)
        await self._reconcile_batch(batch, known=known)

    async def _reconcile_batch(
        self, batch: DirBatch, known: dict[str, KnownFile] | None = None
    ) -> None:
        if known is None:
            known = await self.catalog.known_in_dirs(batch.dirs)
        if batch.dirs or batch.sidecars:
            self._sidecars_due(await self.catalog.sync_sidecars(batch.dirs, batch.sidecars))
        # Files the walk could not read (a broken link, no permission) were seen too: they are
        # recorded as failed, and counted like every other file.
        walked = len(batch.files) + sum(1 for f in batch.failures if not f.is_dir)
        self.summary.files_seen += walked
        self.progress.discovered(walked)
        new: list[Observed] = []
        changed: list[tuple[KnownFile, Observed]] = []
        unchanged: list[int] = []
        restored: list[int] = []
        still_failed: list[int] = []
        queued: list[Job] = []
        waiting: list[Job] = []
        for seen in batch.files:
            k = known.pop(seen.path, None)
            if k is None:
                new.append(seen)
            elif k.state == FileState.PENDING.value:
                if k.same_content_signature(seen):
                    # Already queued as it is (left over from an interrupted run, or being
                    # processed right now): writing it again would race with the worker that
                    # catalogs it, and would undo its retry count and backoff.
                    waiting.append(Job(k.id, k.path))
                else:  # changed while waiting: refresh its stat and take the job
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
            if by_inode:  # checking that old paths are gone takes an lstat each: off the loop
                new, moved = await anyio.to_thread.run_sync(_split_renames, new, by_inode)
            claimed = {source.id for source, _ in moved}
            for path in [p for p, k in known.items() if k.id in claimed]:
                del known[path]

        failures = [f for f in batch.failures if not f.is_dir]
        for f in batch.failures:
            if f.is_dir:
                self.summary.warn(f"{f.path}: {f.reason}", f.path)
            else:
                log.info("cannot catalog %s: %s", f.path, f.reason, extra={"path": f.path})
        queued += await self.catalog.relocate(moved)
        queued += await self.catalog.add_pending(new)
        queued += await self.catalog.mark_changed(changed)
        queued += waiting
        await self.catalog.touch(unchanged + still_failed)
        await self.catalog.restore(restored)
        if failures:
            await self.catalog.record_walk_failures([(f.path, f.dir, f.reason) for f in failures])
        await self._settle_missing(list(known.values()))

        self.summary.count(Outcome.UNCHANGED, len(unchanged) + len(restored))
        self.summary.count(Outcome.MOVED, len(moved))
        self.summary.count(Outcome.FAILED, len(failures) + len(still_failed))
        # Of those, the ones failed before and unchanged since: reported, but not tried again.
        self.summary.count("failed_not_retried", len(still_failed))
        self.summary.count("queued", len(queued))
        self.progress.queued(len(queued))
        if queued and self.on_queued is not None:
            self.on_queued(len(queued))

    async def _settle_missing(self, gone: list[KnownFile]) -> None:
        ids = [k.id for k in gone if k.state != FileState.MISSING.value]
        if ids:
            marked = await self.catalog.mark_missing(ids)
            self.summary.count(Outcome.MISSING, marked)


def _split_renames(
    new: list[Observed], by_inode: dict[tuple[int, int], list[KnownFile]]
) -> tuple[list[Observed], list[tuple[KnownFile, Observed]]]:
    """(still new, renamed from a known file) for the new paths of one batch."""
    still_new: list[Observed] = []
    moved: list[tuple[KnownFile, Observed]] = []
    claimed: set[int] = set()
    for seen in new:
        source = _rename_source(seen, by_inode, claimed)
        if source is None:
            still_new.append(seen)
        else:
            claimed.add(source.id)
            moved.append((source, seen))
    return still_new, moved


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
