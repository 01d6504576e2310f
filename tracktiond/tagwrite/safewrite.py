"""The safe write: copy the file next to itself, apply and verify the tags on the copy, give it
the original's attributes, and rename it over the original only if the original is still the
file that was copied. Any failure before the rename removes the copy; see docs/tagging.md."""

from __future__ import annotations

import contextlib
import errno
import os
import stat
import struct

from tracktiond.media.audiohash import is_ogg
from tracktiond.media.formats import AudioFormat
from tracktiond.media.hashing import CHUNK_BYTES
from tracktiond.media.tags import short_reason
from tracktiond.tagwrite.apply import _apply, _id3v1_tail, _load, _restore_id3v1, _save
from tracktiond.tagwrite.audiocheck import _audio_fingerprint, _catalog_audio_hash
from tracktiond.tagwrite.model import (
    TagValues,
    TagWriteOptions,
    TagWriteResult,
    _fail,
    _Failure,
    _os_reason,
    _Plan,
)
from tracktiond.tagwrite.plan import _check_writable, _describe, _plan
from tracktiond.tagwrite.tempfiles import _temp_path
from tracktiond.tagwrite.verify import _verify_copy


def _copy(src: int, dst: int, size: int) -> None:
    done = 0
    try:
        while done < size:  # in the kernel; a reflink on filesystems that share extents
            n = os.copy_file_range(src, dst, size - done, done, done)
            if n == 0:
                break
            done += n
    except OSError as exc:
        if exc.errno not in (errno.EXDEV, errno.ENOSYS, errno.EINVAL, errno.EOPNOTSUPP):
            raise
    while done < size:
        chunk = os.pread(src, min(CHUNK_BYTES, size - done), done)
        if not chunk:
            break
        done += os.pwrite(dst, chunk, done)
    if done != size:
        raise _Failure("the file shrank while it was copied", retryable=True)


def _preserve_attributes(src: int, dst: int, st: os.stat_result, warnings: list[str]) -> None:
    try:
        os.fchown(dst, st.st_uid, st.st_gid)
    except OSError:
        # Only root may give a file away; keep at least the group when we may.
        with contextlib.suppress(OSError):
            os.fchown(dst, -1, st.st_gid)
        now = os.fstat(dst)
        if (now.st_uid, now.st_gid) != (st.st_uid, st.st_gid):
            warnings.append(
                f"owner {st.st_uid}:{st.st_gid} could not be kept (now {now.st_uid}:{now.st_gid})"
            )
    os.fchmod(dst, stat.S_IMODE(st.st_mode))  # after chown, which may clear set-id bits
    try:
        names = os.listxattr(src)
    except OSError:
        names = []
    for name in names:  # ACLs and user.* attributes, best effort
        try:
            os.setxattr(dst, name, os.getxattr(src, name))
        except OSError:
            # security.* (SELinux labels, capabilities) are the kernel's to assign to new files
            if not name.startswith("security."):
                warnings.append(f"extended attribute {name} could not be kept")


def _same_file(a: os.stat_result, b: os.stat_result) -> bool:
    return (a.st_ino, a.st_dev, a.st_size, a.st_mtime_ns) == (
        b.st_ino,
        b.st_dev,
        b.st_size,
        b.st_mtime_ns,
    )


def _fsync_dir(directory: str, warnings: list[str]) -> None:
    try:
        fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError as exc:
        warnings.append(f"directory not synced: {exc.strerror}")
        return
    try:
        os.fsync(fd)
    except OSError as exc:  # some filesystems (FUSE, network) refuse fsync on directories
        if exc.errno not in (errno.EINVAL, errno.EOPNOTSUPP):
            warnings.append(f"directory not synced: {exc.strerror}")
    finally:
        os.close(fd)


def write_tags(path: str, values: TagValues, options: TagWriteOptions) -> TagWriteResult:
    """Write ``values`` into ``path`` safely; see the package docstring. Never raises for a
    problem with the file: the result says what was written, skipped or failed, and why."""
    result = TagWriteResult(path=path)
    try:
        plan = _plan(path, values, options)
        _describe(result, plan)
        if plan.changes:
            _check_writable(plan.target, plan.stat)
            _write(plan, result)
    except _Failure as f:
        _fail(result, f)
    return result


def _write(plan: _Plan, result: TagWriteResult) -> None:
    target, fmt = plan.target, plan.fmt
    try:
        src = os.open(target, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError as exc:
        raise _os_reason(exc, "opening it") from None
    tmp = _temp_path(target)
    dst = -1
    replaced = False
    try:
        before = os.fstat(src)
        if not _same_file(before, plan.stat):
            raise _Failure("the file changed while it was being planned", retryable=True)
        space = os.statvfs(os.path.dirname(target))
        if space.f_bavail * space.f_frsize < before.st_size + (1 << 20):
            raise _Failure("not enough free space for a temporary copy", retryable=True)
        try:
            fingerprint = _audio_fingerprint(src, fmt)
        except (OSError, struct.error, ValueError, IndexError) as exc:
            raise _Failure(f"cannot locate its audio ({type(exc).__name__})") from None
        try:
            dst = os.open(
                tmp, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600
            )
        except OSError as exc:
            raise _os_reason(exc, "creating a temporary copy next to it") from None
        try:
            _copy(src, dst, before.st_size)
        except OSError as exc:
            raise _os_reason(exc, "copying it") from None
        if not _same_file(os.fstat(src), before):
            raise _Failure("the file changed while it was copied", retryable=True)

        audio, _ = _load(tmp, fmt, plan.system)
        # A second, untouched load to compare against: _apply edits `audio` in place.
        reference, _ = _load(tmp, fmt, plan.system)
        id3v1 = _id3v1_tail(src, before.st_size) if fmt is AudioFormat.MP3 else None
        try:
            _apply(audio, plan)
            _save(audio, plan)
        except _Failure:
            raise
        except OSError as exc:
            raise _os_reason(exc, "writing the tags") from None
        except Exception as exc:
            raise _Failure(
                f"mutagen could not write the tags ({type(exc).__name__}: {short_reason(exc)})"
            ) from None
        if id3v1 is not None:
            _restore_id3v1(dst, id3v1)
        os.fsync(dst)

        _verify_copy(dst, tmp, plan, reference, fingerprint)
        result.audio_hash = _catalog_audio_hash(dst, fmt) if is_ogg(fmt) else fingerprint[0]

        _preserve_attributes(src, dst, before, result.warnings)
        now = os.fstat(dst)
        os.utime(dst, ns=(before.st_atime_ns, now.st_mtime_ns))
        os.fsync(dst)
        _replace(tmp, target, before)
        replaced = True
        result.written = True
        _fsync_dir(os.path.dirname(target), result.warnings)
        final = os.fstat(dst)
        result.new_size, result.new_mtime_ns = final.st_size, final.st_mtime_ns
        result.new_ctime_ns, result.new_inode, result.new_device = (
            final.st_ctime_ns,
            final.st_ino,
            final.st_dev,
        )
    except OSError as exc:
        raise _os_reason(exc, "writing it safely") from None
    finally:
        os.close(src)
        if dst >= 0:
            os.close(dst)
        if not replaced:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)


def _replace(tmp: str, target: str, before: os.stat_result) -> None:
    # Last look before the rename: a file deleted meanwhile must not come back, and a file
    # someone else changed meanwhile must not lose their change. (A change in the instant between
    # this look and the rename cannot be excluded without a lock every other tool would honour.)
    try:
        now = os.lstat(target)
    except FileNotFoundError:
        raise _Failure("the file vanished during the write; nothing written") from None
    if not _same_file(now, before):
        raise _Failure("the file changed during the write; not replaced", retryable=True)
    os.replace(tmp, target)
