"""A tag write on a full disk leaves the original byte-identical and says why (and may retry).

A small tmpfs is mounted for the test (the test command runs as root, as CI does) and filled up
but for less than the file's size: the write's verified copy cannot be made. Without the mount
the test fails with the reason; it is never skipped.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support import audiogen, mounts
from tracktiond.tagwrite import TagValues, TagWriteOptions, write_tags


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    try:
        with mounts.tmpfs(tmp_path / "small", "4m") as mnt:
            yield mnt
    except mounts.MountUnavailable as exc:
        pytest.fail(str(exc))


def test_a_full_disk_fails_the_write_cleanly(small_disk: Path, tmp_path: Path) -> None:
    source = audiogen.make_audio(tmp_path / "track.flac", seconds=6.0)
    target = small_disk / "track.flac"
    target.write_bytes(source.read_bytes())
    original = target.read_bytes()
    # Fill what is left but for a few kB: no room for the write's copy of the file.
    free = os.statvfs(small_disk).f_bavail * os.statvfs(small_disk).f_frsize
    (small_disk / "filler").write_bytes(b"\0" * max(0, free - 8192))
    result = write_tags(
        str(target), TagValues(bpm=128.0, key_tonic="A", key_mode="minor"), TagWriteOptions()
    )
    assert not result.written
    # Refused before the copy (a free-space check) or when the copy hits ENOSPC: either way a
    # reason a user understands.
    assert result.error is not None and "space" in result.error, result
    assert result.retryable, "a full disk may be freed: the write is to be tried again"
    assert target.read_bytes() == original
    leftovers = [p.name for p in small_disk.iterdir() if p.name not in ("track.flac", "filler")]
    assert leftovers == [], f"the failed write left {leftovers}"
