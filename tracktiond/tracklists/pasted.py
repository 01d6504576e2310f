"""Pasted tracklists (1001tracklists copies, YouTube and Mixcloud descriptions) as drafts.

trackparse (MIT) reads each line's artist / title / version, leading times and positions, and
warns about times out of order. What it gets wrong for DJ-set lists, our pre-pass fixes first,
line by line, before handing it the rewritten text:

- ``NN - 12:34 - Artist - Title``: a position, then the time: trackparse takes the time for the
  artist. The pre-pass moves the time to the front and drops the position.
- a time at the end (``Artist - Title 1:05:00``, ``… (1:05:00)``): trackparse keeps it in the
  title. Moved to the front.
- ``[LABEL]`` at the end: trackparse keeps it in the title. A final bracket that is not a version
  (no "mix", "remix", "edit", … in it) becomes the entry's label.
- ``w/ Artist - Title``: played over the previous entry; trackparse keeps ``w/`` in the artist.
- ``A - X vs. B - Y`` (two tracks mashed up): two entries, the second played with the first.
  ``A vs. B - Title`` (two artists, one track) is left to trackparse.
- ``ID - ID`` (or ``ID``): an unknown track, kept as an entry without names.

Lines that are not tracks (a heading, a link, a blank line) are dropped; times are optional.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from trackparse.tracklist import parse_tracklist

from tracktiond.catalog.tracklistvalues import EntryDraft, TracklistDraft

_TIME = r"\d{1,3}:\d{2}(?::\d{2})?"
_POSITION_TIME = re.compile(rf"^\s*\d{{1,3}}\s*[.)-]?\s*-\s*\[?({_TIME})\]?\s*-\s*(.+)$")
_TRAILING_TIME = re.compile(rf"^(.+?)\s+[\[(]?({_TIME})[\])]?\s*$")
_LEADING_TIME = re.compile(rf"^\s*[\[(]?({_TIME})[\])]?\s*[-–—|:]?\s*(.*)$")
_FINAL_BRACKET = re.compile(r"^(.*\S)\s*\[([^\[\]]+)\]\s*$")
_WITH = re.compile(r"^\s*(?:w/|with:)\s*", re.IGNORECASE)
_VERSUS = re.compile(r"\s+vs\.?\s+", re.IGNORECASE)
_UNKNOWN = re.compile(r"^\s*(?:ID\s*-\s*ID|ID)\s*$", re.IGNORECASE)
_VERSION_WORDS = re.compile(
    r"\b(mix|remix|edit|dub|rework|bootleg|vip|version|refix|flip|instrumental|acapella|"
    r"a cappella|live|remaster(ed)?|extended|radio|club|original|intro|outro|rmx|cut)\b",
    re.IGNORECASE,
)


@dataclass(frozen=True, slots=True)
class _Line:
    """One line after the pre-pass: what trackparse is given, and what we took off it."""

    text: str
    time: str | None = None
    label: str | None = None
    with_previous: bool = False
    unknown: bool = False


def seconds(stamp: str) -> float:
    parts = [int(p) for p in stamp.split(":")]
    value = 0
    for p in parts:
        value = value * 60 + p
    return float(value)


def _prepass(raw: str) -> list[_Line]:
    line = raw.strip()
    if not line:
        return []
    with_previous = bool(_WITH.match(line))
    line = _WITH.sub("", line)
    time = None
    m = _POSITION_TIME.match(line)
    if m:
        time, line = m.group(1), m.group(2)
    else:
        m = _LEADING_TIME.match(line)
        if m and m.group(2):
            time, line = m.group(1), m.group(2)
        else:
            m = _TRAILING_TIME.match(line)
            if m and " - " in m.group(1):
                line, time = m.group(1), m.group(2)
    label = None
    m = _FINAL_BRACKET.match(line)
    if m and not _VERSION_WORDS.search(m.group(2)):
        line, label = m.group(1), m.group(2).strip()
    if _UNKNOWN.match(line):
        return [_Line("", time, label, with_previous, unknown=True)]
    halves = _VERSUS.split(line)
    if len(halves) == 2 and all(" - " in h for h in halves):
        return [
            _Line(halves[0], time, None, with_previous),
            _Line(halves[1], None, label, True),
        ]
    return [_Line(line, time, label, with_previous)]


def parse_pasted(
    text: str,
    *,
    source: str = "text",
    origin: str | None = None,
    encoding: str | None = None,
    duration: float | None = None,
) -> TracklistDraft:
    """A pasted tracklist as a draft. Raises ValueError when no line of it is a track."""
    lines = [pl for raw in text.splitlines() for pl in _prepass(raw)]
    # trackparse sees each line once, with its time in front where we found one.
    fed = [
        f"{pl.time} {pl.text}" if pl.time and pl.text else (pl.text or "ID - ID") for pl in lines
    ]
    parsed = parse_tracklist("\n".join(fed), audio_seconds=duration) if fed else None
    by_line = {e.line: e for e in parsed.entries} if parsed is not None else {}
    entries: list[EntryDraft] = []
    warnings: list[str] = []
    for number, pl in enumerate(lines, start=1):
        entry = by_line.get(number)
        if pl.unknown:
            artist = title = version = None
        elif entry is None or entry.kind != "track" or entry.track is None:
            continue
        else:
            track = entry.track
            primary = [a.name for a in track.artists if a.role == "primary"]
            featured = [a.name for a in track.artists if a.role == "featured"]
            artist = " & ".join(primary) or None
            if artist and featured:
                artist += " feat. " + " & ".join(featured)
            title = track.title or None
            version = track.versions[0].raw if track.versions else None
            if track.flags.unknown_artist and track.flags.unknown_title:
                pl = _Line(pl.text, pl.time, pl.label, pl.with_previous, unknown=True)
                artist = title = version = None
        position = len(entries) + 1
        start = seconds(pl.time) if pl.time else None
        entries.append(
            EntryDraft(
                position=position,
                start=start,
                artist=artist,
                title=title,
                version=version,
                label=pl.label,
                confidence=1.0,
                unknown=pl.unknown,
                played_with=_anchor(entries) if pl.with_previous and entries else None,
            )
        )
    if not entries:
        raise ValueError("not a tracklist: no line reads as 'Artist - Title'")
    if parsed is not None:
        for w in parsed.warnings:
            if w.code in ("time-out-of-order", "time-duplicate", "time-after-audio-end"):
                warnings.append(f"line {w.line}: {w.code.replace('-', ' ')}")
    return TracklistDraft(
        source=source,
        format="text",
        entries=tuple(_with_ends(entries, duration)),
        origin=origin,
        encoding=encoding,
        document=text,
        warnings=tuple(warnings),
    )


def _anchor(entries: list[EntryDraft]) -> int:
    """The entry a co-played one goes with: the last one that is not itself co-played."""
    for e in reversed(entries):
        if e.played_with is None:
            return e.position
    return entries[-1].position


def _with_ends(entries: list[EntryDraft], duration: float | None) -> list[EntryDraft]:
    """Each timed entry ends where the next timed one (not played with it) starts."""
    out = []
    for i, e in enumerate(entries):
        end = None
        if e.start is not None:
            later = [
                n.start
                for n in entries[i + 1 :]
                if n.start is not None and n.played_with is None and n.start > e.start
            ]
            end = later[0] if later else duration
        out.append(
            EntryDraft(
                position=e.position,
                start=e.start,
                end=end,
                artist=e.artist,
                title=e.title,
                version=e.version,
                label=e.label,
                confidence=e.confidence,
                unknown=e.unknown,
                played_with=e.played_with,
                source_path=e.source_path,
                extra=e.extra,
            )
        )
    return out
