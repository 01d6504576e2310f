"""The fields a naming pattern may use: a whitelist, each computed from what the catalog knows.

A pattern never reaches into Python objects: ``{title}`` is looked up in :data:`FIELDS`, a fixed
table from field name to a function of :class:`FileFacts` (the file's path, its sniffed format
and its recording's metadata rows: tags, stream properties, analysis). Anything not in the table
is an unknown field, reported with its position when the pattern is compiled.

Every value is a string or ``None`` (no value). Numbers are kept as the tags wrote them except
where a pattern needs them clean: ``track`` and ``disc`` are the number before any ``/total``,
``bpm`` is rounded to a whole number, ``duration`` is ``M-SS`` or ``H-MM-SS`` (no ``:``, which
Windows and rekordbox exports refuse).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from tracktiond.media.keys import Key

ANALYSIS = "analysis."


@dataclass(frozen=True, slots=True)
class FileFacts:
    """What the planner knows about one cataloged file."""

    path: str
    format: str  # the sniffed format ("flac", "mp3", ...), not the extension
    metadata: Mapping[str, str] = field(default_factory=dict)  # tags, stream, analysis.* keys

    @property
    def extension(self) -> str:
        """The file's own extension, lower case, without the dot ("" when it has none)."""
        name = os.path.basename(self.path)
        dot = name.rfind(".")
        return name[dot + 1 :].lower() if dot > 0 else ""

    @property
    def duration(self) -> float | None:
        for key in ("duration", ANALYSIS + "duration"):
            try:
                value = float(self.metadata.get(key, ""))
            except ValueError:
                continue
            if value > 0:
                return value
        return None


def _tag(name: str) -> Callable[[FileFacts], str | None]:
    def get(facts: FileFacts) -> str | None:
        return facts.metadata.get(name) or None

    return get


def _number(name: str, part: int) -> Callable[[FileFacts], str | None]:
    # "3/12" -> "3" (part 0) or "12" (part 1); "03" -> "3", so padding is the pattern's choice
    def get(facts: FileFacts) -> str | None:
        raw = facts.metadata.get(name, "")
        pieces = raw.split("/")
        if len(pieces) <= part:
            return None
        text = pieces[part].strip()
        return str(int(text)) if text.isdigit() else (text or None)

    return get


def _year(facts: FileFacts) -> str | None:
    date = facts.metadata.get("date", "").strip()
    return date[:4] if len(date) >= 4 and date[:4].isdigit() else None


def _bpm(facts: FileFacts) -> str | None:
    # The analysed tempo first: it is what tracktiond measured; a tag is what someone typed.
    for key in (ANALYSIS + "bpm", "bpm"):
        try:
            value = float(facts.metadata.get(key, ""))
        except ValueError:
            continue
        if value > 0:
            return str(round(value))
    return None


def _key(facts: FileFacts) -> Key | None:
    for name in (ANALYSIS + "key", "initialkey"):
        text = facts.metadata.get(name)
        if text:
            try:
                return Key.parse(text)
            except ValueError:
                continue
    return None


def _key_as(notation: str) -> Callable[[FileFacts], str | None]:
    def get(facts: FileFacts) -> str | None:
        key = _key(facts)
        if key is None:
            return None
        if notation == "camelot":
            return key.camelot
        if notation == "openkey":
            return key.open_key
        return key.short()

    return get


def _duration(facts: FileFacts) -> str | None:
    seconds = facts.duration
    if seconds is None:
        return None
    total = round(seconds)
    hours, rest = divmod(total, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}-{minutes:02}-{secs:02}" if hours else f"{minutes}-{secs:02}"


def _minutes(facts: FileFacts) -> str | None:
    seconds = facts.duration
    return None if seconds is None else str(round(seconds / 60))


def _bitrate(facts: FileFacts) -> str | None:
    try:
        bps = float(facts.metadata.get("bitrate", ""))
    except ValueError:
        return None
    return str(round(bps / 1000)) if bps > 0 else None


def _stem(facts: FileFacts) -> str | None:
    name = os.path.basename(facts.path)
    dot = name.rfind(".")
    return (name[:dot] if dot > 0 else name) or None


#: Every field a pattern may name, with a one-line description (docs/organise.md lists them).
FIELDS: dict[str, tuple[Callable[[FileFacts], str | None], str]] = {
    "title": (_tag("title"), "title tag"),
    "artist": (_tag("artist"), "artist tag"),
    "album": (_tag("album"), "album tag"),
    "albumartist": (_tag("albumartist"), "album artist tag"),
    "genre": (_tag("genre"), "genre tag"),
    "date": (_tag("date"), "date tag as written (2021-04-30, 2021)"),
    "year": (_year, "the first four digits of the date tag"),
    "track": (_number("tracknumber", 0), "track number (without /total)"),
    "tracktotal": (_number("tracknumber", 1), "the total after the slash of the track tag"),
    "disc": (_number("discnumber", 0), "disc number (without /total)"),
    "disctotal": (_number("discnumber", 1), "the total after the slash of the disc tag"),
    "bpm": (_bpm, "tempo, whole BPM: the analysis, else the BPM tag"),
    "key": (_key_as("standard"), "musical key, short standard form (Am, F#): analysis, else tag"),
    "camelot": (_key_as("camelot"), "musical key as a Camelot code (8A)"),
    "openkey": (_key_as("openkey"), "musical key as an Open Key code (1m)"),
    "duration": (_duration, "length as M-SS or H-MM-SS"),
    "minutes": (_minutes, "length in whole minutes"),
    "format": (lambda f: f.format or None, "the sniffed audio format (flac, mp3, opus, ...)"),
    "codec": (_tag("codec"), "the codec of the audio stream"),
    "bitrate": (_bitrate, "bit rate in kbit/s"),
    "samplerate": (_tag("sample_rate"), "sample rate in Hz"),
    "channels": (_tag("channels"), "number of channels"),
    "ext": (lambda f: f.extension or None, "the file's own extension, lower case"),
    "filename": (_stem, "the file's current name without its extension"),
}


def value(name: str, facts: FileFacts) -> str | None:
    """The value of field ``name`` for ``facts`` (None when it has none)."""
    text = FIELDS[name][0](facts)
    if text is None:
        return None
    text = text.strip()
    return text or None
