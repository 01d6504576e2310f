"""Writing analysis results (BPM, key, ReplayGain, energy) into audio files: the one place
tracktiond modifies user files, so it is opt-in, conservative and crash-safe (DESIGN invariant 7).

Where each value goes is declared once in tracktiond.tags (FIELDS, WRITE_SUPPORT); this module
decides how values are spelled, what differs from what the file holds, and how the file is
replaced safely:

1. plan: read the file (mutagen, read-only) and work out which fields change;
2. copy the file to a hidden temporary name in the same directory, apply the tags to the copy,
   fsync it;
3. verify the copy: it parses, our values read back, every other tag is as before, the audio
   payload is byte-identical and the headers a decoder needs (FLAC STREAMINFO, Ogg codec headers,
   WAV/AIFF chunks, MP4 track tables relative to the audio) are unchanged;
4. give the copy the original's mode, owner, extended attributes and access time, check the
   original was not changed or removed meanwhile, ``os.replace`` it over the original and fsync
   the directory.

Any failure before step 4's rename removes the copy and leaves the original untouched. A crash or
kill -9 at any instant leaves either the old or the new file under the name (the rename is
atomic) and at worst a hidden ``.NAME.tracktiond-XXXXXXXX.tmp`` copy, which the scanner ignores
and :func:`cleanup_stale_temp_files` removes. See docs/tagging.md.
"""

from __future__ import annotations

import bisect
import contextlib
import errno
import math
import os
import re
import secrets
import stat
import struct
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Any, Literal

import xxhash
from mutagen import aiff, flac, id3, mp3, mp4, oggopus, oggvorbis, wave

from tracktiond.audiohash import audio_ranges, iff_chunks, is_ogg, ogg_audio_hash
from tracktiond.formats import SNIFF_BYTES, AudioFormat, id3v2_end, sniff
from tracktiond.tags import (
    ID3V23_FALLBACK,
    TagField,
    TagSystem,
    energy_field,
    lookup,
    write_support,
)

KeyNotation = Literal["standard", "camelot", "openkey"]

__all__ = [
    "FieldChange",
    "KeyNotation",
    "TagValues",
    "TagWriteOptions",
    "TagWriteResult",
    "cleanup_stale_temp_files",
    "format_key",
    "is_temp_name",
    "parse_key",
    "plan_tag_write",
    "write_tags",
]

# --- Inputs and results ------------------------------------------------------------------------

_MODES = {"major": "major", "maj": "major", "minor": "minor", "min": "minor"}


@dataclass(frozen=True)
class TagValues:
    """What tracktiond wants in the file; None means "no value, leave the field alone"."""

    bpm: float | None = None
    key_tonic: str | None = None  # "A", "C#", "Bb"
    key_mode: str | None = None  # "major" / "minor"
    replaygain_track_gain: float | None = None  # dB, to the ReplayGain 2.0 reference (-18 LUFS)
    replaygain_track_peak: float | None = None  # linear sample peak, 1.0 = full scale
    energy: str | None = None  # written only when TagWriteOptions.energy_field names a field

    def __post_init__(self) -> None:
        # Bad values are the caller's bug: refuse them here rather than write nonsense into files.
        if self.bpm is not None and not (_finite(self.bpm) and 0 < self.bpm < 1000):
            raise ValueError(f"bpm must be in (0, 1000), got {self.bpm!r}")
        if (self.key_tonic is None) != (self.key_mode is None):
            raise ValueError("key_tonic and key_mode go together")
        if self.key_tonic is not None and _parse_tonic(self.key_tonic) is None:
            raise ValueError(f"key_tonic {self.key_tonic!r} is not a note name like 'A' or 'C#'")
        if self.key_mode is not None and self.key_mode.strip().lower() not in _MODES:
            raise ValueError(f"key_mode must be 'major' or 'minor', got {self.key_mode!r}")
        gain = self.replaygain_track_gain
        if gain is not None and not (_finite(gain) and -100 < gain < 100):
            raise ValueError(f"replaygain_track_gain must be in (-100, 100) dB, got {gain!r}")
        peak = self.replaygain_track_peak
        if peak is not None and not (_finite(peak) and 0 <= peak < 100):
            raise ValueError(f"replaygain_track_peak must be in [0, 100), got {peak!r}")
        if self.energy is not None and (not self.energy.strip() or "\x00" in self.energy):
            raise ValueError("energy must be non-empty text without NUL characters")


@dataclass(frozen=True)
class TagWriteOptions:
    overwrite: bool = False  # replace values the file already holds (when they differ)
    key_notation: KeyNotation = "standard"
    energy_field: str | None = None  # "MOOD", "ENERGY", ... or None: energy is not written
    new_id3_version: Literal[3, 4] = 4  # for files that have no ID3 tag yet; others keep theirs

    def __post_init__(self) -> None:
        if self.key_notation not in ("standard", "camelot", "openkey"):
            raise ValueError(
                f"key_notation must be standard, camelot or openkey: {self.key_notation!r}"
            )
        if self.new_id3_version not in (3, 4):
            raise ValueError(f"new_id3_version must be 3 or 4, got {self.new_id3_version!r}")
        if self.energy_field is not None:
            energy_field(self.energy_field)  # raises ValueError with the reason


@dataclass
class FieldChange:
    field: str  # our name: bpm, initialkey, replaygain_track_gain/_peak, r128_track_gain, energy
    native: str  # where it lives in this file: "TBPM", "BPM", "----:com.apple.iTunes:initialkey"
    old: str | None  # what the file holds now ("; "-joined when several values), None = absent
    new: str  # what tracktiond writes (or would write, or would have written when kept)


@dataclass
class TagWriteResult:
    path: str
    changes: list[FieldChange] = field(default_factory=list)  # made, or planned in a dry run
    written: bool = False
    skipped_reason: str | None = None  # the file is left alone on purpose (format, hard links)
    error: str | None = None  # the write failed; the original file is untouched
    retryable: bool = False  # the error may go away (file changed meanwhile, disk full)
    kept: list[FieldChange] = field(default_factory=list)  # present values kept (no overwrite)
    warnings: list[str] = field(default_factory=list)  # written, but e.g. owner not preserved
    format: AudioFormat | None = None
    target: str | None = None  # the real file written (differs from path for a symlink)
    # After a write, for the catalog: the new file's stat and its audio identity, computed the
    # way tracktiond.ingest computes ``audio_hash`` (tags excluded).
    audio_hash: str | None = None
    new_size: int | None = None
    new_mtime_ns: int | None = None
    new_ctime_ns: int | None = None
    new_inode: int | None = None
    new_device: int | None = None

    def summary(self) -> str:
        """One human line per change, for logs and `tracktiond tag --dry-run`."""
        lines = [self.path]
        for c in self.changes:
            old = "(absent)" if c.old is None else repr(c.old)
            lines.append(f"  {c.field} [{c.native}]: {old} -> {c.new!r}")
        for c in self.kept:
            lines.append(f"  {c.field} [{c.native}]: kept {c.old!r} (not overwriting)")
        if self.skipped_reason:
            lines.append(f"  skipped: {self.skipped_reason}")
        if self.error:
            lines.append(f"  error: {self.error}")
        lines.extend(f"  warning: {w}" for w in self.warnings)
        if not (self.changes or self.skipped_reason or self.error):
            lines.append("  up to date")
        return "\n".join(lines)


class _Failure(Exception):
    def __init__(self, reason: str, *, retryable: bool = False, skip: bool = False) -> None:
        super().__init__(reason)
        self.reason = reason
        self.retryable = retryable
        self.skip = skip


def _finite(x: float) -> bool:
    return math.isfinite(x)


# --- Key notation --------------------------------------------------------------------------------

_LETTERS = {"C": 0, "D": 2, "E": 4, "F": 5, "G": 7, "A": 9, "B": 11}
_TONIC = re.compile(r"([A-Ga-g])([#♯b♭]?)")
_STANDARD = re.compile(r"([A-Ga-g])([#♯b♭]?)\s*((?i:minor|min|major|maj)|m|M)?")
_CAMELOT = re.compile(r"(1[0-2]|0?[1-9])\s*([AB])", re.IGNORECASE)
_OPENKEY = re.compile(r"(1[0-2]|0?[1-9])\s*([md])", re.IGNORECASE)


def _parse_tonic(text: str) -> tuple[str, int] | None:
    m = _TONIC.fullmatch(text.strip())
    if m is None:
        return None
    accidental = {"♯": "#", "♭": "b"}.get(m[2], m[2])
    pc = (_LETTERS[m[1].upper()] + {"#": 1, "b": -1, "": 0}[accidental]) % 12
    return m[1].upper() + accidental, pc


def _camelot_number(pc: int, minor: bool) -> int:
    # The Camelot wheel steps a fifth (7 semitones) per number; A minor and C major are 8.
    n = (8 + 7 * (pc - 9)) % 12 if minor else (8 + 7 * pc) % 12
    return n or 12


def format_key(tonic: str, mode: str, notation: KeyNotation) -> str:
    """Spell a key in a notation: ("A", "minor") is "Am", "8A" or "1m".

    The tonic keeps the sharp or flat spelling it was given ("Bb" stays "Bb", "A#" stays "A#").
    """
    parsed = _parse_tonic(tonic)
    if parsed is None or mode.strip().lower() not in _MODES:
        raise ValueError(f"not a key: {tonic!r} {mode!r}")
    name, pc = parsed
    minor = _MODES[mode.strip().lower()] == "minor"
    if notation == "standard":
        return name + ("m" if minor else "")
    camelot = _camelot_number(pc, minor)
    if notation == "camelot":
        return f"{camelot}{'A' if minor else 'B'}"
    # Open Key numbers are the Camelot numbers turned by five steps (8A = 1m, 8B = 1d).
    return f"{(camelot + 4) % 12 + 1}{'m' if minor else 'd'}"


def parse_key(text: str) -> tuple[int, str, KeyNotation] | None:
    """(pitch class, "major"/"minor", notation) of a key written in any of the three notations."""
    text = text.strip()
    m = _CAMELOT.fullmatch(text)
    if m is not None:
        n, minor = int(m[1]), m[2].upper() == "A"
        pc = (9 + 7 * (n - 8)) % 12 if minor else (7 * (n - 8)) % 12
        return pc, "minor" if minor else "major", "camelot"
    m = _OPENKEY.fullmatch(text)
    if m is not None:
        camelot = (int(m[1]) + 6) % 12 + 1
        minor = m[2].lower() == "m"
        pc = (9 + 7 * (camelot - 8)) % 12 if minor else (7 * (camelot - 8)) % 12
        return pc, "minor" if minor else "major", "openkey"
    m = _STANDARD.fullmatch(text)
    if m is not None:
        tonic = _parse_tonic(m[1] + m[2])
        mode = m[3] or ""
        if tonic is None:
            return None
        # "m" is minor, but a lone capital "M" is the (rare) major abbreviation.
        minor = mode == "m" or mode.lower() in ("min", "minor")
        return tonic[1], "minor" if minor else "major", "standard"
    return None


# --- Spelling values per format ------------------------------------------------------------------


def _decimal(x: float) -> Decimal:
    # repr() is the shortest text that reads back as the same float, so half-up rounding acts
    # on the decimal value people see (126.5 -> 127), not on binary artefacts or round()'s
    # half-to-even rule (round(126.5) == 126).
    return Decimal(repr(x))


def _bpm_text(bpm: Decimal, integer: bool) -> str:
    if integer:
        return str(int(bpm.quantize(Decimal(1), ROUND_HALF_UP)))
    tenth = bpm.quantize(Decimal("0.1"), ROUND_HALF_UP)
    return str(int(tenth)) if tenth == tenth.to_integral_value() else str(tenth)


def _gain_text(db: Decimal) -> str:
    q = db.quantize(Decimal("0.01"), ROUND_HALF_UP)
    return f"{q + 0:+.2f} dB"  # "+ 0" turns -0.00 into 0.00


def _peak_text(peak: Decimal) -> str:
    return f"{peak.quantize(Decimal('0.000001'), ROUND_HALF_UP):.6f}"


def _r128_text(rg_db: Decimal) -> str:
    # RFC 7845 5.2.1: a Q7.8 fixed-point gain in dB (an integer, 1/256 dB) towards -23 LUFS
    # (EBU R128), applied on top of the header's output gain. ReplayGain 2.0 aims at -18 LUFS, so
    # the R128 gain is 5 dB lower. FFmpeg applies the output gain when decoding, so the analysed
    # loudness already includes it.
    q78 = int(((rg_db - 5) * 256).quantize(Decimal(1), ROUND_HALF_UP))
    return str(max(-32768, min(32767, q78)))


def _number(text: str, unit: str = "") -> Decimal | None:
    text = text.strip()
    if unit and text.lower().endswith(unit):
        text = text[: -len(unit)].strip()
    try:
        value = Decimal(text)
    except InvalidOperation:
        return None
    return value if value.is_finite() else None


_INTEGER_BPM = (TagSystem.ID3, TagSystem.MP4)  # ID3v2's TBPM is an integer string; tmpo an int


def _render(key: str, values: TagValues, options: TagWriteOptions, system: TagSystem) -> str | None:
    if key == "bpm" and values.bpm is not None:
        return _bpm_text(_decimal(values.bpm), system in _INTEGER_BPM)
    if key == "initialkey" and values.key_tonic is not None and values.key_mode is not None:
        return format_key(values.key_tonic, values.key_mode, options.key_notation)
    if key == "replaygain_track_gain" and values.replaygain_track_gain is not None:
        return _gain_text(_decimal(values.replaygain_track_gain))
    if key == "replaygain_track_peak" and values.replaygain_track_peak is not None:
        return _peak_text(_decimal(values.replaygain_track_peak))
    if key == "r128_track_gain" and values.replaygain_track_gain is not None:
        return _r128_text(_decimal(values.replaygain_track_gain))
    if key == "energy" and values.energy is not None:
        return values.energy.strip()
    return None


def _same(key: str, old: list[str], new: str, system: TagSystem) -> bool:
    """Does the file already hold ``new``, spelled in any equivalent way?"""
    if len(old) != 1:
        return False  # several values: writing collapses them to ours
    text = old[0].strip()
    if key == "bpm":
        bpm = _number(text)
        return bpm is not None and bpm > 0 and _bpm_text(bpm, system in _INTEGER_BPM) == new
    if key == "initialkey":
        # The same key in the configured notation; "A minor" and "Am", or "A#m" and "Bbm", are
        # equal, but "8A" is rewritten when the configured notation is standard.
        return parse_key(text) == parse_key(new)
    if key == "replaygain_track_gain":
        gain = _number(text, "db")
        return gain is not None and _gain_text(gain) == new
    if key == "replaygain_track_peak":
        peak = _number(text)
        return peak is not None and _peak_text(peak) == new
    if key == "r128_track_gain":
        return text.lstrip("+") == new
    return text == new


# --- Planning (reads only) -----------------------------------------------------------------------

_OPENERS: dict[AudioFormat, Callable[..., Any]] = {
    AudioFormat.MP3: mp3.MP3,
    AudioFormat.WAV: wave.WAVE,
    AudioFormat.AIFF: aiff.AIFF,
    AudioFormat.FLAC: flac.FLAC,
    AudioFormat.OGG_VORBIS: oggvorbis.OggVorbis,
    AudioFormat.OGG_OPUS: oggopus.OggOpus,
    AudioFormat.MP4: mp4.MP4,
}


@dataclass
class _Plan:
    target: str
    stat: os.stat_result
    fmt: AudioFormat
    system: TagSystem
    id3_version: int | None  # 3 or 4 for ID3 formats
    changes: list[FieldChange]
    kept: list[FieldChange]


def _short(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text if len(text) <= 200 else text[:197] + "..."


def _os_reason(exc: OSError, what: str) -> _Failure:
    if exc.errno == errno.ENOENT:
        return _Failure(f"file vanished ({what})")
    if exc.errno in (errno.EACCES, errno.EPERM):
        return _Failure(f"permission denied ({what})")
    if exc.errno == errno.EROFS:
        return _Failure(f"read-only file system ({what})")
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return _Failure(f"no space left on the device ({what})", retryable=True)
    if exc.errno in (errno.EIO, errno.ESTALE, errno.ETIMEDOUT, errno.EAGAIN):
        return _Failure(f"I/O error ({what}): {exc.strerror}", retryable=True)
    return _Failure(f"cannot {what}: {exc.strerror or exc}")


def _load(path: str, fmt: AudioFormat, system: TagSystem) -> tuple[Any, int | None]:
    """The mutagen object for ``path`` and, for ID3, the tag version to keep (3 or 4)."""
    opener = _OPENERS[fmt]
    try:
        if system is not TagSystem.ID3:
            return opener(path), None
        # load_v1=False: mutagen would otherwise copy ID3v1 fields into the v2 tag on save.
        # translate=False: frames stay as the file has them (no v2.3 <-> v2.4 conversion, no
        # genre or date rewriting, no dropping of frames the version does not define); the tag
        # is saved back in its own version, so only our frames change.
        audio = opener(path, load_v1=False, translate=False)
        version = audio.tags.version[1] if audio.tags is not None else None
        if version == 2:
            raise _Failure("the ID3v2.2 tag cannot be written back as v2.2; not written", skip=True)
        return audio, version
    except _Failure:
        raise
    except OSError as exc:
        raise _os_reason(exc, "reading its tags") from None
    except Exception as exc:  # mutagen raises arbitrary errors on malformed files
        raise _Failure(f"cannot read its tags ({type(exc).__name__}: {_short(exc)})") from None


def _resolve(path: str) -> tuple[str, os.stat_result]:
    # A symlink is written through: the file it points to gets the tags and the link stays a
    # link (the scanner catalogs symlinks by following them, so this is the file it knows).
    target = os.path.realpath(path)
    try:
        st = os.lstat(target)
    except OSError as exc:
        if exc.errno == errno.ENOENT:
            raise _Failure("file does not exist (or is a broken symbolic link)") from None
        raise _os_reason(exc, "stat") from None
    if not stat.S_ISREG(st.st_mode):
        raise _Failure("not a regular file", skip=True)
    if st.st_nlink > 1:
        # Replacing one name of a hard-linked file would split it: the other names would keep
        # the old content without anyone noticing.
        raise _Failure(f"the file has {st.st_nlink} hard links; not written", skip=True)
    return target, st


def _check_writable(target: str, st: os.stat_result) -> None:
    # Write bits are honoured even when running as root: "chmod a-w" is how a user protects a
    # file or folder, and root's access() would ignore it.
    if st.st_mode & 0o222 == 0 or not os.access(target, os.W_OK):
        raise _Failure("the file is read-only")
    directory = os.path.dirname(target)
    try:
        dst = os.stat(directory)
    except OSError as exc:
        raise _os_reason(exc, "stat its directory") from None
    if dst.st_mode & 0o222 == 0 or not os.access(directory, os.W_OK | os.X_OK):
        raise _Failure(
            "its directory is not writable (a safe write puts a temporary copy next to the file)"
        )


def _sniff_path(target: str) -> AudioFormat:
    try:
        with open(target, "rb") as fh:
            head = fh.read(SNIFF_BYTES)
    except OSError as exc:
        raise _os_reason(exc, "reading it") from None
    fmt = sniff(head)
    if fmt is None:
        raise _Failure("not an audio file tracktiond knows", skip=True)
    if fmt is AudioFormat.WAV and head[:4] != b"RIFF":
        raise _Failure("RF64/BW64 WAV files are not written", skip=True)
    return fmt


def _plan(path: str, values: TagValues, options: TagWriteOptions) -> _Plan:
    target, st = _resolve(path)
    fmt = _sniff_path(target)
    support = write_support(fmt)
    if isinstance(support, str):
        raise _Failure(support, skip=True)
    system, fields = support
    specs: list[tuple[str, TagField]] = [(f.key, f) for f in fields]
    if options.energy_field is not None:
        specs.append(("energy", energy_field(options.energy_field)))
    if fmt is AudioFormat.MP4:
        _mp4_check_plain(target)
    audio, version = _load(target, fmt, system)
    id3_version = (version or options.new_id3_version) if system is TagSystem.ID3 else None
    changes: list[FieldChange] = []
    kept: list[FieldChange] = []
    for key, spec in specs:
        new = _render(key, values, options, system)
        native = spec.name_in(system)
        if id3_version == 3:
            native = ID3V23_FALLBACK.get(native, native)
        if new is None or not native:
            continue
        held = lookup(audio.tags, system, native) if audio.tags is not None else []
        # A BPM of 0 is what some taggers write for "unknown" (MP4 tmpo has no empty value).
        present = [v for v in held if v.strip() and not (key == "bpm" and _number(v) == 0)]
        change = FieldChange(key, native, "; ".join(present) if present else None, new)
        if present and not options.overwrite:
            kept.append(change)
        elif not (present and _same(key, present, new, system)):
            changes.append(change)
    return _Plan(target, st, fmt, system, id3_version, changes, kept)


def plan_tag_write(path: str, values: TagValues, options: TagWriteOptions) -> TagWriteResult:
    """What :func:`write_tags` would change in ``path``; reads the file, never writes."""
    result = TagWriteResult(path=path)
    try:
        plan = _plan(path, values, options)
        _describe(result, plan)
        if plan.changes:
            _check_writable(plan.target, plan.stat)  # say now what the write would run into
    except _Failure as f:
        _fail(result, f)
    return result


def _describe(result: TagWriteResult, plan: _Plan) -> None:
    result.format = plan.fmt
    result.target = plan.target
    result.changes = plan.changes
    result.kept = plan.kept


def _fail(result: TagWriteResult, f: _Failure) -> None:
    if f.skip:
        result.skipped_reason = f.reason
    else:
        result.error = f.reason
        result.retryable = f.retryable


# --- Applying tags to the copy -------------------------------------------------------------------


# mutagen's constructors are untyped; named once here so calls stay type-checked elsewhere.
_TXXX: Any = id3.TXXX
_FREEFORM: Any = mp4.MP4FreeForm


def _id3_encoding(text: str, version: int) -> int:
    # Latin-1 is what every reader understands; otherwise UTF-8 where v2.4 allows it, and
    # UTF-16 for v2.3 (which has no UTF-8).
    try:
        text.encode("latin-1")
    except UnicodeEncodeError:
        return 3 if version == 4 else 1
    return 0


def _apply(audio: Any, plan: _Plan) -> None:
    if audio.tags is None:
        audio.add_tags()
    tags = audio.tags
    for change in plan.changes:
        native, text = change.native, change.new
        if plan.system is TagSystem.ID3:
            enc = _id3_encoding(text, plan.id3_version or 4)
            if native.startswith("TXXX:"):
                desc = native[5:]
                same = [f for f in tags.getall("TXXX") if str(f.desc).lower() == desc.lower()]
                desc = str(same[0].desc) if same else desc  # keep the file's spelling
                for frame in same:
                    del tags[frame.HashKey]
                tags.add(_TXXX(encoding=enc, desc=desc, text=[text]))
            else:
                tags.delall(native)
                tags.add(id3.Frames[native](encoding=enc, text=[text]))
        elif plan.system is TagSystem.VORBIS:
            tags[native] = [text]  # replaces the field whatever the case of its name
        elif native == "tmpo":
            tags["tmpo"] = [int(text)]
        else:  # iTunes freeform atom; names are matched case-insensitively, like readers do
            same = [k for k in tags if k.lower() == native.lower()]
            for k in same:
                del tags[k]
            value = _FREEFORM(text.encode("utf-8"), dataformat=mp4.AtomDataType.UTF8)
            tags[same[0] if same else native] = [value]


def _save(audio: Any, plan: _Plan) -> None:
    if plan.system is TagSystem.ID3:
        audio.save(v2_version=plan.id3_version)
    else:
        audio.save()  # mutagen's default padding: reuse the file's padding when the tags fit


# --- Verification --------------------------------------------------------------------------------

_CHUNK = 1 << 20


def _pread_exact(fd: int, n: int, offset: int) -> bytes:
    data = os.pread(fd, n, offset)
    if len(data) != n:
        raise _Failure("unexpected end of file while verifying")
    return data


def _hash_range(h: Any, fd: int, start: int, end: int) -> None:
    pos = start
    while pos < end:
        chunk = _pread_exact(fd, min(_CHUNK, end - pos), pos)
        h.update(chunk)
        pos += len(chunk)


def _catalog_audio_hash(fd: int, fmt: AudioFormat) -> str | None:
    """The audio identity exactly as tracktiond.ingest computes it (None: format not located)."""
    if is_ogg(fmt):
        digest = ogg_audio_hash(f"/proc/self/fd/{fd}")
        return None if digest is None else "a:" + digest
    size = os.fstat(fd).st_size
    ranges = audio_ranges(fd, fmt, os.pread(fd, SNIFF_BYTES, 0), size)
    if ranges is None:
        return None
    h = xxhash.xxh3_128()
    for start, end in ranges:
        _hash_range(h, fd, start, end)
    return "a:" + h.hexdigest()


def _xxh(data: bytes) -> str:
    return str(xxhash.xxh3_128_hexdigest(data))


def _flac_blocks(fd: int) -> list[tuple[int, str]]:
    """Every metadata block but the comments and padding: STREAMINFO, seek table, pictures..."""
    pos = id3v2_end(os.pread(fd, 10, 0))
    if os.pread(fd, 4, pos) != b"fLaC":
        raise _Failure("no FLAC stream marker")
    pos += 4
    blocks = []
    while True:
        header = _pread_exact(fd, 4, pos)
        kind, length = header[0] & 0x7F, int.from_bytes(header[1:4], "big")
        if kind not in (1, 4):
            blocks.append((kind, _xxh(_pread_exact(fd, length, pos + 4))))
        pos += 4 + length
        if header[0] & 0x80:
            return blocks


def _ogg_layout(fd: int, fmt: AudioFormat) -> tuple[list[str], str]:
    """(hashes of the codec header packets except the comments, hash of all pages after them).

    Audio pages are hashed with everything a decoder reads (flags, granule position, serial,
    lacing, body) and without what a tag write legitimately changes (sequence number, CRC).
    The header count is the codec's (Vorbis 3, Opus 2), so a comment packet spanning several
    pages (cover art) is handled. Stricter than the catalog's tracktiond.audiohash.ogg_audio_hash
    (which hashes page bodies only), so a write that disturbed page flags or granules fails.
    """
    needed = 3 if fmt is AudioFormat.OGG_VORBIS else 2
    size = os.fstat(fd).st_size
    packets: list[str] = []
    current = bytearray()
    serial: bytes | None = None
    audio = xxhash.xxh3_128()
    pos = 0
    while pos < size:
        header = _pread_exact(fd, 27, pos)
        if not header.startswith(b"OggS"):
            raise _Failure("Ogg page structure broken")
        lacing = _pread_exact(fd, header[26], pos + 27)
        body_at = pos + 27 + len(lacing)
        body_len = sum(lacing)
        serial = header[14:18] if serial is None else serial
        if len(packets) < needed and header[14:18] == serial:
            body = _pread_exact(fd, body_len, body_at)
            offset = 0
            for i, seg in enumerate(lacing):
                current += body[offset : offset + seg]
                offset += seg
                if seg < 255:
                    packets.append(_xxh(bytes(current)))
                    current.clear()
                    if len(packets) == needed and i != len(lacing) - 1:
                        raise _Failure("audio shares a page with the Ogg headers")
        else:
            audio.update(header[4:18])
            audio.update(lacing)
            _hash_range(audio, fd, body_at, body_at + body_len)
        pos = body_at + body_len
    if len(packets) < needed:
        raise _Failure("incomplete Ogg headers")
    return [p for i, p in enumerate(packets) if i != 1], audio.hexdigest()


def _iff_chunks(fd: int, big_endian: bool) -> list[tuple[bytes, int, str]]:
    """Every chunk but the ID3 one; the audio chunk by size only (its bytes are hashed apart)."""
    form = _pread_exact(fd, 12, 0)
    out: list[tuple[bytes, int, str]] = [(form[8:12], 0, "")]
    for kind, length, start, end in iff_chunks(fd, os.fstat(fd).st_size, big_endian):
        if kind.lower() != b"id3 ":
            content = (
                "" if kind in (b"data", b"SSND") else _xxh(_pread_exact(fd, end - start, start))
            )
            out.append((kind, length, content))
    return out


_MP4_CONTAINERS = {b"trak", b"mdia", b"minf", b"stbl", b"dinf", b"edts"}


def _mp4_atoms(fd: int, start: int, end: int) -> list[tuple[bytes, int, int]]:
    atoms = []
    pos = start
    while pos + 8 <= end:
        header = _pread_exact(fd, 8, pos)
        (length,) = struct.unpack(">I", header[:4])
        body = pos + 8
        if length == 1:
            (length,) = struct.unpack(">Q", _pread_exact(fd, 8, pos + 8))
            body = pos + 16
        elif length == 0:
            length = end - pos
        if length < body - pos or pos + length > end:
            raise _Failure("MP4 atom structure broken")
        atoms.append((header[4:8], body, pos + length))
        pos += length
    return atoms


def _mp4_check_plain(target: str) -> None:
    try:
        fd = os.open(target, os.O_RDONLY | os.O_CLOEXEC)
    except OSError as exc:
        raise _os_reason(exc, "reading it") from None
    try:
        kinds = [kind for kind, _, _ in _mp4_atoms(fd, 0, os.fstat(fd).st_size)]
    except OSError as exc:
        raise _os_reason(exc, "reading it") from None
    finally:
        os.close(fd)
    if b"moof" in kinds:
        raise _Failure("fragmented MP4: its audio cannot be verified after a write", skip=True)


def _mp4_tracks(fd: int) -> list[Any]:
    """Each track's sample tables, with chunk offsets made relative to their ``mdat``.

    A tag write may move the audio (when ``moov`` precedes ``mdat``) and must then shift every
    chunk offset by exactly as much: relative offsets and everything else stay identical.
    """
    top = _mp4_atoms(fd, 0, os.fstat(fd).st_size)
    mdats = [(body, end) for kind, body, end in top if kind == b"mdat"]
    starts = [body for body, _ in mdats]

    def relative(offset: int) -> tuple[int, int]:
        i = bisect.bisect_right(starts, offset) - 1
        if i < 0 or offset >= mdats[i][1]:
            return (-1, offset)
        return (i, offset - starts[i])

    def canon(start: int, end: int) -> list[Any]:
        out: list[Any] = []
        for kind, body, atom_end in _mp4_atoms(fd, start, end):
            if kind in _MP4_CONTAINERS:
                out.append((kind, canon(body, atom_end)))
            elif kind in (b"stco", b"co64"):
                width = 4 if kind == b"stco" else 8
                data = _pread_exact(fd, atom_end - body, body)
                (count,) = struct.unpack(">I", data[4:8])
                raw = struct.unpack(
                    f">{count}{'I' if width == 4 else 'Q'}", data[8 : 8 + count * width]
                )
                out.append((kind, [relative(o) for o in raw]))
            else:
                out.append((kind, _xxh(_pread_exact(fd, atom_end - body, body))))
        return out

    tracks: list[Any] = [len(mdats)]
    for kind, body, end in top:
        if kind != b"moov":
            continue
        for child, child_body, child_end in _mp4_atoms(fd, body, end):
            # moov's udta/meta hold the tags and free atoms the padding: both may change.
            if child == b"trak":
                tracks.append(canon(child_body, child_end))
            elif child == b"mvhd":
                tracks.append(_xxh(_pread_exact(fd, child_end - child_body, child_body)))
    return tracks


def _audio_fingerprint(fd: int, fmt: AudioFormat) -> tuple[str, Any]:
    """(hash of the audio payload, what a decoder needs from the headers): both must be equal
    before and after a write."""
    if is_ogg(fmt):
        headers, pages = _ogg_layout(fd, fmt)  # not the catalog's hash: see _ogg_layout
        return pages, headers
    payload = _catalog_audio_hash(fd, fmt)
    if payload is None:
        raise _Failure("its audio payload cannot be located")
    if fmt is AudioFormat.FLAC:
        return payload, _flac_blocks(fd)
    if fmt is AudioFormat.WAV:
        return payload, _iff_chunks(fd, big_endian=False)
    if fmt is AudioFormat.AIFF:
        return payload, _iff_chunks(fd, big_endian=True)
    if fmt is AudioFormat.MP4:
        return payload, _mp4_tracks(fd)
    return payload, None  # MP3: the payload covers every frame, the Xing/LAME header included


def _frame_fingerprint(frame: Any) -> tuple[Any, ...]:
    # The frame's fields without its text encoding, which mutagen may legitimately change
    # (a UTF-8 frame in a v2.3 tag is saved as UTF-16, as v2.3 requires).
    parts = []
    for spec in [*frame._framespec, *frame._optionalspec]:
        if spec.name == "encoding":
            continue
        value = getattr(frame, spec.name, None)
        parts.append((spec.name, _xxh(value) if isinstance(value, bytes) else repr(value)))
    return tuple(parts)


def _other_tags(audio: Any, system: TagSystem, ours: set[str]) -> Any:
    """Every tag tracktiond does not write, comparable before and after the write."""
    tags = audio.tags
    if tags is None:
        return []
    if system is TagSystem.ID3:
        return sorted(
            (key, _frame_fingerprint(frame))
            for key, frame in tags.items()
            if key.lower() not in ours
        )
    if system is TagSystem.VORBIS:
        return [(k.lower(), v) for k, v in tags if k.lower() not in ours]
    return sorted(
        (k, [_mp4_fingerprint(item) for item in v])
        for k, v in tags.items()
        if k.lower() not in ours
    )


def _mp4_fingerprint(item: Any) -> str:
    # Cover art and freeform atoms are bytes (with a data type): hashed, not spelled out in full.
    if isinstance(item, bytes):
        kind = getattr(item, "imageformat", getattr(item, "dataformat", None))
        return f"{type(item).__name__}:{kind!r}:{_xxh(item)}"
    return repr(item)


def _ours(plan: _Plan) -> set[str]:
    # ID3 frame keys are "TBPM" or "TXXX:DESC"; matched case-insensitively like the readers do.
    return {c.native.lower() for c in plan.changes}


def _verify_tags(before: Any, tmp_path: str, plan: _Plan) -> None:
    after, version = _load(tmp_path, plan.fmt, plan.system)
    if plan.system is TagSystem.ID3 and version != plan.id3_version:
        raise _Failure(f"the ID3 version changed to 2.{version}")
    if getattr(after.info, "length", 0) <= 0:
        raise _Failure("the written file holds no audio")
    for change in plan.changes:
        got = lookup(after.tags, plan.system, change.native) if after.tags is not None else []
        if got != [change.new]:
            raise _Failure(f"{change.native} reads back as {got!r}, not {change.new!r}")
    ours = _ours(plan)
    if _other_tags(before, plan.system, ours) != _other_tags(after, plan.system, ours):
        raise _Failure("the write would have changed other tags")


# --- The safe write ------------------------------------------------------------------------------

_TEMP_NAME = re.compile(r"\..*\.tracktiond-[0-9a-f]{8}\.tmp", re.DOTALL)
_NAME_MAX = 255


def is_temp_name(name: str) -> bool:
    """Is ``name`` one of write_tags' temporary copies? (tracktiond.formats ignores them too.)"""
    return _TEMP_NAME.fullmatch(name) is not None


def _temp_path(target: str) -> str:
    directory, name = os.path.split(target)
    suffix = f".tracktiond-{secrets.token_hex(4)}.tmp"
    while name and len(os.fsencode(f".{name}{suffix}")) > _NAME_MAX:
        name = name[:-1]  # long names are shortened: the temp name must fit NAME_MAX
    return os.path.join(directory, f".{name}{suffix}")


def _copy(src: int, dst: int, size: int) -> None:
    done = 0
    try:
        while done < size:  # in the kernel; a reflink on filesystems that share extents
            n = os.copy_file_range(src, dst, size - done, done, done)
            if n == 0:
                break
            done += n
    except OSError as exc:
        if exc.errno not in (errno.EXDEV, errno.ENOSYS, errno.EINVAL, errno.EOPNOTSUPP):
            raise
    while done < size:
        chunk = os.pread(src, min(_CHUNK, size - done), done)
        if not chunk:
            break
        done += os.pwrite(dst, chunk, done)
    if done != size:
        raise _Failure("the file shrank while it was copied", retryable=True)


def _preserve_attributes(src: int, dst: int, st: os.stat_result, warnings: list[str]) -> None:
    try:
        os.fchown(dst, st.st_uid, st.st_gid)
    except OSError:
        # Only root may give a file away; keep at least the group when we may.
        with contextlib.suppress(OSError):
            os.fchown(dst, -1, st.st_gid)
        now = os.fstat(dst)
        if (now.st_uid, now.st_gid) != (st.st_uid, st.st_gid):
            warnings.append(
                f"owner {st.st_uid}:{st.st_gid} could not be kept (now {now.st_uid}:{now.st_gid})"
            )
    os.fchmod(dst, stat.S_IMODE(st.st_mode))  # after chown, which may clear set-id bits
    try:
        names = os.listxattr(src)
    except OSError:
        names = []
    for name in names:  # ACLs and user.* attributes, best effort
        try:
            os.setxattr(dst, name, os.getxattr(src, name))
        except OSError:
            # security.* (SELinux labels, capabilities) are the kernel's to assign to new files
            if not name.startswith("security."):
                warnings.append(f"extended attribute {name} could not be kept")


def _same_file(a: os.stat_result, b: os.stat_result) -> bool:
    return (a.st_ino, a.st_dev, a.st_size, a.st_mtime_ns) == (
        b.st_ino,
        b.st_dev,
        b.st_size,
        b.st_mtime_ns,
    )


def _fsync_dir(directory: str, warnings: list[str]) -> None:
    try:
        fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError as exc:
        warnings.append(f"directory not synced: {exc.strerror}")
        return
    try:
        os.fsync(fd)
    except OSError as exc:  # some filesystems (FUSE, network) refuse fsync on directories
        if exc.errno not in (errno.EINVAL, errno.EOPNOTSUPP):
            warnings.append(f"directory not synced: {exc.strerror}")
    finally:
        os.close(fd)


def write_tags(path: str, values: TagValues, options: TagWriteOptions) -> TagWriteResult:
    """Write ``values`` into ``path`` safely; see the module docstring. Never raises for a
    problem with the file: the result says what was written, skipped or failed, and why."""
    result = TagWriteResult(path=path)
    try:
        plan = _plan(path, values, options)
        _describe(result, plan)
        if plan.changes:
            _check_writable(plan.target, plan.stat)
            _write(plan, result)
    except _Failure as f:
        _fail(result, f)
    return result


def _write(plan: _Plan, result: TagWriteResult) -> None:
    target, fmt = plan.target, plan.fmt
    try:
        src = os.open(target, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError as exc:
        raise _os_reason(exc, "opening it") from None
    tmp = _temp_path(target)
    dst = -1
    replaced = False
    try:
        before = os.fstat(src)
        if not _same_file(before, plan.stat):
            raise _Failure("the file changed while it was being planned", retryable=True)
        space = os.statvfs(os.path.dirname(target))
        if space.f_bavail * space.f_frsize < before.st_size + (1 << 20):
            raise _Failure("not enough free space for a temporary copy", retryable=True)
        try:
            fingerprint = _audio_fingerprint(src, fmt)
        except (OSError, struct.error, ValueError, IndexError) as exc:
            raise _Failure(f"cannot locate its audio ({type(exc).__name__})") from None
        try:
            dst = os.open(
                tmp, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600
            )
        except OSError as exc:
            raise _os_reason(exc, "creating a temporary copy next to it") from None
        try:
            _copy(src, dst, before.st_size)
        except OSError as exc:
            raise _os_reason(exc, "copying it") from None
        if not _same_file(os.fstat(src), before):
            raise _Failure("the file changed while it was copied", retryable=True)

        audio, _ = _load(tmp, fmt, plan.system)
        # A second, untouched load to compare against: _apply edits `audio` in place.
        reference, _ = _load(tmp, fmt, plan.system)
        id3v1 = _id3v1_tail(src, before.st_size) if fmt is AudioFormat.MP3 else None
        try:
            _apply(audio, plan)
            _save(audio, plan)
        except _Failure:
            raise
        except OSError as exc:
            raise _os_reason(exc, "writing the tags") from None
        except Exception as exc:
            raise _Failure(
                f"mutagen could not write the tags ({type(exc).__name__}: {_short(exc)})"
            ) from None
        if id3v1 is not None:
            _restore_id3v1(dst, id3v1)
        os.fsync(dst)

        _verify_copy(dst, tmp, plan, reference, fingerprint)
        result.audio_hash = _catalog_audio_hash(dst, fmt) if is_ogg(fmt) else fingerprint[0]

        _preserve_attributes(src, dst, before, result.warnings)
        now = os.fstat(dst)
        os.utime(dst, ns=(before.st_atime_ns, now.st_mtime_ns))
        os.fsync(dst)
        _replace(tmp, target, before)
        replaced = True
        result.written = True
        _fsync_dir(os.path.dirname(target), result.warnings)
        final = os.fstat(dst)
        result.new_size, result.new_mtime_ns = final.st_size, final.st_mtime_ns
        result.new_ctime_ns, result.new_inode, result.new_device = (
            final.st_ctime_ns,
            final.st_ino,
            final.st_dev,
        )
    except OSError as exc:
        raise _os_reason(exc, "writing it safely") from None
    finally:
        os.close(src)
        if dst >= 0:
            os.close(dst)
        if not replaced:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)


def _id3v1_tail(fd: int, size: int) -> bytes | None:
    tail = os.pread(fd, 128, size - 128) if size >= 128 else b""
    return tail if tail.startswith(b"TAG") else None


def _restore_id3v1(fd: int, tail: bytes) -> None:
    # mutagen rebuilds an existing ID3v1 tag from the v2 frames; the user's v1 tag is theirs,
    # so its original bytes are put back.
    size = os.fstat(fd).st_size
    if size < 128 or os.pread(fd, 3, size - 128) != b"TAG":
        raise _Failure("the ID3v1 tag was lost")
    os.pwrite(fd, tail, size - 128)


def _verify_copy(
    fd: int, tmp: str, plan: _Plan, reference: Any, fingerprint: tuple[str, Any]
) -> None:
    try:
        if sniff(os.pread(fd, SNIFF_BYTES, 0)) is not plan.fmt:
            raise _Failure("the written file is no longer recognised as the same format")
        _verify_tags(reference, tmp, plan)
        payload, headers = _audio_fingerprint(fd, plan.fmt)
        if payload != fingerprint[0]:
            raise _Failure("the audio payload would have changed")
        if headers != fingerprint[1]:
            raise _Failure("the audio stream headers would have changed")
    except _Failure as f:
        raise _Failure(f"verification failed, original kept: {f.reason}") from None
    except (OSError, struct.error, ValueError, IndexError) as exc:
        raise _Failure(
            f"verification failed, original kept: {type(exc).__name__}: {_short(exc)}"
        ) from None


def _replace(tmp: str, target: str, before: os.stat_result) -> None:
    # Last look before the rename: a file deleted meanwhile must not come back, and a file
    # someone else changed meanwhile must not lose their change. (A change in the instant between
    # this look and the rename cannot be excluded without a lock every other tool would honour.)
    try:
        now = os.lstat(target)
    except FileNotFoundError:
        raise _Failure("the file vanished during the write; nothing written") from None
    if not _same_file(now, before):
        raise _Failure("the file changed during the write; not replaced", retryable=True)
    os.replace(tmp, target)


# --- Leftovers of interrupted writes -------------------------------------------------------------


def cleanup_stale_temp_files(
    directory: str, *, min_age_seconds: float = 3600.0, recursive: bool = False
) -> list[str]:
    """Remove temporary copies left by writes that were killed; return the removed paths.

    Only files named like write_tags' copies and untouched for ``min_age_seconds`` are removed:
    a younger one may belong to a write in progress (another thread, or another tracktiond
    instance sharing the library). Unreadable directories are passed over.
    """
    removed: list[str] = []
    cutoff = time.time() - min_age_seconds
    try:
        entries = list(os.scandir(directory))
    except OSError:
        return removed
    for entry in entries:
        try:
            if recursive and entry.is_dir(follow_symlinks=False):
                removed += cleanup_stale_temp_files(
                    entry.path, min_age_seconds=min_age_seconds, recursive=True
                )
            elif (
                is_temp_name(entry.name)
                and entry.is_file(follow_symlinks=False)
                and entry.stat(follow_symlinks=False).st_mtime <= cutoff
            ):
                os.unlink(entry.path)
                removed.append(entry.path)
        except OSError:
            continue  # vanished or not ours to remove: nothing to clean
    return removed
