"""Walking a library: directory listings in batches, one `stat` per candidate file, nothing read.

The walk is synchronous (os.scandir blocks) and is driven batch by batch from a worker thread.
It keeps only the set of directories visited (bounded by the number of directories, not files),
which the reconcile step needs to notice directories that disappeared as a whole.
"""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Iterator
from dataclasses import dataclass, field

from tracktiond.catalog.sources import SidecarSeen
from tracktiond.catalog.store import Observed
from tracktiond.media.formats import is_candidate
from tracktiond.media.probe import display_path
from tracktiond.media.sidecar import sidecar_kind

BATCH_FILES = 2000
BATCH_DIRS = 256


@dataclass(frozen=True, slots=True)
class WalkFailure:
    """A directory entry that cannot be cataloged, found without reading it."""

    path: str  # display form (undecodable bytes escaped)
    dir: str
    reason: str
    is_dir: bool = False  # a directory that could not be listed (reported, not cataloged)


@dataclass(slots=True)
class DirBatch:
    dirs: list[str] = field(default_factory=list)  # directories completely listed in this batch
    files: list[Observed] = field(default_factory=list)
    failures: list[WalkFailure] = field(default_factory=list)
    # Cue sheets and pasted lists: not cataloged as files, but tracklist sources.
    sidecars: list[SidecarSeen] = field(default_factory=list)


class Walker:
    """Iterates DirBatch objects for one root (a directory or a single file)."""

    def __init__(self, root: str, *, follow_symlinks: bool = True) -> None:
        self.root = root
        self.follow_symlinks = follow_symlinks
        self.visited_dirs: set[str] = set()
        self.unlisted_dirs: set[str] = set()  # could not be listed: their files are not missing
        self._seen_inodes: set[tuple[int, int]] = set()
        self._real_root: str | None = None

    def _inside(self, link: str) -> bool:
        """Whether the symbolic link ``link`` points at a file under this walk's root."""
        if self._real_root is None:
            self._real_root = os.path.realpath(self.root)
        target = os.path.realpath(link)
        return target == self._real_root or target.startswith(self._real_root.rstrip("/") + "/")

    def batches(self) -> Iterator[DirBatch]:
        stack = [self.root]
        batch = DirBatch()
        while stack:
            directory = stack.pop()
            try:
                st = os.stat(directory)
            except OSError as exc:
                self.unlisted_dirs.add(directory)
                batch.failures.append(_dir_failure(directory, exc))
                continue
            key = (st.st_dev, st.st_ino)
            if key in self._seen_inodes:
                continue  # a symlink back into the tree: already walked, do not loop
            self._seen_inodes.add(key)
            try:
                subdirs = self._list(directory, batch)
            except OSError as exc:
                self.unlisted_dirs.add(directory)
                batch.failures.append(_dir_failure(directory, exc))
                continue
            self.visited_dirs.add(directory)
            batch.dirs.append(directory)
            stack.extend(sorted(subdirs, reverse=True))
            if len(batch.files) >= BATCH_FILES or len(batch.dirs) >= BATCH_DIRS:
                yield batch
                batch = DirBatch()
        if batch.dirs or batch.files or batch.failures:
            yield batch

    def _list(self, directory: str, batch: DirBatch) -> list[str]:
        subdirs: list[str] = []
        with os.scandir(directory) as entries:
            for entry in entries:
                name = entry.name
                try:
                    is_dir = entry.is_dir(follow_symlinks=self.follow_symlinks)
                except OSError:
                    is_dir = False
                if is_dir:
                    # Hidden directories are trash, sync and OS metadata (.Trash-1000,
                    # .AppleDouble, .stversions): never part of the library.
                    if not name.startswith("."):
                        subdirs.append(entry.path)
                    continue
                if not is_candidate(name):
                    kind = sidecar_kind(name)
                    if kind is not None:
                        seen = observe_sidecar(entry.path, kind)
                        if seen is not None:
                            batch.sidecars.append(seen)
                    continue
                observed = self._observe(entry, directory, batch)
                if observed is not None:
                    batch.files.append(observed)
        return subdirs

    def _observe(self, entry: os.DirEntry[str], directory: str, batch: DirBatch) -> Observed | None:
        path = entry.path
        try:
            path.encode("utf-8")
        except UnicodeEncodeError:
            batch.failures.append(
                WalkFailure(
                    display_path(path), display_path(directory), "file name is not valid UTF-8"
                )
            )
            return None
        try:
            st = entry.stat(follow_symlinks=True)
        except FileNotFoundError:
            if entry.is_symlink():
                batch.failures.append(WalkFailure(path, directory, "broken symbolic link"))
            return None  # vanished between listing and stat: nothing to catalog
        except OSError as exc:
            reason = {
                errno.ELOOP: "symbolic link loop",
                errno.EACCES: "permission denied",
                errno.EPERM: "permission denied",
            }.get(exc.errno or 0, f"cannot stat: {exc.strerror}")
            batch.failures.append(WalkFailure(path, directory, reason))
            return None
        if not stat.S_ISREG(st.st_mode):
            batch.failures.append(WalkFailure(path, directory, "not a regular file"))
            return None
        if entry.is_symlink() and (not self.follow_symlinks or self._inside(path)):
            # A link to a file this walk reaches anyway is an alias, not a copy: cataloging it
            # would list the one file as a duplicate recording of itself.
            return None
        return Observed(
            path=path,
            dir=directory,
            size=st.st_size,
            mtime_ns=st.st_mtime_ns,
            ctime_ns=st.st_ctime_ns,
            inode=st.st_ino,
            device=st.st_dev,
        )


def observe_sidecar(path: str, kind: str) -> SidecarSeen | None:
    """A sheet or list's stat (None: gone, unreadable, not a regular file or not UTF-8 named:
    the tracklist stage has nothing to read there)."""
    try:
        path.encode("utf-8")
        st = os.stat(path)
    except (OSError, UnicodeEncodeError):
        return None
    if not stat.S_ISREG(st.st_mode):
        return None
    return SidecarSeen(path, os.path.dirname(path), kind, st.st_size, st.st_mtime_ns)


def observe_file(path: str) -> Observed | WalkFailure | None:
    """Observe one file given directly (``tracktiond scan FILE``)."""
    directory = os.path.dirname(path)
    batch = DirBatch()
    try:
        entries = [e for e in os.scandir(directory) if e.path == path]
    except OSError as exc:
        return _dir_failure(path, exc)
    if not entries:
        return None
    observed = Walker(directory)._observe(entries[0], directory, batch)
    return observed if observed is not None else (batch.failures[0] if batch.failures else None)


def _dir_failure(directory: str, exc: OSError) -> WalkFailure:
    if exc.errno in (errno.EACCES, errno.EPERM):
        reason = "directory cannot be listed: permission denied"
    elif exc.errno == errno.ELOOP:
        reason = "directory is a symbolic link loop"
    elif exc.errno == errno.ENOENT:
        reason = "directory vanished during the scan"
    else:
        reason = f"directory cannot be listed: {exc.strerror}"
    path = display_path(directory)
    return WalkFailure(path, os.path.dirname(path), reason, is_dir=True)
