"""Traktor NML (``collection.nml`` format): entries with BPM, key and cue points, playlists per set.

NML is plain XML; the only NML library on PyPI is GPL-3.0-only, and the standard library writes
it. What Traktor reads: ``COLLECTION/ENTRY`` with ``LOCATION`` (``DIR`` is the directory with
every separator written ``/:``, ``FILE`` the name, ``VOLUME`` the drive — empty on Linux),
``INFO`` (``PLAYTIME`` seconds, ``KEY`` as text), ``TEMPO BPM``, ``MUSICAL_KEY VALUE`` (0–11 the
major keys from C, 12–23 the minor keys from Cm), ``CUE_V2`` (``START`` in milliseconds; TYPE 0
a cue point); playlists name their entries by ``PRIMARYKEY`` = volume + dir + file.
"""

from __future__ import annotations

import io
import os
import uuid
from typing import IO

from tracktiond.catalog.tracklistvalues import LibraryTrack
from tracktiond.media.keys import Key
from tracktiond.tracklists.exportdata import Export
from tracktiond.tracklists.rekordbox import XmlWriter


def nml_dir(path: str) -> str:
    """``/music/sets/a.mp3`` → ``/:music/:sets/:``."""
    parts = [p for p in os.path.dirname(os.path.abspath(path)).split("/") if p]
    return "/:" + "".join(f"{p}/:" for p in parts)


def primary_key(path: str, volume: str = "") -> str:
    return volume + nml_dir(path) + os.path.basename(path)


def musical_key(key: str | None) -> int | None:
    if not key:
        return None
    try:
        parsed = Key.parse(key)
    except ValueError:
        return None
    return parsed.tonic + (12 if parsed.minor else 0)


def _entry(w: XmlWriter, t: LibraryTrack, cues: list[tuple[str, float]]) -> None:
    w.open("ENTRY", {"TITLE": t.title or os.path.basename(t.path), "ARTIST": t.artist or ""})
    w.leaf(
        "LOCATION",
        {"DIR": nml_dir(t.path), "FILE": os.path.basename(t.path), "VOLUME": "", "VOLUMEID": ""},
    )
    if t.album:
        w.leaf("ALBUM", {"TITLE": t.album})
    info = {"PLAYTIME": str(round(t.duration)) if t.duration else "0"}
    if t.genre:
        info["GENRE"] = t.genre
    value = musical_key(t.key)
    if value is not None and t.key:
        info["KEY"] = Key.parse(t.key).short()
    w.leaf("INFO", info)
    if t.bpm:
        w.leaf("TEMPO", {"BPM": f"{t.bpm:.6f}", "BPM_QUALITY": "100.000000"})
    if value is not None:
        w.leaf("MUSICAL_KEY", {"VALUE": str(value)})
    for order, (name, start) in enumerate(cues):
        w.leaf(
            "CUE_V2",
            {
                "NAME": name,
                "DISPL_ORDER": str(order),
                "TYPE": "0",
                "START": f"{start * 1000:.6f}",
                "LEN": "0.000000",
                "REPEATS": "-1",
                "HOTCUE": "-1",
            },
        )
    w.close("ENTRY")


def write_traktor(export: Export, out: IO[str]) -> None:
    w = XmlWriter(out)
    w.open("NML", {"VERSION": "19"})
    w.leaf("HEAD", {"COMPANY": "www.native-instruments.com", "PROGRAM": "Traktor"})
    sets = {s.recording.recording_id: s for s in export.sets}
    w.open("COLLECTION", {"ENTRIES": str(len(export.tracks))})
    for rec in sorted(export.tracks, key=str):
        s = sets.get(rec)
        cues = []
        if s is not None:
            for stored in s.tracklist.entries:
                e = stored.entry
                if e.start is not None:
                    name = "ID" if e.unknown else " - ".join(p for p in (e.artist, e.title) if p)
                    cues.append((name, e.start))
        _entry(w, export.tracks[rec], cues)
    w.close("COLLECTION")
    w.open("PLAYLISTS", {})
    w.open("NODE", {"TYPE": "FOLDER", "NAME": "$ROOT"})
    w.open("SUBNODES", {"COUNT": str(len(export.sets))})
    for s in export.sets:
        members = [export.tracks[r] for r in s.matched() if r in export.tracks]
        w.open("NODE", {"TYPE": "PLAYLIST", "NAME": s.name})
        playlist_id = uuid.uuid5(uuid.NAMESPACE_URL, str(s.tracklist.id)).hex
        w.open("PLAYLIST", {"ENTRIES": str(len(members)), "TYPE": "LIST", "UUID": playlist_id})
        for t in members:
            w.open("ENTRY", {})
            w.leaf("PRIMARYKEY", {"TYPE": "TRACK", "KEY": primary_key(t.path)})
            w.close("ENTRY")
        w.close("PLAYLIST")
        w.close("NODE")
    w.close("SUBNODES")
    w.close("NODE")
    w.close("PLAYLISTS")
    w.close("NML")


def traktor_text(export: Export) -> str:
    buffer = io.StringIO()
    write_traktor(export, buffer)
    return buffer.getvalue()
