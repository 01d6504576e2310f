"""Tags: the one module that knows how each format stores each field.

Fields are declared once in ``FIELDS``, mapping our metadata key to the conventional field of
each tag system (ID3v2, Vorbis comments, MP4 atoms, ASF attributes, APEv2). Reading happens
here; writing (opt-in, later) will use the same table so the two can never disagree.

mutagen raises exceptions other than MutagenError on malformed files (ZeroDivisionError,
IndexError, ValueError, struct.error, ...), so every read is guarded per file and any exception is
turned into BadInput naming what failed.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import mutagen
from mutagen import (
    aac,
    aiff,
    apev2,
    asf,
    dsf,
    flac,
    monkeysaudio,
    mp3,
    mp4,
    musepack,
    oggflac,
    oggopus,
    oggspeex,
    oggvorbis,
    wave,
    wavpack,
)

from tracktiond.errors import BadInput
from tracktiond.formats import AudioFormat


class TagSystem(StrEnum):
    ID3 = "id3"
    VORBIS = "vorbis"
    MP4 = "mp4"
    ASF = "asf"
    APE = "ape"


@dataclass(frozen=True, slots=True)
class TagField:
    key: str  # our metadata key
    id3: str  # frame id; "TXXX:DESC" for user text frames
    vorbis: str
    mp4: str  # atom name; "----:mean:name" for freeform atoms
    asf: str
    ape: str

    def name_in(self, system: TagSystem) -> str:
        return str(getattr(self, system.value))


_ITUNES = "----:com.apple.iTunes:"

FIELDS: tuple[TagField, ...] = (
    #        key                       ID3                              Vorbis                    MP4                                      ASF                        APEv2
    TagField("title",                  "TIT2",                          "TITLE",                  "©nam",                                  "Title",                   "Title"),
    TagField("artist",                 "TPE1",                          "ARTIST",                 "©ART",                                  "Author",                  "Artist"),
    TagField("album",                  "TALB",                          "ALBUM",                  "©alb",                                  "WM/AlbumTitle",           "Album"),
    TagField("albumartist",            "TPE2",                          "ALBUMARTIST",            "aART",                                  "WM/AlbumArtist",          "Album Artist"),
    TagField("genre",                  "TCON",                          "GENRE",                  "©gen",                                  "WM/Genre",                "Genre"),
    TagField("date",                   "TDRC",                          "DATE",                   "©day",                                  "WM/Year",                 "Year"),
    TagField("tracknumber",            "TRCK",                          "TRACKNUMBER",            "trkn",                                  "WM/TrackNumber",          "Track"),
    TagField("discnumber",             "TPOS",                          "DISCNUMBER",             "disk",                                  "WM/PartOfSet",            "Disc"),
    TagField("bpm",                    "TBPM",                          "BPM",                    "tmpo",                                  "WM/BeatsPerMinute",       "BPM"),
    TagField("initialkey",             "TKEY",                          "INITIALKEY",             _ITUNES + "initialkey",                  "WM/InitialKey",           "INITIALKEY"),
    TagField("replaygain_track_gain",  "TXXX:REPLAYGAIN_TRACK_GAIN",    "REPLAYGAIN_TRACK_GAIN",  _ITUNES + "replaygain_track_gain",       "replaygain_track_gain",   "REPLAYGAIN_TRACK_GAIN"),
    TagField("replaygain_track_peak",  "TXXX:REPLAYGAIN_TRACK_PEAK",    "REPLAYGAIN_TRACK_PEAK",  _ITUNES + "replaygain_track_peak",       "replaygain_track_peak",   "REPLAYGAIN_TRACK_PEAK"),
    TagField("replaygain_album_gain",  "TXXX:REPLAYGAIN_ALBUM_GAIN",    "REPLAYGAIN_ALBUM_GAIN",  _ITUNES + "replaygain_album_gain",       "replaygain_album_gain",   "REPLAYGAIN_ALBUM_GAIN"),
    TagField("replaygain_album_peak",  "TXXX:REPLAYGAIN_ALBUM_PEAK",    "REPLAYGAIN_ALBUM_PEAK",  _ITUNES + "replaygain_album_peak",       "replaygain_album_peak",   "REPLAYGAIN_ALBUM_PEAK"),
)  # fmt: skip

# Which mutagen class parses each sniffed format, which tag system it carries, and the codec
# name we record (None: ask the stream info).
_FORMATS: dict[AudioFormat, tuple[Callable[[str], Any], TagSystem, str | None]] = {
    AudioFormat.MP3: (mp3.MP3, TagSystem.ID3, "mp3"),
    AudioFormat.AAC: (aac.AAC, TagSystem.ID3, "aac"),
    AudioFormat.FLAC: (flac.FLAC, TagSystem.VORBIS, "flac"),
    AudioFormat.OGG_VORBIS: (oggvorbis.OggVorbis, TagSystem.VORBIS, "vorbis"),
    AudioFormat.OGG_OPUS: (oggopus.OggOpus, TagSystem.VORBIS, "opus"),
    AudioFormat.OGG_FLAC: (oggflac.OggFLAC, TagSystem.VORBIS, "flac"),
    AudioFormat.OGG_SPEEX: (oggspeex.OggSpeex, TagSystem.VORBIS, "speex"),
    AudioFormat.MP4: (mp4.MP4, TagSystem.MP4, None),
    AudioFormat.WAV: (wave.WAVE, TagSystem.ID3, "pcm"),
    AudioFormat.AIFF: (aiff.AIFF, TagSystem.ID3, "pcm"),
    AudioFormat.ASF: (asf.ASF, TagSystem.ASF, "wma"),
    AudioFormat.WAVPACK: (wavpack.WavPack, TagSystem.APE, "wavpack"),
    AudioFormat.APE: (monkeysaudio.MonkeysAudio, TagSystem.APE, "ape"),
    AudioFormat.MUSEPACK: (musepack.Musepack, TagSystem.APE, "musepack"),
    AudioFormat.DSF: (dsf.DSF, TagSystem.ID3, "dsd"),
}


def tag_system(fmt: AudioFormat) -> TagSystem:
    return _FORMATS[fmt][1]


def read_metadata(path: str, fmt: AudioFormat) -> tuple[dict[str, str], dict[str, str]]:
    """Return (tags, stream properties) for ``path``, both keyed by our metadata keys.

    Raises BadInput when mutagen cannot parse the file or it holds no audio stream.
    """
    opener, system, codec = _FORMATS[fmt]
    try:
        audio = opener(path)
        stream = _stream_properties(audio.info, fmt, codec)
        tags = _read_tags(audio.tags, system) if audio.tags is not None else {}
    except PermissionError:
        raise BadInput("permission denied") from None
    except FileNotFoundError:
        raise BadInput("file vanished while its tags were read") from None
    except mutagen.MutagenError as exc:
        raise BadInput(f"not a readable {fmt.value} file: {_short(exc)}") from None
    except Exception as exc:  # mutagen's parsers raise arbitrary errors on malformed input
        raise BadInput(
            f"malformed {fmt.value} file ({type(exc).__name__}: {_short(exc)})"
        ) from None
    if float(stream.get("duration", "0")) <= 0:
        raise BadInput(f"{fmt.value} file holds no audio (duration 0)")
    return tags, stream


def _short(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text if len(text) <= 200 else text[:197] + "..."


def _stream_properties(info: Any, fmt: AudioFormat, codec: str | None) -> dict[str, str]:
    props: dict[str, str] = {"container": fmt.value}
    length = getattr(info, "length", None) or 0.0
    props["duration"] = f"{float(length):.3f}"
    for key, attr in (
        ("bitrate", "bitrate"),
        ("sample_rate", "sample_rate"),
        ("channels", "channels"),
    ):
        value = getattr(info, attr, None)
        if isinstance(value, int | float) and value > 0:
            props[key] = str(int(value))
    bits = getattr(info, "bits_per_sample", None)
    if isinstance(bits, int) and bits > 0:
        props["bits_per_sample"] = str(bits)
    if codec is None:  # MP4 carries AAC or ALAC, mutagen says which ("mp4a.40.2", "alac")
        raw = str(getattr(info, "codec", "") or "")
        codec = "aac" if raw.startswith("mp4a") else (raw or "unknown")
    props["codec"] = codec
    return props


def _read_tags(tags: Any, system: TagSystem) -> dict[str, str]:
    out: dict[str, str] = {}
    for field in FIELDS:
        values = _lookup(tags, system, field.name_in(system))
        text = _join(values)
        if text:
            out[field.key] = text
    return out


def _join(values: Iterable[str]) -> str:
    seen: list[str] = []
    for v in values:
        v = v.strip().replace("\x00", "")
        if v and v not in seen:
            seen.append(v)
    return "; ".join(seen)


def _lookup(tags: Any, system: TagSystem, name: str) -> list[str]:
    if system is TagSystem.ID3:
        return _lookup_id3(tags, name)
    if system is TagSystem.MP4:
        return _lookup_mp4(tags, name)
    if system is TagSystem.ASF:
        values = tags.get(name, []) if hasattr(tags, "get") else []
        return [str(getattr(v, "value", v)) for v in values]
    if system is TagSystem.APE:
        item = tags.get(name) if hasattr(tags, "get") else None  # APEv2 keys are case-insensitive
        if item is None or getattr(item, "kind", apev2.TEXT) != apev2.TEXT:
            return []
        return [str(v) for v in item]
    # Vorbis comments: case-insensitive keys, list of strings
    try:
        return [str(v) for v in tags.get(name, [])]
    except (KeyError, ValueError):
        return []


def _lookup_id3(tags: Any, name: str) -> list[str]:
    if name.startswith("TXXX:"):
        wanted = name[5:].lower()  # writers disagree on the case of TXXX descriptions
        frames = [f for f in tags.getall("TXXX") if str(f.desc).lower() == wanted]
    else:
        frames = tags.getall(name)
    out: list[str] = []
    for frame in frames:
        out.extend(str(t) for t in getattr(frame, "text", []))
    return out


def _lookup_mp4(tags: Any, name: str) -> list[str]:
    if name.startswith("----:"):
        wanted = name.lower()  # freeform names vary in case between writers
        out: list[str] = []
        for key, values in tags.items():
            if key.lower() == wanted:
                for v in values:
                    raw = bytes(v)
                    out.append(raw.decode("utf-8", errors="replace"))
        return out
    values = tags.get(name, [])
    out = []
    for v in values:
        if isinstance(v, tuple):  # trkn/disk are (number, total)
            number, total = [*list(v), 0, 0][:2]
            out.append(f"{number}/{total}" if total else str(number))
        else:
            out.append(str(v))
    return out
