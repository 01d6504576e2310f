"""What goes in and what comes out of a tag write: the values and options (refused when
invalid), the plan of one file's changes, the result, and the failure that ends in one."""

from __future__ import annotations

import errno
import math
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

from tracktiond.media.formats import AudioFormat
from tracktiond.media.keys import NOTATIONS, Notation, parse_mode, pitch_class
from tracktiond.media.tags import TagSystem, energy_field


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
        if self.key_tonic is not None and not _parses(pitch_class, self.key_tonic):
            raise ValueError(f"key_tonic {self.key_tonic!r} is not a note name like 'A' or 'C#'")
        if self.key_mode is not None and not _parses(parse_mode, self.key_mode):
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
    key_notation: Notation = "standard"
    energy_field: str | None = None  # "MOOD", "ENERGY", ... or None: energy is not written
    new_id3_version: Literal[3, 4] = 4  # for files that have no ID3 tag yet; others keep theirs
    # Also write a BPM the analysis marked uncertain (bpm_uncertain); by default such a tempo
    # is left out of the tags, since a wrong BPM in a DJ's tags is worse than none.
    uncertain_bpm: bool = False

    def __post_init__(self) -> None:
        if self.key_notation not in NOTATIONS:
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
    # way tracktiond.media.probe computes ``audio_hash`` (tags excluded).
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


def _parses(parse: Callable[[str], object], text: str) -> bool:
    try:
        parse(text)
    except ValueError:
        return False
    return True


@dataclass
class _Plan:
    target: str
    stat: os.stat_result
    fmt: AudioFormat
    system: TagSystem
    id3_version: int | None  # 3 or 4 for ID3 formats
    changes: list[FieldChange]
    kept: list[FieldChange]


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


def _fail(result: TagWriteResult, f: _Failure) -> None:
    if f.skip:
        result.skipped_reason = f.reason
    else:
        result.error = f.reason
        result.retryable = f.retryable
