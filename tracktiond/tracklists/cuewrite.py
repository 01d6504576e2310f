"""A tracklist as a cue sheet, in flavours, with BPM and key of the tracks the library holds.

The replaced system's flavours differed in which REM lines they print; so do ours, plus what a
target needs around them:

============  ===================================================================  =========
flavour       per track                                                            line end
============  ===================================================================  =========
standard      TITLE, PERFORMER, ``REM BPM``, ``REM KEY`` (Am), ``REM CAMELOT`` (8A)  LF
cdj           TITLE, PERFORMER only (players that read a sheet off a USB stick)     CRLF
rekordbox     TITLE, PERFORMER, ``REM BPM``, ``REM KEY`` in Camelot (8A)            CRLF
kodi          TITLE, PERFORMER, disc ``REM DATE`` / ``REM GENRE`` kept, no BPM/key  LF
============  ===================================================================  =========

Never invented: an entry without a start time is left out (with a warning), not placed five
minutes after the one before. Entries played over another (``w/``) become ``REM WITH`` of the
track they go with. Quotes are escaped, minutes run past 99 (``125:30:12``), there is no track
cap; the cdj and rekordbox flavours warn past 99 tracks (CDJs and rekordbox stop there). A
tracklist read from a cue sheet is written from that sheet: its REMs, ISRCs, flags and gaps are
kept, the FILE names the recording as it is named now.
"""

from __future__ import annotations

import codecs
import os
import uuid
from collections.abc import Mapping
from dataclasses import dataclass

from tracktiond.catalog.tracklistvalues import LibraryTrack, StoredEntry, StoredTracklist
from tracktiond.errors import TracktiondError
from tracktiond.media.cuesheet import (
    CueFile,
    CueIndex,
    CueSheet,
    CueSheetError,
    CueTrack,
    Rem,
    parse_cue,
    render_cue,
    seconds_to_frames,
)
from tracktiond.media.keys import Key

FLAVOURS = ("standard", "cdj", "rekordbox", "kodi")
MARKER = "written by tracktiond"  # REM COMMENT: a sheet we may replace without being told
_CAPPED = {"cdj": "CDJ players", "rekordbox": "rekordbox"}
_OUR_REMS = {"BPM", "KEY", "CAMELOT", "WITH"}
_FILE_TYPES = {"mp3": "MP3", "aif": "AIFF", "aiff": "AIFF"}


class CueWriteError(TracktiondError):
    pass


@dataclass(frozen=True, slots=True)
class WrittenCue:
    text: str
    sheet: CueSheet
    warnings: tuple[str, ...]


def _key_rems(flavour: str, key: str | None) -> list[Rem]:
    if not key or flavour in ("cdj", "kodi"):
        return []
    try:
        parsed = Key.parse(key)
    except ValueError:
        return []
    if flavour == "rekordbox":
        return [Rem("KEY", parsed.camelot)]
    return [Rem("KEY", parsed.short()), Rem("CAMELOT", parsed.camelot)]


def _bpm_rems(flavour: str, bpm: float | None) -> list[Rem]:
    if bpm is None or flavour in ("cdj", "kodi"):
        return []
    return [Rem("BPM", f"{bpm:.2f}".rstrip("0").rstrip("."))]


def _base_sheet(tracklist: StoredTracklist) -> CueSheet | None:
    if tracklist.format != "cue" or not tracklist.document:
        return None
    try:
        return parse_cue(tracklist.document).sheet
    except CueSheetError:
        return None


def build_cue(
    tracklist: StoredTracklist,
    recording_path: str,
    library: Mapping[uuid.UUID, LibraryTrack],
    *,
    flavour: str = "standard",
) -> WrittenCue:
    """The cue sheet for ``tracklist`` of the recording at ``recording_path``; ``library`` has
    the matched recordings (for BPM and key)."""
    if flavour not in FLAVOURS:
        raise CueWriteError(f"unknown flavour {flavour!r}: use one of {', '.join(FLAVOURS)}")
    warnings: list[str] = []
    base = _base_sheet(tracklist)
    sheet = CueSheet(
        rems=[r for r in base.rems if r.key.upper() != "COMMENT"] if base else [],
        catalog=base.catalog if base else None,
        title=tracklist.title,
        performer=tracklist.performer,
    )
    if flavour not in ("kodi", "standard"):  # hardware reads little: keep only the basics
        sheet.rems = [r for r in sheet.rems if r.key.upper() in ("DATE", "GENRE")]
    sheet.rems.append(Rem("COMMENT", MARKER))
    ext = os.path.splitext(recording_path)[1].lstrip(".").lower()
    sheet.files = [CueFile(os.path.basename(recording_path), _FILE_TYPES.get(ext, "WAVE"))]
    originals = {t.number: t for t in base.tracks} if base else {}
    timed: list[StoredEntry] = []
    for stored in tracklist.entries:
        e = stored.entry
        if e.played_with is not None and e.start is None:
            continue
        if e.start is None:
            warnings.append(f"entry {e.position} ({_name(stored)}) has no start time: left out")
            continue
        timed.append(stored)
    last = -1
    for number, stored in enumerate(timed, start=1):
        e = stored.entry
        frames = seconds_to_frames(e.start or 0.0)
        if frames <= last:
            warnings.append(f"entry {e.position} starts with or before the one before: left out")
            continue
        last = frames
        original = originals.get(int(e.extra.get("number", -1))) if originals else None
        track = CueTrack(number)
        if original is not None:
            track.songwriter, track.isrc, track.flags = (
                original.songwriter,
                original.isrc,
                original.flags,
            )
            track.pregap, track.postgap = original.pregap, original.postgap
            track.rems = [r for r in original.rems if r.key.upper() not in _OUR_REMS]
            track.source = original.source if flavour != "cdj" else None
        track.title = "ID" if e.unknown else (e.title or "")
        track.performer = "ID" if e.unknown else e.artist
        rec = stored.match.recording_id
        matched = library.get(rec) if rec is not None and stored.match.status == "matched" else None
        if matched is not None:
            track.rems += _bpm_rems(flavour, matched.bpm) + _key_rems(flavour, matched.key)
        if flavour != "cdj":
            for other in tracklist.entries:
                if other.entry.played_with == e.position and other.entry is not e:
                    track.rems.append(Rem("WITH", _name(other)))
        pre = e.extra.get("pregap_start")
        if isinstance(pre, int | float) and flavour != "cdj" and seconds_to_frames(pre) < frames:
            track.indexes.append(CueIndex(0, seconds_to_frames(pre), 0))
        track.indexes.append(CueIndex(1, frames, 0))
        sheet.tracks.append(track)
    if not sheet.tracks:
        raise CueWriteError("no entry of this tracklist has a start time: nothing to write")
    if flavour in _CAPPED and len(sheet.tracks) > 99:
        warnings.append(f"{len(sheet.tracks)} tracks: {_CAPPED[flavour]} read at most 99 of them")
    newline = "\r\n" if flavour in ("cdj", "rekordbox") else "\n"
    return WrittenCue(render_cue(sheet, newline=newline), sheet, tuple(warnings))


def _name(stored: StoredEntry) -> str:
    e = stored.entry
    if e.unknown:
        return "ID - ID"
    return " - ".join(p for p in (e.artist, e.title) if p) or f"entry {e.position}"


def encode_cue(text: str, encoding: str, *, legacy: str = "cp1252") -> bytes:
    """``utf-8`` (no BOM, the default), ``utf-8-bom``, or ``legacy`` (the configured code page:
    a CueWriteError names the first character it cannot hold)."""
    if encoding == "utf-8":
        return text.encode("utf-8")
    if encoding == "utf-8-bom":
        return codecs.BOM_UTF8 + text.encode("utf-8")
    try:
        return text.encode(legacy)
    except UnicodeEncodeError as exc:
        raise CueWriteError(
            f"{legacy} cannot hold {text[exc.start]!r} (character {exc.start}): write UTF-8 instead"
        ) from None


def is_ours(path: str) -> bool:
    """Whether the sheet at ``path`` was written by tracktiond (and may be replaced)."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(4096)
    except OSError:
        return False
    return MARKER.encode() in head
