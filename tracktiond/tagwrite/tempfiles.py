"""The hidden temporary copies a write puts next to the file: their names, and removing the ones
left behind by writes that were killed."""

from __future__ import annotations

import os
import re
import secrets
import time

_TEMP_NAME = re.compile(r"\..*\.tracktiond-[0-9a-f]{8}\.tmp", re.DOTALL)
_NAME_MAX = 255


def is_temp_name(name: str) -> bool:
    """Is ``name`` one of write_tags' temporary copies? (media.formats ignores them too.)"""
    return _TEMP_NAME.fullmatch(name) is not None


def _temp_path(target: str) -> str:
    directory, name = os.path.split(target)
    suffix = f".tracktiond-{secrets.token_hex(4)}.tmp"
    while name and len(os.fsencode(f".{name}{suffix}")) > _NAME_MAX:
        name = name[:-1]  # long names are shortened: the temp name must fit NAME_MAX
    return os.path.join(directory, f".{name}{suffix}")


# --- Leftovers of interrupted writes -------------------------------------------------------------


def cleanup_stale_temp_files(
    directory: str, *, min_age_seconds: float = 3600.0, recursive: bool = False
) -> list[str]:
    """Remove temporary copies left by writes that were killed; return the removed paths.

    Only files named like write_tags' copies and untouched for ``min_age_seconds`` are removed:
    a younger one may belong to a write in progress (another thread, or another tracktiond
    instance sharing the library). Unreadable directories are passed over.
    """
    removed: list[str] = []
    cutoff = time.time() - min_age_seconds
    try:
        entries = list(os.scandir(directory))
    except OSError:
        return removed
    for entry in entries:
        try:
            if recursive and entry.is_dir(follow_symlinks=False):
                removed += cleanup_stale_temp_files(
                    entry.path, min_age_seconds=min_age_seconds, recursive=True
                )
            elif (
                is_temp_name(entry.name)
                and entry.is_file(follow_symlinks=False)
                and entry.stat(follow_symlinks=False).st_mtime <= cutoff
            ):
                os.unlink(entry.path)
                removed.append(entry.path)
        except OSError:
            continue  # vanished or not ours to remove: nothing to clean
    return removed
