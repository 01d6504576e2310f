"""Tags: the one module that knows how each format stores each field.

Fields are declared once in ``FIELDS``, mapping our metadata key to the conventional field of
each tag system (ID3v2, Vorbis comments, MP4 atoms, ASF attributes, APEv2). Reading happens
here; writing (opt-in, tracktiond.tagwrite) uses the same table plus ``WRITE_SUPPORT`` below, so
the two can never disagree about where a field lives.

mutagen raises exceptions other than MutagenError on malformed files (ZeroDivisionError,
IndexError, ValueError, struct.error, ...), so every read is guarded per file; a failure leaves
the file without tags and with the reason (``tags_error``), never failed for it: whether the
audio plays is the decoder's call (DESIGN invariant 5).
"""

from __future__ import annotations

import io
import os
import re
import struct
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
    id3,
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
from tracktiond.media.formats import AudioFormat
from tracktiond.media.riff import IffLayout, read_layout

OPUS_RATE = 48000
# An "id3 " chunk larger than this is not a tag (cover art included, real ones stay far below).
MAX_TAG_CHUNK = 16 * 1024 * 1024
_ID3: Callable[[Any], Any] = id3.ID3  # mutagen's constructors are unannotated


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
    # RFC 7845 (Ogg Opus) defines this one for Opus only; "" = the tag system has no such field.
    TagField("r128_track_gain",        "",                              "R128_TRACK_GAIN",        "",                                      "",                        ""),
    # Picard's mood mapping; ID3v2.3 has no TMOO frame, see ID3V23_FALLBACK.
    TagField("mood",                   "TMOO",                          "MOOD",                   _ITUNES + "MOOD",                        "WM/Mood",                 "Mood"),
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


def opener(fmt: AudioFormat) -> Callable[..., Any]:
    """The mutagen class that parses ``fmt`` (tracktiond.tagwrite passes it ID3 load options)."""
    return _FORMATS[fmt][0]


def read_metadata(path: str, fmt: AudioFormat) -> tuple[dict[str, str], dict[str, str]]:
    """Return (tags, stream properties) for ``path``, both keyed by our metadata keys.

    A tag reader's failure is not a verdict on the audio (mutagen raises IndexError on a WavPack
    file with an unusual rate, rejects RF64, says 0 s for ADPCM WAV): the file is returned
    without tags, ``stream["tags_error"]`` says why, and the decoder decides whether it plays.
    Raises BadInput only when the file cannot be read at all, or holds no audio bytes.
    """
    opener, system, codec = _FORMATS[fmt]
    layout = _layout(path, fmt)
    tags: dict[str, str] = {}
    try:
        if layout is not None and layout.root != b"RIFF" and fmt is AudioFormat.WAV:
            stream = {"container": fmt.value, "codec": codec or "unknown"}
            tags = _read_chunk_id3(path, layout)
        else:
            audio = opener(path)
            stream = _stream_properties(audio.info, fmt, codec)
            if audio.tags is not None:
                tags = _read_tags(audio.tags, system)
    except PermissionError:
        raise BadInput("permission denied") from None
    except FileNotFoundError:
        raise BadInput("file vanished while its tags were read") from None
    except Exception as exc:  # mutagen's parsers raise arbitrary errors on malformed input
        stream = {"container": fmt.value, "codec": codec or "unknown"}
        stream["tags_error"] = tag_failure(fmt, exc)
        tags = {}
    if layout is not None:
        _apply_layout(stream, layout, fmt)
    if float(stream.get("duration") or 0) <= 0:
        # FLAC streamed without a sample count, compressed WAV, an unparsable header: not
        # "no audio" — how long it is, is for the decoder to find out.
        stream.pop("duration", None)
    return tags, stream


def tag_failure(fmt: AudioFormat, exc: BaseException) -> str:
    """Why the tags of a ``fmt`` file could not be read, in words (never empty, never "error")."""
    text = str(exc).strip()
    if isinstance(exc, mutagen.MutagenError):
        why = text or "it gives no reason"
        return f"tags not read: mutagen cannot parse this {fmt.value} file ({why})"
    detail = f"{type(exc).__name__}: {text}" if text else type(exc).__name__
    return f"tags not read: mutagen failed on this {fmt.value} file ({detail})"


def _layout(path: str, fmt: AudioFormat) -> IffLayout | None:
    if fmt not in (AudioFormat.WAV, AudioFormat.AIFF):
        return None
    try:
        layout = read_layout(path, os.path.getsize(path))
    except PermissionError:
        raise BadInput("permission denied") from None
    except FileNotFoundError:
        raise BadInput("file vanished while its tags were read") from None
    except (OSError, struct.error):  # a header cut inside a chunk: the integrity check says so
        return None
    if layout is not None and layout.audio_start is not None and layout.audio_bytes_present == 0:
        raise BadInput(f"{fmt.value} file holds no audio (its audio chunk is empty)")
    return layout


def _apply_layout(stream: dict[str, str], layout: IffLayout, fmt: AudioFormat) -> None:
    """Stream properties from the chunks, where tag readers get them wrong or not at all."""
    wave = layout.fmt
    if wave is None:
        return
    if fmt is AudioFormat.WAV:
        stream["codec"] = wave.codec
    for key, value in (
        ("sample_rate", wave.sample_rate),
        ("channels", wave.channels),
        ("bits_per_sample", wave.bits if wave.is_pcm else 0),
    ):  # only where the tag reader gave nothing (RF64, or its parse failed)
        if value > 0 and key not in stream:
            stream[key] = str(value)
    if not wave.is_pcm or "duration" not in stream:
        # Tag readers compute every WAV's length as if it were PCM: 0 s or a few ms for MS
        # ADPCM, GSM and MP3-in-WAV. The fact chunk's sample count or the byte rate is right.
        seconds = layout.duration()
        if not wave.is_pcm:
            stream.pop("bits_per_sample", None)  # a PCM notion; mutagen reports the header's
            stream.pop("bitrate", None)
            if wave.byte_rate > 0:
                stream["bitrate"] = str(wave.byte_rate * 8)
        if seconds is None:
            stream.pop("duration", None)
        else:
            stream["duration"] = f"{seconds:.3f}"


def _read_chunk_id3(path: str, layout: IffLayout) -> dict[str, str]:
    """Tags of the "id3 " chunk of an RF64/BW64 file (mutagen's WAVE reader reads RIFF only)."""
    if layout.tag_chunk is None:
        return {}
    start, end = layout.tag_chunk
    with open(path, "rb") as fh:
        fh.seek(start)
        raw = fh.read(min(end - start, MAX_TAG_CHUNK))
    return _read_tags(_ID3(io.BytesIO(raw)), TagSystem.ID3)


def short_reason(exc: BaseException) -> str:
    """An exception's message fit for a failure reason: never empty, at most 200 characters."""
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
    if fmt is AudioFormat.OGG_OPUS:
        # Opus always decodes at 48 kHz (RFC 7845; the header's "input sample rate" is only what
        # the encoder was fed), and mutagen gives no rate for it.
        props["sample_rate"] = str(OPUS_RATE)
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
        name = field.name_in(system)
        if not name:  # the field does not exist in this tag system
            continue
        values = _lookup(tags, system, name)
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


# --- Write side --------------------------------------------------------------------------------
#
# What tracktiond writes (only when the user enabled writing) into each format: the keys of the
# FIELDS rows above, or the reason the format is left alone. Formats are written only where one
# convention is read by DJ software and players alike, and where tracktiond.tagwrite can prove
# after the write that the audio stream is untouched.

_WRITTEN: tuple[str, ...] = ("bpm", "initialkey", "replaygain_track_gain", "replaygain_track_peak")
_APE_REASON = "APEv2 tags have no BPM/key fields that DJ software agrees on; not written"

WRITE_SUPPORT: dict[AudioFormat, tuple[str, ...] | str] = {
    AudioFormat.MP3: _WRITTEN,
    AudioFormat.WAV: _WRITTEN,  # the "id3 " chunk
    AudioFormat.AIFF: _WRITTEN,  # the "ID3 " chunk
    AudioFormat.FLAC: _WRITTEN,
    AudioFormat.OGG_VORBIS: _WRITTEN,
    AudioFormat.OGG_OPUS: (*_WRITTEN, "r128_track_gain"),
    AudioFormat.MP4: _WRITTEN,
    AudioFormat.AAC: "raw AAC (ADTS) has no tag container DJ software reads; not written",
    AudioFormat.OGG_FLAC: "Ogg FLAC is rare and its tag writing is not verified; not written",
    AudioFormat.OGG_SPEEX: "Ogg Speex is speech audio; not written",
    AudioFormat.ASF: "WMA/ASF has no agreed key and ReplayGain fields; not written",
    AudioFormat.WAVPACK: _APE_REASON,
    AudioFormat.APE: _APE_REASON,
    AudioFormat.MUSEPACK: _APE_REASON,
    AudioFormat.DSF: "DSF audio cannot be verified unchanged after a tag write; not written",
}

# ID3v2.4-only frames and where an ID3v2.3 tag keeps the same value instead (mutagen drops
# v2.4-only frames when it saves v2.3, so writing TMOO there would silently write nothing).
ID3V23_FALLBACK: dict[str, str] = {"TMOO": "TXXX:MOOD"}

_BY_KEY: dict[str, TagField] = {f.key: f for f in FIELDS}
_FIELD_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_]{0,63}")
_MANAGED_PREFIXES = ("BPM", "INITIALKEY", "REPLAYGAIN_", "R128_")


def field_for(key: str) -> TagField:
    """The FIELDS row for one of our metadata keys (KeyError if there is none)."""
    return _BY_KEY[key]


def write_support(fmt: AudioFormat) -> tuple[TagSystem, tuple[TagField, ...]] | str:
    """The tag system and the fields written into ``fmt``, or why ``fmt`` is not written."""
    support = WRITE_SUPPORT[fmt]
    if isinstance(support, str):
        return support
    return tag_system(fmt), tuple(_BY_KEY[key] for key in support)


def energy_field(name: str) -> TagField:
    """The field an energy/mood value goes to, from the configured name ("MOOD", "ENERGY", ...).

    "MOOD" is the established mood field of each tag system (ID3 TMOO, Vorbis MOOD, iTunes
    freeform MOOD); any other name becomes a user-defined field of that name (ID3 TXXX, Vorbis
    comment, iTunes freeform atom). Raises ValueError for a name a tag system cannot store or
    one that would clash with the fields tracktiond writes itself.
    """
    if not _FIELD_NAME.fullmatch(name):
        raise ValueError(
            f"energy field {name!r}: use a letter followed by letters, digits or '_' (max 64)"
        )
    if name.upper() == "MOOD":
        return _BY_KEY["mood"]
    if name.upper().startswith(_MANAGED_PREFIXES):
        raise ValueError(f"energy field {name!r} would overwrite a field tracktiond writes itself")
    return TagField(f"energy:{name}", f"TXXX:{name}", name.upper(), _ITUNES + name, name, name)


def lookup(tags: Any, system: TagSystem, name: str) -> list[str]:
    """The text values of the native field ``name`` (matched the way readers match it)."""
    return _lookup(tags, system, name) if name else []
