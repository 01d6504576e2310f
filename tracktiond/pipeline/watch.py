"""Live watching of library roots, with a settle check and a polling fallback.

Each root gets a RootWatcher. Events from watchfiles (inotify) are debounced and collected into a
bounded map of "dirty" paths; a path is handed on only once it is stable: no event and unchanged
size and mtime for ``settle`` seconds (a file copied in over 30 s is processed once, after the
copy). What is handed on is a *path to reconcile*: the reconciler compares it with the catalog, so
renames (delete + add), directories moved as a whole, and deletions need no special events.

When live watching cannot work — the inotify watch limit, a network filesystem that sends no
events, a watcher error — the root falls back to periodic reconciliation (``poll_interval``) and
says so in the log and /status. A root that disappears (unmounted drive) is waited for, and
reconciled as a whole when it comes back.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol

import anyio
from anyio.abc import TaskStatus
from watchfiles import Change, awatch

from tracktiond.media.formats import extension

log = logging.getLogger(__name__)

# Filesystems where inotify sees nothing of changes made by other machines.
NETWORK_FILESYSTEMS = frozenset(
    {
        "nfs", "nfs4", "cifs", "smb3", "smbfs", "fuse.sshfs", "9p", "afs", "ceph",
        "glusterfs", "fuse.glusterfs", "fuse.rclone", "davfs", "fuse.s3fs", "lustre",
    }
)  # fmt: skip

# Files that sit next to music but are never audio: their events are dropped at the source.
# Cue sheets and .txt tracklists are not among them: they are tracklist sources.
NON_AUDIO_EXTENSIONS = frozenset(
    {
        "jpg", "jpeg", "png", "gif", "bmp", "webp", "nfo", "log", "m3u", "m3u8",
        "pls", "pdf", "db", "ini", "json", "xml", "sfv", "md5", "accurip", "lrc", "url", "tmp",
        "part", "crdownload", "partial", "download", "swp", "bak",
    }
)  # fmt: skip

Settled = Callable[[list[str], str], Awaitable[None]]


class WatchMode(StrEnum):
    STARTING = "starting"
    LIVE = "live"  # inotify events, debounced and settled
    POLL = "poll"  # periodic reconciliation: the watcher cannot work here
    MISSING = "missing"  # the root does not exist (unmounted?); waiting for it


def interesting(change: Change, path: str) -> bool:
    """The watch filter: partial downloads, hidden and temp files, and non-audio are dropped.

    Anything else might be audio or a directory ("Vol. 2" has a dot too): the reconciler
    decides with a stat.
    """
    name = os.path.basename(path)
    # hidden names are also rsync's and many downloaders' in-progress files
    hidden = name.startswith(".") or name.endswith("~")
    return not hidden and extension(name) not in NON_AUDIO_EXTENSIONS


def filesystem_type(path: str) -> str | None:
    """The type of the filesystem holding ``path``, from /proc/self/mountinfo."""
    try:
        with open("/proc/self/mountinfo", encoding="utf-8", errors="replace") as fh:
            lines = fh.readlines()
    except OSError:
        return None
    best, best_type = "", None
    for line in lines:
        left, _, right = line.partition(" - ")
        fields = left.split()
        if len(fields) < 5 or not right:
            continue
        mount_point = fields[4].replace("\\040", " ")
        prefix = mount_point.rstrip("/") + "/"
        if (path == mount_point or path.startswith(prefix)) and len(mount_point) > len(best):
            best, best_type = mount_point, right.split()[0]
    return best_type


Signature = tuple[int, int, int]  # (entries, total size, newest mtime in ns)


@dataclass(slots=True)
class _Dirty:
    last_event: float
    size_mtime: Signature | None = None


class WatchCounters(Protocol):
    """What a watcher counts (the daemon's metrics): events seen, falls back to polling."""

    def saw(self, change: str) -> None: ...

    def fell_back(self) -> None: ...


class RootWatcher:
    def __init__(
        self,
        root: str,
        *,
        settle: float,
        poll_interval: float,
        on_settled: Settled,
        counters: WatchCounters | None = None,
        max_dirty: int = 10_000,
        debounce_ms: int = 400,
    ) -> None:
        self.root = root
        self.settle = settle
        self.poll_interval = poll_interval
        self.on_settled = on_settled
        self.counters = counters
        self.max_dirty = max_dirty
        self.debounce_ms = debounce_ms
        self.mode = WatchMode.STARTING
        self.reason: str | None = None
        self.since = time.time()
        self._dirty: dict[str, _Dirty] = {}
        self._overflow = False
        self._started = False
        self._event = anyio.Event()

    def describe(self) -> dict[str, object]:
        return {
            "path": self.root,
            "mode": self.mode.value,
            "reason": self.reason,
            "since": self.since,
            "pending_events": len(self._dirty),
        }

    def _set_mode(self, mode: WatchMode, reason: str | None) -> None:
        if (mode, reason) == (self.mode, self.reason):
            return
        self.mode, self.reason, self.since = mode, reason, time.time()
        if mode is WatchMode.LIVE:
            log.info("watching %s live", self.root, extra={"path": self.root})
        elif mode is WatchMode.POLL:
            log.warning(
                "cannot watch %s live (%s); reconciling it every %.0f s instead",
                self.root,
                reason,
                self.poll_interval,
                extra={"path": self.root},
            )
        elif mode is WatchMode.MISSING:
            log.warning("root %s is gone (%s); waiting for it", self.root, reason)

    async def run(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        """Watch until cancelled. ``started`` fires once the root is watched or polled."""
        async with anyio.create_task_group() as tg:
            tg.start_soon(self._settle_loop)
            while True:
                if not await anyio.to_thread.run_sync(os.path.isdir, self.root):
                    self._set_mode(WatchMode.MISSING, "not found")
                    self._mark_started(task_status)
                    await self._wait_for_root()
                    await self.on_settled([self.root], "root returned")
                    continue
                fstype = await anyio.to_thread.run_sync(filesystem_type, self.root)
                if fstype in NETWORK_FILESYSTEMS:
                    self._set_mode(WatchMode.POLL, f"{fstype} network filesystem sends no events")
                    self._mark_started(task_status)
                    await self._poll_until_gone()
                    continue
                try:
                    await self._watch_live(task_status)
                except Exception as exc:  # inotify limits, permission, watcher bugs
                    if self.counters:
                        self.counters.fell_back()
                    self._set_mode(WatchMode.POLL, f"watcher failed: {exc}")
                    self._mark_started(task_status)
                    await self._poll_until_gone()

    def _mark_started(self, task_status: TaskStatus[None]) -> None:
        if not self._started:
            self._started = True
            task_status.started()

    async def _wait_for_root(self) -> None:
        # Polling, not an event: a mount appearing produces no inotify event we could wait on.
        while True:
            if await anyio.to_thread.run_sync(os.path.isdir, self.root):
                return
            await anyio.sleep(min(self.poll_interval, 5.0))

    async def _poll_until_gone(self) -> None:
        while True:
            await anyio.sleep(self.poll_interval)
            if not await anyio.to_thread.run_sync(os.path.isdir, self.root):
                return
            await self.on_settled([self.root], "poll")

    async def _watch_live(self, task_status: TaskStatus[None]) -> None:
        root_id = await anyio.to_thread.run_sync(_dir_identity, self.root)
        stop = anyio.Event()
        async for changes in awatch(
            self.root,
            watch_filter=interesting,
            debounce=self.debounce_ms,
            step=50,
            stop_event=stop,
            rust_timeout=1000,
            yield_on_timeout=True,
            ignore_permission_denied=True,
        ):
            if not self._started or self.mode is not WatchMode.LIVE:
                self._set_mode(WatchMode.LIVE, None)
                self._mark_started(task_status)
            now = time.monotonic()
            for change, path in changes:
                if self.counters:
                    self.counters.saw(change.name)
                if len(self._dirty) >= self.max_dirty and path not in self._dirty:
                    self._overflow = True  # too many to track: reconcile the whole root
                    self._event.set()
                    continue
                entry = self._dirty.get(path)
                if entry is None:
                    self._dirty[path] = _Dirty(now)
                else:
                    entry.last_event = now
            if changes:
                self._event.set()
            if not changes and await anyio.to_thread.run_sync(_dir_identity, self.root) != root_id:
                stop.set()  # the root was removed or replaced (remount): start over
                self._set_mode(WatchMode.MISSING, "root removed or replaced while watched")
                return

    async def _settle_loop(self) -> None:
        while True:
            if not self._dirty and not self._overflow:
                # nothing to settle: sleep until an event arrives instead of polling
                self._event = anyio.Event()
                await self._event.wait()
            await anyio.sleep(0.2)
            if self._overflow:
                self._overflow = False
                self._dirty.clear()
                log.warning("too many changes under %s at once; reconciling it whole", self.root)
                await self.on_settled([self.root], "overflow")
                continue
            now = time.monotonic()
            due = [p for p, d in self._dirty.items() if now - d.last_event >= self.settle]
            if not due:
                continue
            stats = await anyio.to_thread.run_sync(_signatures, due)
            ready: list[str] = []
            wall = time.time()
            for path, current in zip(due, stats, strict=True):
                entry = self._dirty.get(path)
                if entry is None:
                    continue
                if (
                    current is None  # deleted: nothing to wait for
                    or current == entry.size_mtime  # unchanged for a whole settle interval
                    or (entry.size_mtime is None and wall - current[2] / 1e9 >= self.settle)
                ):
                    ready.append(path)
                else:  # still being written (or just written): look again after settling
                    entry.size_mtime = current
                    entry.last_event = now
            if ready:
                for path in ready:
                    self._dirty.pop(path, None)
                await self.on_settled(ready, "watcher")


# A new directory is settled by what it holds: how many entries are walked at most to tell.
DIR_SETTLE_ENTRIES = 20_000


def _signatures(paths: list[str]) -> list[Signature | None]:
    """What a settle check compares: a file's size and mtime; for a directory (one copied or
    downloaded in as a whole), the same over everything under it, so a directory whose files
    are still growing (`cp -r Album/ ~/Music/`, a download into a new folder) is not handed on
    half-written."""
    return [_signature(path) for path in paths]


def _signature(path: str) -> Signature | None:
    try:
        st = os.stat(path)
    except OSError:
        return None  # deleted (or unreadable): nothing to wait for
    if not os.path.isdir(path):
        return (1, st.st_size, st.st_mtime_ns)
    entries, size, newest = 0, 0, st.st_mtime_ns
    for top, dirs, names in os.walk(path):
        for name in names + dirs:
            try:
                entry = os.lstat(os.path.join(top, name))
            except OSError:
                continue  # vanished meanwhile: the next look sees the difference
            entries += 1
            size += entry.st_size
            newest = max(newest, entry.st_mtime_ns)
            if entries >= DIR_SETTLE_ENTRIES:
                return (entries, size, newest)
    return (entries, size, newest)


def _dir_identity(path: str) -> tuple[int, int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_dev, st.st_ino)
