"""rekordbox XML (``DJ_PLAYLISTS``): the collection with BPM, key, cue points; a playlist per set.

What rekordbox reads from "Imported Library": ``COLLECTION/TRACK`` with ``Location`` (a
``file://localhost`` URI: the path percent-encoded as UTF-8, one slash after ``localhost`` —
pyrekordbox's writer doubles it for POSIX paths, which rekordbox cannot find), ``AverageBpm``,
``Tonality`` (rekordbox's own key names: "Am", "F#m"), ``TotalTime`` in whole seconds, a
``TEMPO`` grid marker (``Inizio`` = where the first beat is; 0 when the analysis does not say),
and ``POSITION_MARK`` memory cues; ``PLAYLISTS`` holds a ``ROOT`` folder node with one playlist
node (``Type="1"``, ``KeyType="0"``: entries by TrackID) per set. Written as a stream
(``XmlWriter``), so a 500,000-track library costs no more memory than a small one.
"""

from __future__ import annotations

import io
import os
import re
from typing import IO
from urllib.parse import quote
from xml.sax.saxutils import quoteattr

from tracktiond import __version__
from tracktiond.catalog.tracklistvalues import LibraryTrack
from tracktiond.media.keys import Key
from tracktiond.tracklists.exportdata import Export

_KINDS = {
    "mp3": "MP3 File", "m4a": "M4A File", "mp4": "M4A File", "aac": "AAC File",
    "flac": "FLAC File", "wav": "WAV File", "aif": "AIFF File", "aiff": "AIFF File",
    "ogg": "OGG File",
}  # fmt: skip


_XML_INVALID = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")


def location(path: str) -> str:
    """``/music/a b.mp3`` → ``file://localhost/music/a%20b.mp3``."""
    return "file://localhost" + quote(os.path.abspath(path), safe="/")


def tonality(key: str | None) -> str | None:
    if not key:
        return None
    try:
        return Key.parse(key).short()
    except ValueError:
        return None


def _number(value: float) -> str:
    return f"{value:.2f}"


class XmlWriter:
    """A small streaming XML writer: one element per line, indented, attributes escaped.

    Values lose the characters XML 1.0 cannot hold at all (control characters but tab and line
    breaks, which ``quoteattr`` writes as character references)."""

    def __init__(self, out: IO[str]) -> None:
        self.out = out
        self.depth = 0
        out.write('<?xml version="1.0" encoding="UTF-8"?>\n')

    def _tag(self, name: str, attrs: dict[str, str]) -> str:
        parts = "".join(f" {k}={quoteattr(_XML_INVALID.sub('', v))}" for k, v in attrs.items())
        return f"{'  ' * self.depth}<{name}{parts}"

    def open(self, name: str, attrs: dict[str, str]) -> None:
        self.out.write(self._tag(name, attrs) + ">\n")
        self.depth += 1

    def close(self, name: str) -> None:
        self.depth -= 1
        self.out.write(f"{'  ' * self.depth}</{name}>\n")

    def leaf(self, name: str, attrs: dict[str, str]) -> None:
        self.out.write(self._tag(name, attrs) + "/>\n")


def _track_attrs(track_id: int, t: LibraryTrack, size: int | None) -> dict[str, str]:
    ext = os.path.splitext(t.path)[1].lstrip(".").lower()
    attrs = {
        "TrackID": str(track_id),
        "Name": t.title or os.path.splitext(os.path.basename(t.path))[0],
        "Artist": t.artist or "",
        "Album": t.album or "",
        "Genre": t.genre or "",
        "Kind": _KINDS.get(ext, f"{ext.upper()} File"),
        "TotalTime": str(round(t.duration)) if t.duration else "0",
        "Location": location(t.path),
    }
    if size is not None:
        attrs["Size"] = str(size)
    if t.bpm:
        attrs["AverageBpm"] = _number(t.bpm)
    key = tonality(t.key)
    if key:
        attrs["Tonality"] = key
    return attrs


def write_rekordbox(export: Export, out: IO[str]) -> None:
    """The export as rekordbox XML on ``out`` (text, UTF-8)."""
    w = XmlWriter(out)
    w.open("DJ_PLAYLISTS", {"Version": "1.0.0"})
    w.leaf("PRODUCT", {"Name": "tracktiond", "Version": __version__, "Company": "tracktiond"})
    ids = {rec: n for n, rec in enumerate(sorted(export.tracks, key=str), start=1)}
    cues = {s.recording.recording_id: s for s in export.sets}
    w.open("COLLECTION", {"Entries": str(len(ids))})
    for rec, track_id in ids.items():
        t = export.tracks[rec]
        w.open("TRACK", _track_attrs(track_id, t, None))
        if t.bpm:
            start = f"{t.first_beat or 0.0:.3f}"
            w.leaf(
                "TEMPO", {"Inizio": start, "Bpm": _number(t.bpm), "Metro": "4/4", "Battito": "1"}
            )
        set_export = cues.get(rec)
        if set_export is not None:
            for stored in set_export.tracklist.entries:
                e = stored.entry
                if e.start is None:
                    continue
                name = "ID" if e.unknown else " - ".join(p for p in (e.artist, e.title) if p)
                # Type 0 = cue point; Num -1 = a memory cue (not one of the 8 hot cues).
                w.leaf(
                    "POSITION_MARK",
                    {"Name": name, "Type": "0", "Start": f"{e.start:.3f}", "Num": "-1"},
                )
        w.close("TRACK")
    w.close("COLLECTION")
    w.open("PLAYLISTS", {})
    w.open("NODE", {"Type": "0", "Name": "ROOT", "Count": str(len(export.sets))})
    for s in export.sets:
        members = [ids[r] for r in s.matched() if r in ids]
        w.open("NODE", {"Name": s.name, "Type": "1", "KeyType": "0", "Entries": str(len(members))})
        for track_id in members:
            w.leaf("TRACK", {"Key": str(track_id)})
        w.close("NODE")
    w.close("NODE")
    w.close("PLAYLISTS")
    w.close("DJ_PLAYLISTS")


def rekordbox_text(export: Export) -> str:
    buffer = io.StringIO()
    write_rekordbox(export, buffer)
    return buffer.getvalue()
