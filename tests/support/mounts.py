"""Small filesystems of the tests' own: a tmpfs mounted for one test (the test command runs as
root, as CI does), for a second filesystem or a disk that fills up."""

from __future__ import annotations

import contextlib
import subprocess
from collections.abc import Iterator
from pathlib import Path


class MountUnavailable(RuntimeError):
    """The tmpfs could not be mounted; the message says why (usually: not root)."""


@contextlib.contextmanager
def tmpfs(mountpoint: Path, size: str) -> Iterator[Path]:
    """Mount a tmpfs of ``size`` (e.g. "4m") at ``mountpoint`` (created) for the block."""
    mountpoint.mkdir(parents=True, exist_ok=True)
    proc = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(mountpoint)],
        capture_output=True,
        text=True,
        check=False,
    )
    if proc.returncode != 0:
        raise MountUnavailable(f"cannot mount a tmpfs at {mountpoint}: {proc.stderr.strip()}")
    try:
        yield mountpoint
    finally:
        subprocess.run(["umount", str(mountpoint)], check=False)
