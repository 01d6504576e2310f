"""Files next to audio that may hold its tracklist: cue sheets and pasted tracklists.

Decided from the name alone, like ``formats.is_candidate`` for audio: ``.cue`` is a cue sheet;
``.txt`` and ``.tracklist`` are pasted lists (a ``.txt`` counts only when it is named like an
audio file next to it, which the tracklist stage checks: a ``README.txt`` is no tracklist).
"""

from __future__ import annotations

import os

from tracktiond.media.formats import extension

SIDECAR_KINDS = {"cue": "cue", "txt": "text", "tracklist": "text"}
MAX_SIDECAR_BYTES = 1 << 20  # a sheet or list is text: anything larger is not one


def sidecar_kind(name: str) -> str | None:
    """ "cue", "text", or None for a name that holds no tracklist."""
    base = os.path.basename(name)
    if base.startswith(".") or base.endswith("~"):
        return None
    return SIDECAR_KINDS.get(extension(base) or "")


def stem(path: str) -> str:
    """``/m/set.flac`` → ``/m/set``: how a list names the audio it belongs to (``set.txt``);
    ``set.flac.cue`` names ``set.flac`` itself."""
    return os.path.splitext(path)[0]
