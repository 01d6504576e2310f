"""Generate real audio files, and real broken ones, for tracktiond's tests and benchmarks.

Everything here is produced by real encoders (FFmpeg through PyAV) and real taggers (mutagen), so
the daemon's probe/hash/tag/analyse code paths are exercised on the same kind of bytes a user's
library holds, not on hand-made headers.  The module deliberately imports nothing from
``tracktiond``: a helper that shares code with the thing under test could hide the very bugs the
tests are meant to find.

Determinism: calling :func:`make_audio` (or :func:`make_broken`, :func:`make_library`) twice with
the same arguments produces byte-identical files, for every format in :data:`FORMATS`; different
seeds produce different bytes.  The tests rely on this to exercise content-based identity (equal
bytes at two paths, or a changed byte at one path).  Where a muxer would embed something random or
run-dependent (the Ogg stream serial number) or build-dependent (FFmpeg version numbers), the
``bitexact`` flags are set on the container and the encoder, which makes FFmpeg write fixed values.

Monkey's Audio (``ape``) cannot be encoded here: FFmpeg only has an APE *decoder* and there is
no Monkey's Audio encoder package available.  Instead a real ``.ape`` file from mutagen's test
data, shipped in ``tests/data/`` (no network at test time), is copied and then varied
deterministically through its APEv2 tag.  See :func:`make_audio`.
"""

from __future__ import annotations

import io
import shutil
import struct
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import mutagen
import numpy as np
import soundfile
from av.audio.stream import AudioStream
from mutagen.aiff import AIFF
from mutagen.asf import ASF
from mutagen.flac import FLAC
from mutagen.id3 import APIC, ID3, TIT2, TXXX, Frames
from mutagen.monkeysaudio import MonkeysAudio
from mutagen.mp3 import MP3
from mutagen.mp4 import MP4, MP4FreeForm
from mutagen.oggopus import OggOpus
from mutagen.oggvorbis import OggVorbis
from mutagen.wave import WAVE
from mutagen.wavpack import WavPack

__all__ = [
    "APE_SAMPLE",
    "BROKEN_KINDS",
    "EXTENSIONS",
    "FORMATS",
    "MUTAGEN_TYPES",
    "ODD_KINDS",
    "TAG_FIELDS",
    "TAG_KEYS",
    "TAG_SCHEME",
    "format_for_path",
    "make_audio",
    "make_broken",
    "make_library",
    "make_odd",
    "read_tags",
]

FORMATS: tuple[str, ...] = ("mp3", "flac", "ogg", "opus", "m4a", "wav", "aiff", "wma", "wv", "ape")

# Every format is stored under its own name as the extension; kept as a table so callers never
# build extensions by string concatenation and so a future format with a different extension
# (say "aac" -> ".m4a") changes only one place.
EXTENSIONS: dict[str, str] = {fmt: f".{fmt}" for fmt in FORMATS}

# The generic, lowercase tag names the test-suite speaks.  Each tagging scheme below maps all of
# them, so any tag set can be written to any format.
TAG_KEYS: tuple[str, ...] = (
    "title",
    "artist",
    "album",
    "albumartist",
    "genre",
    "date",
    "tracknumber",
    "discnumber",
    "bpm",
    "initialkey",
    "replaygain_track_gain",
    "replaygain_track_peak",
)

# Generic tag name -> the native field name, per tagging scheme.  These are the fields that the
# common taggers (Picard, foobar2000, iTunes, Mp3tag) write, so the daemon's tag reader is tested
# against what it will really meet.  Declared once; read_tags() uses the same table in reverse.
TAG_FIELDS: dict[str, dict[str, str]] = {
    # ID3v2.4 frames; used by mp3 and by the "ID3 " chunk that WAVE and AIFF files carry.
    "id3": {
        "title": "TIT2",
        "artist": "TPE1",
        "album": "TALB",
        "albumartist": "TPE2",
        "genre": "TCON",
        "date": "TDRC",
        "tracknumber": "TRCK",
        "discnumber": "TPOS",
        "bpm": "TBPM",
        "initialkey": "TKEY",
        "replaygain_track_gain": "TXXX:REPLAYGAIN_TRACK_GAIN",
        "replaygain_track_peak": "TXXX:REPLAYGAIN_TRACK_PEAK",
    },
    # Vorbis comments; used by FLAC, Ogg Vorbis and Ogg Opus.
    "vorbis": {
        "title": "TITLE",
        "artist": "ARTIST",
        "album": "ALBUM",
        "albumartist": "ALBUMARTIST",
        "genre": "GENRE",
        "date": "DATE",
        "tracknumber": "TRACKNUMBER",
        "discnumber": "DISCNUMBER",
        "bpm": "BPM",
        "initialkey": "INITIALKEY",
        "replaygain_track_gain": "REPLAYGAIN_TRACK_GAIN",
        "replaygain_track_peak": "REPLAYGAIN_TRACK_PEAK",
    },
    # iTunes-style MP4 atoms.  trkn/disk are (number, total) pairs and tmpo is an integer; the
    # rest without a native atom go into iTunes freeform ("----") atoms.
    "mp4": {
        "title": "\xa9nam",
        "artist": "\xa9ART",
        "album": "\xa9alb",
        "albumartist": "aART",
        "genre": "\xa9gen",
        "date": "\xa9day",
        "tracknumber": "trkn",
        "discnumber": "disk",
        "bpm": "tmpo",
        "initialkey": "----:com.apple.iTunes:initialkey",
        "replaygain_track_gain": "----:com.apple.iTunes:replaygain_track_gain",
        "replaygain_track_peak": "----:com.apple.iTunes:replaygain_track_peak",
    },
    # ASF (Windows Media) attributes; Title and Author live in the content description object,
    # mutagen handles that transparently.
    "asf": {
        "title": "Title",
        "artist": "Author",
        "album": "WM/AlbumTitle",
        "albumartist": "WM/AlbumArtist",
        "genre": "WM/Genre",
        "date": "WM/Year",
        "tracknumber": "WM/TrackNumber",
        "discnumber": "WM/PartOfSet",
        "bpm": "WM/BeatsPerMinute",
        "initialkey": "WM/InitialKey",
        "replaygain_track_gain": "replaygain_track_gain",
        "replaygain_track_peak": "replaygain_track_peak",
    },
    # APEv2 items; used by WavPack and Monkey's Audio.
    "apev2": {
        "title": "Title",
        "artist": "Artist",
        "album": "Album",
        "albumartist": "Album Artist",
        "genre": "Genre",
        "date": "Year",
        "tracknumber": "Track",
        "discnumber": "Disc",
        "bpm": "BPM",
        "initialkey": "INITIALKEY",
        "replaygain_track_gain": "REPLAYGAIN_TRACK_GAIN",
        "replaygain_track_peak": "REPLAYGAIN_TRACK_PEAK",
    },
}

# Which tagging scheme each format uses.
TAG_SCHEME: dict[str, str] = {
    "mp3": "id3",
    "wav": "id3",
    "aiff": "id3",
    "flac": "vorbis",
    "ogg": "vorbis",
    "opus": "vorbis",
    "m4a": "mp4",
    "wma": "asf",
    "wv": "apev2",
    "ape": "apev2",
}

# The mutagen class that parses each format.  Tests assert mutagen.File() picks exactly this one
# (by content, not by extension), and the tag writer opens files with it.
MUTAGEN_TYPES: dict[str, type[mutagen.FileType]] = {
    "mp3": MP3,
    "flac": FLAC,
    "ogg": OggVorbis,
    "opus": OggOpus,
    "m4a": MP4,
    "wav": WAVE,
    "aiff": AIFF,
    "wma": ASF,
    "wv": WavPack,
    "ape": MonkeysAudio,
}

BROKEN_KINDS: tuple[str, ...] = (
    "zero",
    "truncated",
    "garbage",
    "wrong_extension",
    "multichannel",
    "text",
)


# Files every player plays that a strict reader rejects (DESIGN "facts learned the hard way"),
# modelled on the shapes found in other projects' test corpora; see make_odd().
ODD_KINDS: tuple[str, ...] = (
    "riff_size_off",
    "data_short",
    "rf64",
    "adpcm",
    "mp3_in_wav",
    "vorbis_in_wav",
    "id3_before_flac",
    "video_first_ogg",
    "year_header",
    "tag_reader_crash",
    "libsndfile_only",
)


@dataclass(frozen=True)
class _Encoding:
    """How FFmpeg writes one format: muxer name, encoder name and encoder options."""

    muxer: str
    codec: str
    options: dict[str, str] = field(default_factory=dict)
    bit_rate: int | None = None
    # The channel counts the encoder accepts: MP3 and WMA are at most stereo, and FFmpeg's
    # native Vorbis encoder encodes exactly two channels (it refuses mono as well as surround).
    min_channels: int = 1
    max_channels: int = 8
    # Extra encoder options used only for more than two channels.
    surround_options: dict[str, str] = field(default_factory=dict)


# Lossy encoders get an explicit bit rate so file sizes (and thus benchmark numbers) do not drift
# with FFmpeg's defaults.  "ipod" is the muxer FFmpeg itself picks for .m4a: an MP4 with the
# iTunes-compatible brand.
_ENCODINGS: dict[str, _Encoding] = {
    "mp3": _Encoding("mp3", "libmp3lame", bit_rate=128_000, max_channels=2),
    "flac": _Encoding("flac", "flac"),
    # FFmpeg's native Vorbis encoder is flagged experimental (and there is no libvorbis in the
    # PyAV wheel), so it must be explicitly allowed.
    "ogg": _Encoding(
        "ogg", "vorbis", options={"strict": "experimental"}, min_channels=2, max_channels=2
    ),
    # libopus needs mapping family 1 (Vorbis channel order) to accept surround input; mono and
    # stereo keep the default family 0, the plain layout every player expects.
    "opus": _Encoding("opus", "libopus", bit_rate=96_000, surround_options={"mapping_family": "1"}),
    "m4a": _Encoding("ipod", "aac", bit_rate=128_000),
    "wav": _Encoding("wav", "pcm_s16le"),
    "aiff": _Encoding("aiff", "pcm_s16be"),
    "wma": _Encoding("asf", "wmav2", bit_rate=128_000, max_channels=2),
    "wv": _Encoding("wv", "wavpack"),
}

# FFmpeg names the usual layout for each channel count; the encoders need a layout, not a count.
_LAYOUTS: dict[int, str] = {
    1: "mono",
    2: "stereo",
    3: "3.0",
    4: "quad",
    5: "5.0",
    6: "5.1",
    7: "6.1",
    8: "7.1",
}

# Sample formats we know how to fill from numpy, best first: float keeps the signal exact for the
# lossy encoders; integer formats are what the lossless/PCM ones take.
_SAMPLE_FORMAT_PREFERENCE: tuple[str, ...] = ("fltp", "flt", "s16p", "s16", "s32p", "s32")

# Samples per frame handed to PyAV.  PyAV re-chunks to each encoder's own frame size, so this only
# bounds memory; the value itself does not reach the file.
_CHUNK = 4096

#: The Monkey's Audio sample every ``.ape`` file is copied from: stereo, 44.1 kHz, Monkey's Audio
#: 3.99, 3.68 s of silence, decodable by FFmpeg. From mutagen's source distribution (its test data,
#: GPL-2.0-or-later, which may be redistributed with our AGPL-3.0 code: tests/data/README.md).
APE_SAMPLE = Path(__file__).resolve().parents[1] / "data" / "mac-399.ape"


def format_for_path(path: Path | str) -> str:
    """The format implied by a path's extension, e.g. ``"flac"`` for ``a/b.FLAC``."""
    suffix = Path(path).suffix.lower()
    for fmt, ext in EXTENSIONS.items():
        if ext == suffix:
            return fmt
    raise ValueError(f"no audio format for extension {suffix!r} of {path}; known: {FORMATS}")


def _check_format(fmt: str) -> str:
    if fmt not in FORMATS:
        raise ValueError(f"unknown format {fmt!r}; known: {FORMATS}")
    return fmt


# ---------------------------------------------------------------------------------------------
# Encoding
# ---------------------------------------------------------------------------------------------


def _signal(
    seconds: float, freq: float, seed: int, channels: int, sample_rate: int
) -> np.ndarray[Any, np.dtype[np.float64]]:
    """A sine at ``freq`` plus a little seeded noise, shape (channels, samples), in [-1, 1].

    The sine gives analysers something real to find; the noise makes the bytes depend on the
    seed (so two "different songs" never collide by hash) while staying far below the tone.
    Each channel gets a slightly different phase and its own noise, so channels are not copies
    (an encoder could otherwise store them as joint/mid-side and hide channel bugs).
    """
    n = max(1, round(seconds * sample_rate))
    t = np.arange(n, dtype=np.float64) / sample_rate
    rng = np.random.default_rng(seed)
    phases = np.linspace(0.0, np.pi / 4, channels, dtype=np.float64)[:, None]
    tone = 0.5 * np.sin(2 * np.pi * freq * t[None, :] + phases)
    noise = rng.uniform(-0.02, 0.02, size=(channels, n))
    return np.clip(tone + noise, -1.0, 1.0)


def _pick_sample_format(codec: av.Codec) -> str:
    supported = {f.name for f in codec.audio_formats or ()}
    for name in _SAMPLE_FORMAT_PREFERENCE:
        if name in supported:
            return name
    raise RuntimeError(f"encoder {codec.name} takes none of {_SAMPLE_FORMAT_PREFERENCE}")


def _pick_rate(codec: av.Codec, wanted: int) -> int:
    """``wanted`` if the encoder accepts it, else the nearest higher rate it does.

    Only Opus restricts rates (8/12/16/24/48 kHz), so a request for 44.1 kHz Opus gets 48 kHz,
    which is what any real Opus encoder produces too.
    """
    rates = codec.audio_rates
    if not rates or wanted in rates:
        return wanted
    higher = sorted(r for r in rates if r >= wanted)
    return higher[0] if higher else max(rates)


def _to_sample_format(
    block: np.ndarray[Any, np.dtype[np.float64]], sample_format: str
) -> np.ndarray[Any, Any]:
    """Convert a (channels, samples) float block to the array layout PyAV expects."""
    base = sample_format.rstrip("p")
    if base == "flt":
        data: np.ndarray[Any, Any] = block.astype(np.float32)
    elif base == "s16":
        data = np.round(block * 32767.0).astype(np.int16)
    elif base == "s32":
        data = np.round(block * 2147483647.0).astype(np.int32)
    else:  # pragma: no cover - guarded by _pick_sample_format
        raise ValueError(sample_format)
    if sample_format.endswith("p"):
        return np.ascontiguousarray(data)
    # Packed formats are one plane of interleaved samples.
    return np.ascontiguousarray(data.T).reshape(1, -1)


def _encode(
    path: Path, fmt: str, seconds: float, freq: float, seed: int, channels: int, sample_rate: int
) -> None:
    enc = _ENCODINGS[fmt]
    if channels not in _LAYOUTS:
        raise ValueError(f"channels must be one of {sorted(_LAYOUTS)}, got {channels}")
    if not enc.min_channels <= channels <= enc.max_channels:
        raise ValueError(
            f"{fmt} ({enc.codec}) encodes {enc.min_channels}..{enc.max_channels} channels, "
            f"not {channels}"
        )
    codec = av.Codec(enc.codec, "w")
    rate = _pick_rate(codec, sample_rate)
    sample_format = _pick_sample_format(codec)
    layout = _LAYOUTS[channels]
    signal = _signal(seconds, freq, seed, channels, rate)

    # "+bitexact" on the muxer makes FFmpeg write fixed values where it would otherwise write
    # something that varies per run: without it the Ogg muxer (ogg, opus) picks a random stream
    # serial number for every file, so the same arguments would not give the same bytes.  It
    # also keeps FFmpeg's version numbers out of the headers (the MP3 encoder tag says just
    # "Lavf"), so files do not change with the FFmpeg build either.  On the encoder it does the
    # same for e.g. the Vorbis vendor string.
    container = av.open(str(path), "w", format=enc.muxer, container_options={"fflags": "+bitexact"})
    try:
        options = {"flags": "+bitexact", **enc.options}
        if channels > 2:
            options.update(enc.surround_options)
        stream = container.add_stream(enc.codec, rate=rate, options=options)
        if not isinstance(stream, AudioStream):  # narrows the type; every codec here is audio
            raise TypeError(f"{enc.codec} did not give an audio stream")
        ctx = stream.codec_context
        ctx.layout = layout
        ctx.format = sample_format
        ctx.time_base = Fraction(1, rate)
        if enc.bit_rate is not None:
            ctx.bit_rate = enc.bit_rate

        total = signal.shape[1]
        for start in range(0, total, _CHUNK):
            block = _to_sample_format(signal[:, start : start + _CHUNK], sample_format)
            frame = av.AudioFrame.from_ndarray(block, format=sample_format, layout=layout)
            frame.sample_rate = rate
            frame.pts = start
            frame.time_base = Fraction(1, rate)
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode(None):  # flush the encoder's delayed packets
            container.mux(packet)
    finally:
        container.close()


# ---------------------------------------------------------------------------------------------
# Monkey's Audio from the shipped sample
# ---------------------------------------------------------------------------------------------


def _ape_source() -> Path:
    """The shipped Monkey's Audio sample (:data:`APE_SAMPLE`), checked to be usable.

    Raises RuntimeError, never skips: a test-suite that silently dropped APE coverage would look
    green while testing less.
    """
    try:
        info: Any = MUTAGEN_TYPES["ape"](APE_SAMPLE).info
    except Exception as exc:  # a missing file, or one mutagen no longer reads
        raise RuntimeError(
            f"the Monkey's Audio sample {APE_SAMPLE} is missing or unreadable ({exc}); it ships "
            "with the repository (see tests/data/README.md): FFmpeg cannot encode APE"
        ) from exc
    if info.length <= 0 or info.channels not in (1, 2):
        raise RuntimeError(f"{APE_SAMPLE} is not a usable Monkey's Audio file")
    return APE_SAMPLE


def _make_ape(path: Path, seconds: float, freq: float, seed: int, channels: int, rate: int) -> None:
    shutil.copyfile(_ape_source(), path)
    # The audio frames are as shipped, so the generation parameters are recorded in a comment
    # item: it makes different seeds (and other parameters) give different bytes, which the
    # hash/identity tests need, without touching the generic tags that read_tags() reports.
    audio = MUTAGEN_TYPES["ape"](path)
    if audio.tags is None:
        audio.add_tags()
    assert audio.tags is not None
    audio.tags["Comment"] = (
        f"audiogen seed={seed} freq={freq} seconds={seconds} channels={channels} rate={rate}"
    )
    audio.save()


# ---------------------------------------------------------------------------------------------
# Tagging
# ---------------------------------------------------------------------------------------------


def _number_pair(key: str, value: str) -> tuple[int, int]:
    """Parse "3" or "3/12" into (3, 0) / (3, 12) for MP4's trkn/disk atoms."""
    number, _, total = value.partition("/")
    try:
        return int(number), int(total) if total else 0
    except ValueError:
        raise ValueError(f"MP4 {key} needs 'N' or 'N/M' with integers, got {value!r}") from None


def _format_pair(pair: tuple[int, int]) -> str:
    number, total = pair
    return f"{number}/{total}" if total else str(number)


def _write_id3(audio: mutagen.FileType, tags: Mapping[str, str]) -> None:
    if audio.tags is None:
        audio.add_tags()
    id3 = audio.tags
    assert isinstance(id3, ID3)
    for key, value in tags.items():
        native = TAG_FIELDS["id3"][key]
        if native.startswith("TXXX:"):
            id3.add(TXXX(encoding=3, desc=native[len("TXXX:") :], text=[value]))
        else:
            id3.add(Frames[native](encoding=3, text=[value]))


def _write_vorbis(audio: mutagen.FileType, tags: Mapping[str, str]) -> None:
    assert audio.tags is not None  # FFmpeg always writes a Vorbis comment block
    for key, value in tags.items():
        audio.tags[TAG_FIELDS["vorbis"][key]] = [value]


def _write_mp4(audio: mutagen.FileType, tags: Mapping[str, str]) -> None:
    if audio.tags is None:
        audio.add_tags()
    assert audio.tags is not None
    for key, value in tags.items():
        native = TAG_FIELDS["mp4"][key]
        item: list[Any]
        if native in ("trkn", "disk"):
            item = [_number_pair(native, value)]
        elif native == "tmpo":
            # tmpo is a 16-bit integer; refusing fractions keeps "tags read back exactly" true.
            if not value.isdigit():
                raise ValueError(f"MP4 tmpo (bpm) is an integer atom, got {value!r}")
            item = [int(value)]
        elif native.startswith("----:"):
            item = [MP4FreeForm(value.encode("utf-8"))]
        else:
            item = [value]
        audio.tags[native] = item


def _write_asf(audio: mutagen.FileType, tags: Mapping[str, str]) -> None:
    assert audio.tags is not None  # mutagen always gives ASF files a tag container
    for key, value in tags.items():
        # Plain strings become Unicode attributes; WM/TrackNumber as a string keeps "3/12".
        audio.tags[TAG_FIELDS["asf"][key]] = [value]


def _write_apev2(audio: mutagen.FileType, tags: Mapping[str, str]) -> None:
    if audio.tags is None:
        audio.add_tags()
    assert audio.tags is not None
    for key, value in tags.items():
        audio.tags[TAG_FIELDS["apev2"][key]] = value


_TAG_WRITERS: dict[str, Callable[[mutagen.FileType, Mapping[str, str]], None]] = {
    "id3": _write_id3,
    "vorbis": _write_vorbis,
    "mp4": _write_mp4,
    "asf": _write_asf,
    "apev2": _write_apev2,
}


def _write_tags(path: Path, fmt: str, tags: Mapping[str, str]) -> None:
    unknown = sorted(set(tags) - set(TAG_KEYS))
    if unknown:
        raise ValueError(f"unknown tag keys {unknown}; known: {TAG_KEYS}")
    audio = MUTAGEN_TYPES[fmt](path)
    _TAG_WRITERS[TAG_SCHEME[fmt]](audio, tags)
    audio.save()


def _native_text(scheme: str, native: str, value: Any) -> str:
    """One native tag value (whatever mutagen returns for that scheme) as plain text."""
    if scheme == "id3":
        return "; ".join(str(t) for t in value.text)
    if scheme == "mp4":
        if native in ("trkn", "disk"):
            return "; ".join(_format_pair(p) for p in value)
        if native.startswith("----:"):
            return "; ".join(bytes(v).decode("utf-8") for v in value)
        return "; ".join(str(v) for v in value)
    if scheme == "apev2":
        return str(value)
    # vorbis and asf: lists of values (str, or ASF attributes whose str() is their value)
    return "; ".join(str(v) for v in value)


def read_tags(path: Path | str) -> dict[str, str]:
    """Read back the generic tags (see :data:`TAG_KEYS`) that are present in ``path``.

    The scheme is chosen by what mutagen detects in the file's content, not by its extension.
    Multiple values of one field are joined with "; " (audiogen itself only writes one).
    """
    audio = mutagen.File(str(path))
    if audio is None:
        raise ValueError(f"mutagen does not recognise {path}")
    fmt = next((f for f, cls in MUTAGEN_TYPES.items() if type(audio) is cls), None)
    if fmt is None:
        raise ValueError(f"{path}: unexpected mutagen type {type(audio).__name__}")
    if audio.tags is None:
        return {}
    scheme = TAG_SCHEME[fmt]
    result: dict[str, str] = {}
    for key, native in TAG_FIELDS[scheme].items():
        if native in audio.tags:
            result[key] = _native_text(scheme, native, audio.tags[native])
    return result


# ---------------------------------------------------------------------------------------------
# Public generators
# ---------------------------------------------------------------------------------------------


def make_audio(
    path: Path | str,
    fmt: str | None = None,
    *,
    seconds: float = 2.0,
    freq: float = 440.0,
    seed: int = 0,
    channels: int = 2,
    sample_rate: int = 44100,
    tags: Mapping[str, str] | None = None,
) -> Path:
    """Write a real audio file to ``path`` and return it as a Path.

    ``fmt`` is one of :data:`FORMATS`; by default it is implied by the path's extension.  The file
    is written in ``fmt`` whatever the extension says (``make_broken`` uses that to lie).  The
    signal is a sine at ``freq`` plus seeded noise; ``tags`` (generic keys of :data:`TAG_KEYS`)
    are written with mutagen into the format's usual fields (:data:`TAG_FIELDS`).  The same
    arguments always give byte-identical files; different seeds give different bytes.

    Per-format notes:

    * ``opus``: Opus encodes only at 8/12/16/24/48 kHz, so an unsupported ``sample_rate`` (e.g.
      44100) is encoded at the next higher supported rate (48 kHz).  mutagen's OggOpus info has
      no ``sample_rate`` attribute at all; FFmpeg decodes Opus at 48 kHz.
    * ``mp3`` and ``wma`` accept 1 or 2 channels, ``ogg`` exactly 2 (ValueError otherwise): MP3
      and WMA are stereo codecs, and FFmpeg's native Vorbis encoder (the only Vorbis encoder in
      PyAV's FFmpeg) encodes stereo only.
    * ``wv``: mutagen's WavPack reader only knows the mono flag: it reports ``channels == True``
      (== 1) for mono and 2 for anything else, including 5.1 (FFmpeg reports 6).
    * ``m4a``: ``bpm`` must be an integer string (MP4's tmpo atom), ``tracknumber`` and
      ``discnumber`` must be "N" or "N/M" with integers (trkn/disk atoms).
    * ``ape``: FFmpeg has no Monkey's Audio encoder, so the shipped sample :data:`APE_SAMPLE`
      (``tests/data/mac-399.ape``: stereo, 44.1 kHz, ~3.68 s of silence) is copied.  ``seconds``,
      ``freq``, ``channels`` and ``sample_rate`` are therefore not honoured; they and ``seed`` are
      recorded in an APEv2 ``Comment`` item, which is what makes the bytes differ per seed.  A
      missing or unreadable sample raises RuntimeError.
    """
    target = Path(path)
    fmt = _check_format(fmt if fmt is not None else format_for_path(target))
    if seconds <= 0:
        raise ValueError(f"seconds must be positive, got {seconds}")
    target.parent.mkdir(parents=True, exist_ok=True)
    if fmt == "ape":
        _make_ape(target, seconds, freq, seed, channels, sample_rate)
    else:
        _encode(target, fmt, seconds, freq, seed, channels, sample_rate)
    if tags:
        _write_tags(target, fmt, tags)
    return target


def make_broken(path: Path | str, kind: str, *, seed: int = 0) -> Path:
    """Write a file that a music library really contains and that the daemon must survive.

    Kinds (:data:`BROKEN_KINDS`):

    * ``zero``: an empty file.
    * ``truncated``: a real file in the format of ``path``'s extension, cut to 40 % of its bytes
      (an interrupted copy or download).
    * ``garbage``: 16 KiB of seeded random bytes under an audio extension.
    * ``wrong_extension``: a real WAVE file under whatever name ``path`` has (e.g. ``song.ogg``).
    * ``multichannel``: a real 6-channel (5.1) file in the format of ``path``'s extension: flac,
      opus, m4a, wav, aiff or wv; mp3, wma, ogg and ape raise ValueError (see make_audio).
    * ``text``: a small text file (e.g. a saved web page or notes) under an audio extension.
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    if kind == "zero":
        target.write_bytes(b"")
    elif kind == "truncated":
        make_audio(target, seconds=2.0, seed=seed)
        data = target.read_bytes()
        target.write_bytes(data[: int(len(data) * 0.4)])
    elif kind == "garbage":
        raw = np.random.default_rng(seed).integers(0, 255, size=16 * 1024, dtype=np.uint8)
        # 0xFF never appears (upper bound is exclusive): MPEG/ADTS frame-sync scanners lock onto
        # 0xFFEx/0xFFFx, so random bytes can occasionally parse as a few "MP3 frames" and the file
        # would not be garbage for every seed.
        target.write_bytes(raw.tobytes())
    elif kind == "wrong_extension":
        make_audio(target, "wav", seconds=1.0, seed=seed)
    elif kind == "multichannel":
        fmt = format_for_path(target)
        if fmt == "ape":
            raise ValueError("no 6-channel Monkey's Audio file can be made here")
        make_audio(target, fmt, seconds=1.0, seed=seed, channels=6)
    elif kind == "text":
        target.write_text(
            "This is not audio.\n"
            f"It is a text file saved under an audio extension (seed {seed}).\n",
            encoding="utf-8",
        )
    else:
        raise ValueError(f"unknown broken kind {kind!r}; known: {BROKEN_KINDS}")
    return target


def make_odd(path: Path | str, kind: str, *, seconds: float = 2.0, seed: int = 0) -> Path:
    """Write a file that every player plays but a strict reader may reject.

    Kinds (:data:`ODD_KINDS`), each a shape found in real libraries and test corpora:

    * ``riff_size_off``: a WAV (or AIFF, for an ``.aiff`` path) whose RIFF/FORM size field
      declares 8 bytes more than the file holds, while its audio chunk ends exactly at the end.
    * ``data_short``: a WAV whose data chunk declares 48 bytes more than the file holds (the
      last frame a few bytes short).
    * ``rf64``: an RF64 WAV (64-bit sizes in a ``ds64`` chunk), as FFmpeg writes past 4 GiB.
    * ``adpcm``: Microsoft ADPCM in WAV, with the average byte rate left 0 (FFmpeg's writer).
    * ``mp3_in_wav``: MP3 frames in a WAV file (format tag 0x55).
    * ``vorbis_in_wav``: a RIFF WAVE file with the Vorbis ACM format tag 0x674F whose data
      chunk holds a whole Ogg Vorbis stream (lmms' samples; usually named ``.ogg``).
    * ``id3_before_flac``: a FLAC file behind an ID3v2 tag of ~20 KiB (cover art), larger than
      any sniffing window.
    * ``video_first_ogg``: an Ogg file whose first logical stream is VP8 video, the second
      Vorbis audio.
    * ``year_header``: an MP3 whose Xing header claims a year of frames.
    * ``tag_reader_crash``: a WavPack file at 22 kHz, a rate without a code in the header, on
      which mutagen raises IndexError (taglib's ``non_standard_rate.wv``); FFmpeg decodes it.
    * ``libsndfile_only``: a MATLAB 5 sound file: libsndfile reads it, FFmpeg has no demuxer.

    The signal is make_audio's tone; the same arguments give the same bytes.
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    if kind == "riff_size_off":
        aiff = target.suffix.lower() in (".aif", ".aiff")
        make_audio(target, "aiff" if aiff else "wav", seconds=seconds, seed=seed)
        data = bytearray(target.read_bytes())
        order = ">I" if aiff else "<I"
        (size,) = struct.unpack(order, data[4:8])
        data[4:8] = struct.pack(order, size + 8)
        target.write_bytes(bytes(data))
    elif kind == "data_short":
        make_audio(target, "wav", seconds=seconds, seed=seed)
        data = bytearray(target.read_bytes())
        at = data.index(b"data", 12)
        (size,) = struct.unpack("<I", data[at + 4 : at + 8])
        data[at + 4 : at + 8] = struct.pack("<I", size + 48)
        (riff,) = struct.unpack("<I", data[4:8])
        data[4:8] = struct.pack("<I", riff + 48)
        target.write_bytes(bytes(data))
    elif kind == "rf64":
        _encode_raw(target, "wav", "pcm_s16le", seconds, seed, container={"rf64": "always"})
    elif kind == "adpcm":
        _encode_raw(target, "wav", "adpcm_ms", seconds, seed)
    elif kind == "mp3_in_wav":
        _encode_raw(target, "wav", "libmp3lame", seconds, seed)
    elif kind == "vorbis_in_wav":
        inner = target.with_name(target.name + ".inner.ogg")
        make_audio(inner, "ogg", seconds=seconds, seed=seed)
        ogg = inner.read_bytes()
        inner.unlink()
        # The byte rate is the stream's average, as the codec declares its nominal bit rate.
        byte_rate = round(len(ogg) / seconds)
        fmt = struct.pack("<HHIIHHH", 0x674F, 2, 44100, byte_rate, 1, 16, 0)
        body = b"WAVEfmt " + struct.pack("<I", len(fmt)) + fmt
        body += b"data" + struct.pack("<I", len(ogg)) + ogg + b"\0" * (len(ogg) & 1)
        target.write_bytes(b"RIFF" + struct.pack("<I", len(body)) + body)
    elif kind == "id3_before_flac":
        make_audio(target, "flac", seconds=seconds, seed=seed)
        tag = ID3()
        tag.add(TIT2(encoding=3, text=["Behind a big tag"]))
        cover = b"\x89PNG\r\n\x1a\n" + bytes(20 * 1024)
        tag.add(APIC(encoding=3, mime="image/png", type=3, desc="cover", data=cover))
        raw = io.BytesIO()
        tag.save(raw, padding=lambda _info: 0)
        target.write_bytes(raw.getvalue() + target.read_bytes())
    elif kind == "video_first_ogg":
        _video_first_ogg(target, seconds, seed)
    elif kind == "year_header":
        make_audio(target, "mp3", seconds=seconds, seed=seed)
        data = bytearray(target.read_bytes())
        at = max(data.find(b"Xing"), data.find(b"Info"))
        (flags,) = struct.unpack(">I", data[at + 4 : at + 8])
        assert flags & 1, "the encoder wrote no frame count"
        year_of_frames = 365 * 24 * 3600 * 44100 // 1152
        data[at + 8 : at + 12] = struct.pack(">I", year_of_frames)
        target.write_bytes(bytes(data))
    elif kind == "tag_reader_crash":
        make_audio(target, "wv", seconds=seconds, seed=seed, sample_rate=22000)
    elif kind == "libsndfile_only":
        stereo = _signal(seconds, 440.0, seed, 2, 44100).T.astype(np.float32)
        soundfile.write(str(target), stereo, 44100, format="MAT5", subtype="FLOAT")
    else:
        raise ValueError(f"unknown odd kind {kind!r}; known: {ODD_KINDS}")
    return target


def _frames_of(
    signal: np.ndarray[Any, np.dtype[np.float64]], sample_format: str, layout: str, rate: int
) -> Iterable[av.AudioFrame]:
    for start in range(0, signal.shape[1], _CHUNK):
        block = _to_sample_format(signal[:, start : start + _CHUNK], sample_format)
        frame = av.AudioFrame.from_ndarray(block, format=sample_format, layout=layout)
        frame.sample_rate = rate
        frame.pts = start
        frame.time_base = Fraction(1, rate)
        yield frame


def _encode_raw(
    path: Path,
    muxer: str,
    codec_name: str,
    seconds: float,
    seed: int,
    *,
    container: dict[str, str] | None = None,
) -> None:
    """Stereo 44.1 kHz tone in ``codec_name`` inside ``muxer``, with muxer options."""
    codec = av.Codec(codec_name, "w")
    sample_format = _pick_sample_format(codec)
    options = {"fflags": "+bitexact", **(container or {})}
    out = av.open(str(path), "w", format=muxer, options=options)
    try:
        stream = out.add_stream(codec_name, rate=44100, options={"flags": "+bitexact"})
        if not isinstance(stream, AudioStream):
            raise TypeError(f"{codec_name} did not give an audio stream")
        stream.codec_context.layout = "stereo"
        stream.codec_context.format = sample_format
        for frame in _frames_of(
            _signal(seconds, 440.0, seed, 2, 44100), sample_format, "stereo", 44100
        ):
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
    finally:
        out.close()


def _video_first_ogg(path: Path, seconds: float, seed: int) -> None:
    out = av.open(str(path), "w", format="ogg", options={"fflags": "+bitexact"})
    try:
        # The video stream is added first, so its beginning-of-stream page comes first.
        video: Any = out.add_stream("libvpx", rate=5, options={"threads": "1"})
        video.width, video.height, video.pix_fmt = 64, 48, "yuv420p"
        audio = out.add_stream(
            "vorbis", rate=44100, options={"strict": "experimental", "flags": "+bitexact"}
        )
        if not isinstance(audio, AudioStream):
            raise TypeError("vorbis did not give an audio stream")
        audio.codec_context.layout = "stereo"
        audio.codec_context.format = "fltp"
        black = np.zeros((48, 64, 3), dtype=np.uint8)
        for i in range(max(1, round(seconds * 5))):
            picture = av.VideoFrame.from_ndarray(black, format="rgb24").reformat(format="yuv420p")
            picture.pts = i
            picture.time_base = Fraction(1, 5)
            for packet in video.encode(picture):
                out.mux(packet)
        for packet in video.encode(None):
            out.mux(packet)
        signal = _signal(seconds, 440.0, seed, 2, 44100)
        for frame in _frames_of(signal, "fltp", "stereo", 44100):
            for packet in audio.encode(frame):
                out.mux(packet)
        for packet in audio.encode(None):
            out.mux(packet)
    finally:
        out.close()


_GENRES: tuple[str, ...] = ("House", "Techno", "Jazz", "Ambient", "Drum & Bass", "Dub", "Folk")
_KEYS: tuple[str, ...] = ("Am", "C", "F#m", "Eb", "Gm", "Bb", "Dm", "E")
_TRACKS_PER_ALBUM = 4
_ALBUMS_PER_ARTIST = 3


def make_library(
    root: Path,
    count: int,
    *,
    formats: Iterable[str] = FORMATS,
    seconds: float = 1.0,
    seed: int = 0,
) -> list[Path]:
    """Write ``count`` tagged files under ``root`` as Artist/Album/NN - Title.ext and return them.

    Formats rotate through ``formats``; every file has distinct tags and distinct audio (its own
    seed and frequency), so no two files share a content hash.  The result is deterministic for
    the same arguments.
    """
    fmts = tuple(formats)
    if not fmts:
        raise ValueError("formats must not be empty")
    for fmt in fmts:
        _check_format(fmt)
    if count < 0:
        raise ValueError(f"count must be >= 0, got {count}")
    paths: list[Path] = []
    for i in range(count):
        fmt = fmts[i % len(fmts)]
        album_index, track_index = divmod(i, _TRACKS_PER_ALBUM)
        artist_index = album_index // _ALBUMS_PER_ARTIST
        artist = f"Artist {seed}-{artist_index:03d}"
        album = f"Album {seed}-{album_index:04d}"
        title = f"Track {seed}-{i:05d}"
        number = track_index + 1
        tags = {
            "title": title,
            "artist": artist,
            "album": album,
            "albumartist": artist,
            "genre": _GENRES[i % len(_GENRES)],
            "date": str(1970 + (album_index % 55)),
            "tracknumber": f"{number}/{_TRACKS_PER_ALBUM}",
            "discnumber": "1/1",
            "bpm": str(80 + (i * 7) % 100),
            "initialkey": _KEYS[i % len(_KEYS)],
            "replaygain_track_gain": f"{-3.0 - (i % 90) / 10:.2f} dB",
            "replaygain_track_peak": f"{0.5 + (i % 50) / 100:.6f}",
        }
        path = root / artist / album / f"{number:02d} - {title}{EXTENSIONS[fmt]}"
        # Spread frequencies over ~3 octaves so analysers see different material per file, and
        # mix the library seed with the index so libraries with different seeds never overlap.
        freq = 110.0 * 2 ** ((i % 37) / 12)
        make_audio(path, fmt, seconds=seconds, freq=freq, seed=seed * 1_000_003 + i, tags=tags)
        paths.append(path)
    return paths
