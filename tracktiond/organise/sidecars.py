"""Which files travel with an audio file: sidecars of the same stem, and a directory's cover art.

A sidecar of ``Set.flac`` is a file in the same directory named ``Set.<ext>`` or
``Set.flac.<ext>`` where ``<ext>`` (any case) is one of :data:`SIDECAR_EXTENSIONS`: cue sheets,
lyrics, text tracklists, NFO, rip logs, AccurateRip and SFV checksums, playlists. It takes the
audio file's new stem and keeps the rest of its name (``Set.flac.cue`` → ``New.flac.cue``).
A sidecar whose stem is shared by several audio files (``Set.flac`` and ``Set.mp3``) belongs to
none of them alone and stays where it is (the plan says so).

Cover images (:data:`COVER_NAMES`, any case) belong to the directory, not to one file: they move
only when the whole directory moves — every other entry in it is audio or sidecars moving to
one and the same new directory.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

SIDECAR_EXTENSIONS = frozenset({"cue", "lrc", "txt", "nfo", "log", "accurip", "sfv", "m3u8", "m3u"})
COVER_NAMES = frozenset(
    {"cover.jpg", "cover.jpeg", "cover.png", "folder.jpg", "folder.jpeg", "folder.png"}
)


@dataclass(frozen=True, slots=True)
class Sidecar:
    name: str  # its name in the audio file's directory
    rest: str  # what follows the audio stem: ".cue", ".flac.cue", ".LRC"


def stem_of(name: str) -> str:
    dot = name.rfind(".")
    return name[:dot] if dot > 0 else name


def sidecars_of(audio_name: str, entries: list[str]) -> list[Sidecar]:
    """The sidecars of ``audio_name`` among the directory's ``entries`` (names)."""
    stem = stem_of(audio_name)
    found = []
    for name in entries:
        if name == audio_name:
            continue
        for base in (audio_name, stem):
            if name.startswith(base + ".") and len(name) > len(base) + 1:
                ext = name[len(base) + 1 :]
                if ext.lower() in SIDECAR_EXTENSIONS:
                    found.append(Sidecar(name, name[len(base) :]))
                    break
    return found


def is_cover(name: str) -> bool:
    return name.lower() in COVER_NAMES


def printable(name: str) -> bool:
    """A name we can store and report: valid UTF-8 (no surrogate escapes from undecodable bytes)."""
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def list_dir(directory: str) -> list[str]:
    try:
        return sorted(os.listdir(directory))
    except OSError:
        return []
