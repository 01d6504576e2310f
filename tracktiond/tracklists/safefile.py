"""Writing a file atomically, and never over someone else's file.

Everything tracktiond writes for tracklists (cue sheets next to recordings, exports) goes to a
temporary file in the target's directory, is flushed to disk, and then takes the target's name
in one step: a crash leaves the old file or the new one, never half of one. A new file is
linked into place (``link`` fails when the name was taken meanwhile; ``rename`` would replace
it silently); only ``replace=True`` puts it over an existing file.
"""

from __future__ import annotations

import os
import secrets

from tracktiond.errors import TracktiondError


class WriteRefused(TracktiondError):
    """The target exists and is not ours to replace, or cannot be written; says which and why."""


def write_atomic(path: str, data: bytes, *, replace: bool = False) -> None:
    directory = os.path.dirname(os.path.abspath(path))
    tmp = os.path.join(directory, f".{os.path.basename(path)}.tracktiond-{secrets.token_hex(4)}")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    except OSError as exc:
        raise WriteRefused(f"{path}: cannot write in {directory}: {exc.strerror}") from None
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        if replace:
            os.replace(tmp, path)
        else:
            try:
                os.link(tmp, path)
            except FileExistsError:
                raise WriteRefused(f"{path} exists; not replaced") from None
            os.unlink(tmp)
        dir_fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(dir_fd)  # the new name itself survives a power loss
        finally:
            os.close(dir_fd)
    except OSError as exc:
        raise WriteRefused(f"{path}: cannot write: {exc.strerror}") from None
    finally:
        if os.path.lexists(tmp):
            os.unlink(tmp)
