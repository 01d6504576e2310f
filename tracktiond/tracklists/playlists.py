"""M3U8 playlists: one per set, listing the library files it plays, in order.

``#EXTM3U`` with ``#EXTINF:<seconds>,<artist> - <title>`` before each path; UTF-8 (that is what
the 8 says); absolute paths, which every player reads wherever the playlist is put. File names
come from the set's name, made safe for any filesystem, and never replace each other.
"""

from __future__ import annotations

import re

from tracktiond.tracklists.exportdata import Export, SetExport

_UNSAFE = re.compile(r'[\x00-\x1f/\\:*?"<>|]+')


def m3u8_text(export: Export, s: SetExport) -> str:
    lines = ["#EXTM3U", f"#PLAYLIST:{_line(s.name)}"]
    for rec in s.matched():
        t = export.tracks.get(rec)
        if t is None:
            continue
        seconds = round(t.duration) if t.duration else -1
        name = " - ".join(p for p in (t.artist, t.title) if p) or t.path.rsplit("/", 1)[-1]
        lines += [f"#EXTINF:{seconds},{_line(name)}", t.path]
    return "\n".join(lines) + "\n"


def _line(text: str) -> str:
    return " ".join(text.split())


def playlist_names(export: Export) -> list[str]:
    """A distinct, safe file name for each set's playlist (in ``export.sets`` order)."""
    names: list[str] = []
    taken: set[str] = set()
    for s in export.sets:
        base = _UNSAFE.sub("_", s.name).strip(" .") or "set"
        base = base[:200]
        name, n = f"{base}.m3u8", 2
        while name.casefold() in taken:
            name, n = f"{base} ({n}).m3u8", n + 1
        taken.add(name.casefold())
        names.append(name)
    return names
