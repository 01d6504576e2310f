"""Cue sheets: a lossless, tolerant model of the CUE format, its reader and its writer.

Why our own (docs/tracklists.md has the measurements): no CUE library on PyPI survives the sheets
of DJ sets. pylibcue stops at 99 tracks and loses every time at or past 100:00; cuetools rejects
``REM BPM``, a BOM and ``FILE … MP3`` and cannot write; CueParser recurses once per line, keeps one
``FILE`` and reads frames as milliseconds. Real sheets: Mixxx writes minutes past 99
(``INDEX 01 125:30:12``); rekordbox nests a ``FILE`` inside each ``TRACK`` naming the source
track; CUETools writes several ``FILE`` s with ``INDEX 00`` gaps in the previous file.

What the model keeps, so that ``parse_cue(render_cue(s)) == s`` for every sheet ``s`` this module
reads: every ``REM`` in order (disc and track level, unknown keys too), several ``FILE`` s and the
file every index lies in, a ``FILE`` nested in a ``TRACK`` (the track's *source*), ``INDEX 00``–
``99`` as integer CD frames (75 per second) with unbounded minutes, PREGAP / POSTGAP / ISRC /
FLAGS / CATALOG / CDTEXTFILE / SONGWRITER, and commands it does not know (re-emitted as read).
What it tolerates: any indentation, tabs, lower-case keywords, quoted or bare arguments, escaped
quotes (``\\"``), unescaped inner quotes, ``;`` and ``//`` comment lines, blank lines, any line
ending, no track cap. What it refuses, with the line number: times that are not ``M:S:F`` or
have seconds ≥ 60 or frames ≥ 75, INDEX or a track field before any TRACK, a text with no TRACK.

Decoding bytes is ``media.textcodec``'s job; checking a sheet against its audio is
``media.cuecheck``'s.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field

FRAMES_PER_SECOND = 75  # CD frames: the only time unit of the format

_TIME = re.compile(r"(\d+):(\d+):(\d+)")
_WHITESPACE = re.compile(r"\s+")
# Characters a line of a sheet cannot carry: the writer turns them into spaces.
_CONTROL = re.compile(r"[\x00-\x1f\x7f\u2028\u2029\x85]")


class CueSheetError(ValueError):
    """The text is not a cue sheet we can read; the message names the line and the reason."""


@dataclass(frozen=True, slots=True)
class Rem:
    """One ``REM`` line: its first word (``DATE``, ``GENRE``, ``BPM``, … as written; "" for a
    bare ``REM``) and the rest, unquoted."""

    key: str
    value: str


@dataclass(frozen=True, slots=True)
class CueFile:
    name: str  # as written: relative to the sheet's directory, or absolute
    type: str  # WAVE, MP3, AIFF, BINARY, … as written ("" when the line has none)


@dataclass(frozen=True, slots=True)
class CueIndex:
    number: int  # 0 (the pregap's start) to 99
    frames: int  # from the start of its file
    file: int  # the position in CueSheet.files of the FILE it lies in (-1: the sheet has none)


@dataclass(slots=True)
class CueTrack:
    number: int
    datatype: str = "AUDIO"
    title: str | None = None
    performer: str | None = None
    songwriter: str | None = None
    isrc: str | None = None
    flags: tuple[str, ...] = ()
    pregap: int | None = None  # frames of silence the player inserts (not in the file)
    postgap: int | None = None
    indexes: list[CueIndex] = field(default_factory=list)
    rems: list[Rem] = field(default_factory=list)
    # A FILE between TRACK and its first INDEX that continues the timeline: where the track came
    # from (rekordbox recordings), not where its audio lies.
    source: CueFile | None = None
    other: list[tuple[str, str]] = field(default_factory=list)  # unknown commands, as read

    def index(self, number: int) -> CueIndex | None:
        return next((i for i in self.indexes if i.number == number), None)

    @property
    def start(self) -> CueIndex | None:
        """Where the track starts: INDEX 01, else its first index."""
        return self.index(1) or (self.indexes[0] if self.indexes else None)


@dataclass(slots=True)
class CueSheet:
    rems: list[Rem] = field(default_factory=list)
    catalog: str | None = None
    cdtextfile: str | None = None
    title: str | None = None
    performer: str | None = None
    songwriter: str | None = None
    files: list[CueFile] = field(default_factory=list)
    tracks: list[CueTrack] = field(default_factory=list)
    other: list[tuple[str, str]] = field(default_factory=list)

    def rem(self, key: str) -> str | None:
        key = key.upper()
        return next((r.value for r in self.rems if r.key.upper() == key), None)


@dataclass(frozen=True, slots=True)
class ParsedCue:
    sheet: CueSheet
    warnings: tuple[str, ...] = ()


# ---- times ---------------------------------------------------------------------------------


def parse_time(text: str) -> int:
    """``MM:SS:FF`` (minutes unbounded) as frames; ValueError naming what is wrong."""
    m = _TIME.fullmatch(text.strip())
    if m is None:
        raise ValueError(f"time {text.strip()!r} is not MM:SS:FF")
    minutes, seconds, frames = (int(g) for g in m.groups())
    if seconds >= 60 or frames >= FRAMES_PER_SECOND:
        raise ValueError(f"impossible time {text.strip()!r} (seconds < 60, frames < 75)")
    return (minutes * 60 + seconds) * FRAMES_PER_SECOND + frames


def format_time(frames: int) -> str:
    if frames < 0:
        raise ValueError(f"negative time: {frames} frames")
    seconds, ff = divmod(frames, FRAMES_PER_SECOND)
    minutes, ss = divmod(seconds, 60)
    return f"{minutes:02d}:{ss:02d}:{ff:02d}"


def seconds_to_frames(seconds: float) -> int:
    return round(seconds * FRAMES_PER_SECOND)


def frames_to_seconds(frames: int) -> float:
    return frames / FRAMES_PER_SECOND


# ---- reading -------------------------------------------------------------------------------


def unquote(text: str) -> str:
    """A quoted argument's text (outer quotes off, ``\\"`` unescaped); a bare one as it is.

    Tolerant of unescaped inner quotes (``"Say "Hi" now"``): everything between the first and
    the last quote is the value."""
    if len(text) >= 2 and text[0] == '"' and text[-1] == '"':
        return text[1:-1].replace('\\"', '"')
    return text


_FILE_ARGS = re.compile(r'(".*"|[^"\s]\S*)\s+(\S+)')


def _split_file_args(rest: str) -> CueFile:
    # FILE "name with spaces.wav" WAVE | FILE name.wav WAVE | FILE "name.wav" | FILE name.wav
    m = _FILE_ARGS.fullmatch(rest)
    if m is None:
        return CueFile(unquote(rest), "")
    return CueFile(unquote(m.group(1)), m.group(2))


def _first_word(rest: str) -> tuple[str, str]:
    word, _, remainder = rest.partition(" ")
    return word, remainder.strip()


class _Reader:
    def __init__(self) -> None:
        self.sheet = CueSheet()
        self.warnings: list[str] = []
        self.track: CueTrack | None = None
        self.file = -1  # the disc-level FILE in effect
        self.pending_nested: CueFile | None = None  # a FILE read inside a TRACK before any INDEX
        self.last_start: dict[int, int] = {}  # per file: the last track start seen there

    def fail(self, line_no: int, reason: str) -> CueSheetError:
        return CueSheetError(f"line {line_no}: {reason}")

    def add_file(self, f: CueFile) -> None:
        self.sheet.files.append(f)
        self.file = len(self.sheet.files) - 1

    def command(self, line_no: int, keyword: str, rest: str) -> None:
        track = self.track
        if keyword == "REM":
            key, value = _first_word(rest)
            rem = Rem(key, unquote(value))
            (track.rems if track is not None else self.sheet.rems).append(rem)
        elif keyword == "FILE":
            f = _split_file_args(rest)
            if track is not None and not track.indexes and self.file >= 0:
                # Decided at the track's first INDEX: a source (rekordbox) when the timeline
                # goes on, a new file (a FILE line put after TRACK) when times start over.
                if self.pending_nested is not None:  # two in a row: the first was a file
                    self.add_file(self.pending_nested)
                self.pending_nested = f
            else:
                self.add_file(f)
        elif keyword == "TRACK":
            self.close_track(line_no)
            number, datatype = _first_word(rest)
            if not number.isdigit():
                raise self.fail(line_no, f"TRACK number {number!r} is not a number")
            self.track = CueTrack(int(number), datatype or "AUDIO")
            previous = self.sheet.tracks[-1].number if self.sheet.tracks else 0
            if int(number) != previous + 1:
                self.warnings.append(f"line {line_no}: track {number} follows track {previous}")
            self.sheet.tracks.append(self.track)
        elif keyword == "INDEX":
            if track is None:
                raise self.fail(line_no, "INDEX before any TRACK")
            number, stamp = _first_word(rest)
            if not number.isdigit() or int(number) > 99:
                raise self.fail(line_no, f"INDEX number {number!r} is not 00-99")
            try:
                frames = parse_time(stamp)
            except ValueError as exc:
                raise self.fail(line_no, f"INDEX {exc}") from None
            if self.pending_nested is not None:
                if frames <= self.last_start.get(self.file, -1):
                    self.add_file(self.pending_nested)
                else:
                    track.source = self.pending_nested
                self.pending_nested = None
            track.indexes.append(CueIndex(int(number), frames, self.file))
            if int(number) == 1:
                self.last_start[self.file] = frames
        elif keyword in ("PREGAP", "POSTGAP"):
            if track is None:
                raise self.fail(line_no, f"{keyword} before any TRACK")
            try:
                frames = parse_time(rest)
            except ValueError as exc:
                raise self.fail(line_no, f"{keyword} {exc}") from None
            if keyword == "PREGAP":
                track.pregap = frames
            else:
                track.postgap = frames
        elif keyword in ("TITLE", "PERFORMER", "SONGWRITER"):
            target: CueTrack | CueSheet = track if track is not None else self.sheet
            setattr(target, keyword.lower(), unquote(rest))
        elif keyword == "ISRC":
            if track is None:
                raise self.fail(line_no, "ISRC before any TRACK")
            track.isrc = unquote(rest)
        elif keyword == "FLAGS":
            if track is None:
                raise self.fail(line_no, "FLAGS before any TRACK")
            track.flags = tuple(rest.split())
        elif keyword == "CATALOG" and track is None:
            self.sheet.catalog = unquote(rest)
        elif keyword == "CDTEXTFILE" and track is None:
            self.sheet.cdtextfile = unquote(rest)
        else:
            (track.other if track is not None else self.sheet.other).append((keyword, rest))

    def close_track(self, line_no: int) -> None:
        if self.pending_nested is not None:  # a FILE in a track that has no INDEX at all
            self.add_file(self.pending_nested)
            self.pending_nested = None


_IDENTIFIER = re.compile(r"[A-Z][A-Z0-9_]*")


def _lines(text: str) -> Iterator[tuple[int, str, str]]:
    for line_no, raw in enumerate(text.splitlines(), start=1):
        # Tabs are indentation or separators, never part of a value: one space each.
        line = raw.replace("\t", " ").strip().lstrip("\ufeff").strip()
        if not line or line.startswith((";", "//")):
            continue
        keyword, rest = _first_word(_WHITESPACE.sub(" ", line, count=1))
        yield line_no, keyword.upper(), rest


def parse_cue(text: str) -> ParsedCue:
    """Read a cue sheet's text. Raises CueSheetError (with the line) for what cannot be read."""
    reader = _Reader()
    first = True
    for line_no, keyword, rest in _lines(text):
        if first and keyword not in _KNOWN and not _IDENTIFIER.fullmatch(_raw_keyword(text)):
            # A pasted list or some other text named .cue: say so instead of reading on.
            raise CueSheetError(
                f"not a cue sheet: line {line_no} starts with {_raw_keyword(text)[:40]!r}"
            )
        first = False
        reader.command(line_no, keyword, rest)
    reader.close_track(0)
    if not reader.sheet.tracks:
        raise CueSheetError("not a cue sheet: it has no TRACK line")
    return ParsedCue(reader.sheet, tuple(reader.warnings))


def _raw_keyword(text: str) -> str:
    """The first word of the first line that is not blank or a comment, as written."""
    for raw in text.splitlines():
        line = raw.replace("\t", " ").strip().lstrip("\ufeff").strip()
        if line and not line.startswith((";", "//")):
            return line.split(" ", 1)[0]
    return ""


_KNOWN = frozenset(
    {
        "REM", "FILE", "TRACK", "INDEX", "PREGAP", "POSTGAP", "TITLE", "PERFORMER",
        "SONGWRITER", "ISRC", "FLAGS", "CATALOG", "CDTEXTFILE",
    }
)  # fmt: skip


# ---- writing -------------------------------------------------------------------------------


def clean(text: str) -> str:
    """A value as one line can carry it: control characters and line breaks become spaces."""
    return _CONTROL.sub(" ", text)


def quote(text: str) -> str:
    return '"' + clean(text).replace('"', '\\"') + '"'


def _rem_value(value: str) -> str:
    value = clean(value)
    if value == "" or value != value.strip() or any(c in value for c in ' \t"'):
        return quote(value)
    return value


def _rem_line(rem: Rem) -> str:
    key = clean(rem.key).replace(" ", "_")
    if not key:
        return f"REM {_rem_value(rem.value)}".rstrip() if rem.value else "REM"
    return f"REM {key} {_rem_value(rem.value)}"


def render_cue(sheet: CueSheet, *, newline: str = "\n") -> str:
    """The sheet as text, in the canonical order: disc REMs and fields, then each FILE with its
    tracks (a FILE line wherever the file changes, also between a track's indexes)."""
    out: list[str] = [_rem_line(r) for r in sheet.rems]
    for keyword, value in (("CATALOG", sheet.catalog), ("CDTEXTFILE", sheet.cdtextfile)):
        if value is not None:
            out.append(f"{keyword} {quote(value) if keyword == 'CDTEXTFILE' else clean(value)}")
    for keyword, value in (
        ("PERFORMER", sheet.performer),
        ("TITLE", sheet.title),
        ("SONGWRITER", sheet.songwriter),
    ):
        if value is not None:
            out.append(f"{keyword} {quote(value)}")
    # Unknown disc commands go after something known (the header, else the first FILE), so the
    # sheet never starts with a line a reader could take for "not a cue sheet".
    disc_other = [f"{k} {clean(v)}".rstrip() for k, v in sheet.other]
    if out or not sheet.files:
        out.extend(disc_other)
        disc_other = []
    current = -1
    emitted: set[int] = set()

    def file_lines(number: int) -> list[str]:
        # Files no index lies in keep their place in the list: emitted before the next one.
        nonlocal disc_other
        lines = []
        for n in range(number + 1):
            if n not in emitted:
                f = sheet.files[n]
                emitted.add(n)
                lines.append(f"FILE {quote(f.name)} {clean(f.type)}".rstrip())
                lines += disc_other
                disc_other = []
        return lines

    for track in sheet.tracks:
        first = track.indexes[0].file if track.indexes else current
        if first != current and first >= 0:
            out.extend(file_lines(first))
            current = first
        out.append(f"  TRACK {track.number:02d} {clean(track.datatype)}".rstrip())
        for keyword, value in (
            ("TITLE", track.title),
            ("PERFORMER", track.performer),
            ("SONGWRITER", track.songwriter),
        ):
            if value is not None:
                out.append(f"    {keyword} {quote(value)}")
        if track.isrc is not None:
            out.append(f"    ISRC {clean(track.isrc)}".rstrip())
        if track.flags:
            out.append("    FLAGS " + " ".join(clean(f) for f in track.flags))
        out.extend("    " + _rem_line(r) for r in track.rems)
        out.extend(f"    {k} {clean(v)}".rstrip() for k, v in track.other)
        if track.source is not None:
            out.append(f"    FILE {quote(track.source.name)} {clean(track.source.type)}".rstrip())
        if track.pregap is not None:
            out.append(f"    PREGAP {format_time(track.pregap)}")
        for index in track.indexes:
            if index.file != current and index.file >= 0:
                out.extend(file_lines(index.file))
                current = index.file
            out.append(f"    INDEX {index.number:02d} {format_time(index.frames)}")
        if track.postgap is not None:
            out.append(f"    POSTGAP {format_time(track.postgap)}")
    if sheet.files:
        out.extend(file_lines(len(sheet.files) - 1))
    return newline.join(out) + newline
