"""One streamed read per file computes both content hashes.

sha256 is the durable identity (the data model's ``sha256_hash``); xxh128 is the cheap one
(``xxh128_hash``) used for quick comparisons. The read is sequential in fixed-size chunks into one
reused buffer, so memory does not depend on file size; hashlib releases the GIL on large buffers,
so several files hash in parallel on worker threads.
"""

from __future__ import annotations

import errno
import hashlib
import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import xxhash

from tracktiond.errors import BadInput, FileStillArriving, FileVanished, TransientFileError
from tracktiond.media.formats import SNIFF_BYTES

CHUNK_BYTES = 1 << 20


@dataclass(frozen=True, slots=True)
class FileDigest:
    sha256: str
    xxh128: str
    size: int
    mtime_ns: int
    inode: int
    device: int
    ctime_ns: int
    head: bytes  # the first SNIFF_BYTES, for content sniffing without a second read
    audio_xxh128: str | None = None  # xxh3-128 of the planned audio byte ranges, if any


class AudioHasher(Protocol):
    """Hashes the audio payload of a file while digest_file streams all of it past."""

    def update(self, chunk: memoryview, offset: int) -> None:
        """The file's bytes from ``offset`` on, in order, chunk by chunk."""

    def hexdigest(self) -> str | None:
        """The payload's digest; None when the file turned out not to allow one."""


# Given (fd, first bytes, size), a hasher for the audio payload, or None to skip it.
AudioPlanner = Callable[[int, bytes, int], AudioHasher | None]


def digest_file(path: str, plan: AudioPlanner | None = None) -> FileDigest:
    """Hash ``path`` in one pass; raise BadInput / TransientFileError with a reason.

    With ``plan``, the audio payload without tags is also hashed on its own, in the same pass.
    """
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        raise FileVanished("file vanished before it could be read") from None
    except PermissionError:
        raise BadInput("permission denied") from None
    except IsADirectoryError:
        raise BadInput("is a directory, not a file") from None
    except OSError as exc:
        raise _classify_os_error(exc) from None
    try:
        before = os.fstat(fd)
        if hasattr(os, "posix_fadvise"):
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_SEQUENTIAL)
        audio: AudioHasher | None = None
        if plan is not None and before.st_size > 0:
            try:
                audio = plan(fd, os.pread(fd, SNIFF_BYTES, 0), before.st_size)
            except OSError as exc:
                raise _classify_os_error(exc) from None
        sha = hashlib.sha256()
        xxh = xxhash.xxh3_128()
        buf = bytearray(CHUNK_BYTES)
        view = memoryview(buf)
        head = b""
        total = 0
        while True:
            try:
                n = os.readv(fd, [buf])
            except OSError as exc:
                raise _classify_os_error(exc) from None
            if n == 0:
                break
            chunk = view[:n]
            if total < SNIFF_BYTES:
                head += bytes(chunk[: SNIFF_BYTES - total])
            sha.update(chunk)
            xxh.update(chunk)
            if audio is not None:
                audio.update(chunk, total)
            total += n
        after = os.fstat(fd)
    finally:
        os.close(fd)
    if (after.st_size, after.st_mtime_ns) != (
        before.st_size,
        before.st_mtime_ns,
    ) or total != after.st_size:
        raise FileStillArriving("file changed while it was being read: still being written")
    return FileDigest(
        sha256=sha.hexdigest(),
        xxh128=xxh.hexdigest(),
        size=total,
        mtime_ns=after.st_mtime_ns,
        inode=after.st_ino,
        device=after.st_dev,
        ctime_ns=after.st_ctime_ns,
        head=head,
        audio_xxh128=audio.hexdigest() if audio is not None else None,
    )


def _classify_os_error(exc: OSError) -> Exception:
    if exc.errno == errno.ELOOP:
        return BadInput("symbolic link loop")
    if exc.errno in (errno.EACCES, errno.EPERM):
        return BadInput("permission denied")
    if exc.errno == errno.ENOENT:
        return FileVanished("file vanished while it was being read")
    if exc.errno in (errno.EIO, errno.ESTALE, errno.ETIMEDOUT, errno.EAGAIN):
        return TransientFileError(f"I/O error: {exc.strerror}")
    return BadInput(f"cannot read: {exc.strerror or exc}")
