"""Cue sheets: the tracklists of DJ sets and live recordings.

A cue sheet next to a recording with the same name (``set.flac`` + ``set.cue``) lists the tracks
inside it with their start times. It is read when the recording is ingested and stored as the
recording's tracklist (source "cue"), which the graph uses to find recordings that share tracks.
Only the fields tracktiond uses are parsed: PERFORMER, TITLE and INDEX 01 of each TRACK.
"""

from __future__ import annotations

import os
import re
from typing import Any

MAX_CUE_BYTES = 1 << 20  # a cue sheet is text: anything larger is not one

_LINE = re.compile(r"^\s*(\w+)\s+(.*?)\s*$")


def sibling_cue(path: str) -> str | None:
    """The cue sheet belonging to ``path``, if there is one (same name, .cue extension)."""
    stem, _ = os.path.splitext(path)
    for candidate in (stem + ".cue", stem + ".CUE", path + ".cue"):
        if os.path.isfile(candidate):
            return candidate
    return None


def _unquote(text: str) -> str:
    text = text.strip()
    if len(text) >= 2 and text[0] == text[-1] == '"':
        return text[1:-1]
    return text


def _seconds(index: str) -> float | None:
    # INDEX 01 mm:ss:ff — frames are 1/75 s (CD frames); minutes may exceed 99 in long sets
    parts = index.split()
    stamp = parts[-1] if parts else ""
    m = re.fullmatch(r"(\d+):(\d{1,2}):(\d{1,2})", stamp)
    if not m:
        return None
    return int(m.group(1)) * 60 + int(m.group(2)) + int(m.group(3)) / 75


def parse_cue(path: str) -> list[dict[str, Any]] | None:
    """Tracks as [{"number", "title", "artist", "start_time"}], or None if unreadable."""
    try:
        if os.path.getsize(path) > MAX_CUE_BYTES:
            return None
        with open(path, "rb") as fh:
            raw = fh.read()
    except OSError:
        return None
    for encoding in ("utf-8-sig", "cp1252", "latin-1"):
        try:
            text = raw.decode(encoding)
            break
        except UnicodeDecodeError:
            continue
    album_artist: str | None = None
    tracks: list[dict[str, Any]] = []
    current: dict[str, Any] | None = None
    for line in text.splitlines():
        match = _LINE.match(line)
        if not match:
            continue
        command, rest = match.group(1).upper(), match.group(2)
        if command == "TRACK":
            number = rest.split()[0] if rest.split() else ""
            current = {"number": int(number) if number.isdigit() else len(tracks) + 1}
            tracks.append(current)
        elif command == "PERFORMER":
            if current is None:
                album_artist = _unquote(rest)
            else:
                current["artist"] = _unquote(rest)
        elif command == "TITLE" and current is not None:
            current["title"] = _unquote(rest)
        elif command == "INDEX" and current is not None and rest.split()[:1] == ["01"]:
            current["start_time"] = _seconds(rest)
    out = []
    for t in tracks:
        if not t.get("title"):
            continue
        out.append(
            {
                "number": t["number"],
                "title": t["title"],
                "artist": t.get("artist") or album_artist,
                "start_time": t.get("start_time"),
            }
        )
    return out or None
