"""Moving one file without ever overwriting another, on one filesystem or across two.

``os.rename`` and ``shutil.move`` replace an existing target silently; nothing here does:

- on one filesystem, ``renameat2(RENAME_NOREPLACE)`` (through ctypes: Python has no binding),
  which fails with EEXIST instead of replacing; where a filesystem does not support the flag,
  ``link`` + ``unlink`` (``link`` fails when the target exists, too). A filesystem with neither
  is refused: there is no way to move there without risking an overwrite;
- across filesystems, the file is copied to a hidden temporary name in the target directory
  (created exclusively), fsynced, its page cache dropped and read back, and its SHA-256 compared
  with the source's as it was read (and with the catalog's, when known); only then is it renamed
  into place (no-replace again), the directory fsynced, and the source unlinked;
- a rename that changes only the case of a name goes through a temporary name in two steps, so
  it works on case-insensitive filesystems (vfat, exFAT, ext4 casefold), where the target name
  *is* the source and a direct rename is refused or does nothing.

The temporary names are fixed by the caller (the journal derives them from the plan step), so a
move interrupted by kill -9 or a power cut can be settled afterwards by looking at the disk.
Every function is blocking: call them from a worker thread.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import errno
import hashlib
import os
from dataclasses import dataclass

RENAME_NOREPLACE = 1
_AT_FDCWD = -100
CHUNK = 1 << 20

_libc = ctypes.CDLL(ctypes.util.find_library("c") or None, use_errno=True)
_renameat2 = getattr(_libc, "renameat2", None)
if _renameat2 is not None:
    _renameat2.argtypes = [
        ctypes.c_int,
        ctypes.c_char_p,
        ctypes.c_int,
        ctypes.c_char_p,
        ctypes.c_uint,
    ]
    _renameat2.restype = ctypes.c_int
_UNSUPPORTED = {errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP, errno.ENOTSUP}
_NO_HARD_LINKS = {errno.EPERM, errno.EOPNOTSUPP, errno.ENOTSUP, errno.EMLINK}


class MoveError(Exception):
    """A move that did not happen; ``reason`` is fit for the plan's report. The source is intact."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class TargetExists(MoveError):
    """Something already has the target name: it is never replaced."""


class SourceChanged(MoveError):
    """The source is not what the plan saw (changed, replaced or gone)."""


class CrossDevice(Exception):
    """Source and target are on different filesystems: copy instead (internal)."""


@dataclass(frozen=True, slots=True)
class Stat:
    """What identifies a file's content and place for the plan's checks."""

    size: int
    mtime_ns: int
    ctime_ns: int
    inode: int
    device: int

    @classmethod
    def of(cls, path: str) -> Stat:
        st = os.lstat(path)
        return cls(st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino, st.st_dev)


def _fs(path: str) -> bytes:
    return os.fsencode(path)


def rename_noreplace(source: str, target: str) -> str:
    """Rename on one filesystem, failing if ``target`` exists; returns the method used.

    Raises TargetExists, CrossDevice, MoveError (neither no-replace rename nor hard links), or
    the OSError of the rename (the source vanished: FileNotFoundError; read-only, full, ...)."""
    if _renameat2 is not None:
        if _renameat2(_AT_FDCWD, _fs(source), _AT_FDCWD, _fs(target), RENAME_NOREPLACE) == 0:
            return "rename"
        code = ctypes.get_errno()
        if code == errno.EEXIST:
            raise TargetExists(f"{target} exists")
        if code == errno.EXDEV:
            raise CrossDevice
        if code not in _UNSUPPORTED:
            raise OSError(code, os.strerror(code), source)
    try:
        os.link(source, target, follow_symlinks=False)
    except FileExistsError:
        raise TargetExists(f"{target} exists") from None
    except OSError as exc:
        if exc.errno == errno.EXDEV:
            raise CrossDevice from None
        if exc.errno in _NO_HARD_LINKS:
            raise MoveError(
                f"the filesystem of {os.path.dirname(target)} supports neither "
                "renameat2(RENAME_NOREPLACE) nor hard links: a move there could overwrite"
            ) from None
        raise
    os.unlink(source)
    return "link"


def fsync_dir(path: str) -> None:
    """Make a directory's entries (a rename, a new link) durable."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    except FileNotFoundError:
        return
    try:
        os.fsync(fd)
    except OSError as exc:  # some filesystems refuse fsync on directories; nothing to do then
        if exc.errno not in (errno.EINVAL, errno.EBADF):
            raise
    finally:
        os.close(fd)


def sha256_of(path: str, *, drop_cache: bool = False) -> str:
    digest = hashlib.sha256()
    fd = os.open(path, os.O_RDONLY)
    try:
        if drop_cache:
            # Read the copy back from the device, not from the pages just written.
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        while chunk := os.read(fd, CHUNK):
            digest.update(chunk)
    finally:
        os.close(fd)
    return digest.hexdigest()


def copy_verified(source: str, temporary: str, expected_sha256: str | None) -> str:
    """Copy ``source`` to ``temporary`` (created exclusively), fsynced and read back; returns
    the content's SHA-256. Raises SourceChanged (the bytes are not the expected ones, or the
    source changed while it was read) or MoveError (the copy reads back differently); the
    temporary file is removed on any failure."""
    before = Stat.of(source)
    digest = hashlib.sha256()
    out = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
    try:
        try:
            with open(source, "rb") as src:
                while chunk := src.read(CHUNK):
                    digest.update(chunk)
                    view = memoryview(chunk)
                    while view:
                        view = view[os.write(out, view) :]
            st = os.stat(source)
            os.fchmod(out, st.st_mode & 0o7777)
            os.utime(out, ns=(st.st_atime_ns, st.st_mtime_ns))
            os.fsync(out)
        finally:
            os.close(out)
        got = digest.hexdigest()
        after = Stat.of(source)
        if (before.size, before.mtime_ns, before.ctime_ns) != (
            after.size,
            after.mtime_ns,
            after.ctime_ns,
        ):
            raise SourceChanged(f"{source} changed while it was copied")
        if expected_sha256 is not None and got != expected_sha256:
            raise SourceChanged(f"{source} is not the content the catalog recorded (hash differs)")
        if sha256_of(temporary, drop_cache=True) != got:
            raise MoveError(f"the copy of {source} read back differently: the target disk is bad")
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)
        raise
    return got


def move_across(source: str, target: str, temporary: str, expected_sha256: str | None) -> str:
    """Copy-verify-link-unlink across filesystems (see the module docstring)."""
    copy_verified(source, temporary, expected_sha256)
    try:
        rename_noreplace(temporary, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)
        raise
    fsync_dir(os.path.dirname(target))
    os.unlink(source)
    return "copy"


def move_case(source: str, target: str, temporary: str) -> str:
    """A rename that changes only letter case, through ``temporary`` (same directory level)."""
    rename_noreplace(source, temporary)
    try:
        rename_noreplace(temporary, target)
    except BaseException:
        # Put it back under its own name; that name is free, it was ours a moment ago.
        rename_noreplace(temporary, source)
        raise
    return "case"


def move_file(
    source: str,
    target: str,
    *,
    temporary: str,
    case_only: bool = False,
    expected_sha256: str | None = None,
) -> str:
    """Move ``source`` to ``target`` without replacing anything; returns the method
    ("rename", "link", "case" or "copy"). Target directories must exist."""
    if case_only:
        return move_case(source, target, temporary)
    try:
        return rename_noreplace(source, target)
    except CrossDevice:
        return move_across(source, target, temporary, expected_sha256)


def make_dirs(path: str, stop: str) -> list[str]:
    """Create ``path`` and missing parents (not above ``stop``); returns those created, the
    outermost first (the journal records them, so undo removes exactly these)."""
    missing: list[str] = []
    probe = path
    while not os.path.isdir(probe):
        missing.append(probe)
        parent = os.path.dirname(probe)
        if parent == probe or probe == stop:
            break
        probe = parent
    created = []
    for directory in reversed(missing):
        try:
            os.mkdir(directory)
        except FileExistsError:
            if not os.path.isdir(directory):
                raise MoveError(f"{directory} exists and is not a directory") from None
            continue
        created.append(directory)
    return created


def remove_empty_dirs(start: str, stops: set[str]) -> list[str]:
    """Remove ``start`` and its parents while they are empty, never one of ``stops`` (the library
    roots). rmdir only ever removes an empty directory: nothing else can be lost."""
    removed = []
    directory = start
    while directory not in stops and directory != os.path.dirname(directory):
        try:
            os.rmdir(directory)
        except OSError:
            break  # not empty (or not ours to remove): stop here
        removed.append(directory)
        directory = os.path.dirname(directory)
    return removed


def entry_named(path: str) -> bool:
    """Whether the directory holds an entry spelled exactly like ``path``'s name (on a
    case-insensitive filesystem ``lexists`` also says yes for other spellings)."""
    try:
        return os.path.basename(path) in os.listdir(os.path.dirname(path) or ".")
    except OSError:
        return False


def rewrite_in_place(path: str, data: bytes) -> None:
    """Give ``path`` new contents (a cue sheet's FILE lines), keeping its inode, mode and times.

    Not atomic by itself: the caller journals the original bytes first (organise.journal), so a
    sheet torn by a crash is written again from the journal, and undo has the bytes to restore.
    Keeping the inode keeps the sheet the same file for the plan's identity checks."""
    st = os.stat(path)
    fd = os.open(path, os.O_WRONLY | os.O_CLOEXEC)
    try:
        view = memoryview(data)
        offset = 0
        while offset < len(data):
            offset += os.pwrite(fd, view[offset:], offset)
        os.ftruncate(fd, len(data))
        os.utime(fd, ns=(st.st_atime_ns, st.st_mtime_ns))
        os.fsync(fd)
    finally:
        os.close(fd)
