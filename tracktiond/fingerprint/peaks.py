"""The spectral peaks of a log-frequency spectrogram, picked from a stream of frame chunks.

A peak is a point that is the maximum of its neighbourhood (``time_radius`` frames either side,
``freq_radius`` bins either side), stands ``prominence_db`` above the mean of a wider
neighbourhood (so a flat or slowly varying spectrum, silence included, gives none) and above an
absolute floor. Its frequency is refined between bins with a parabola through its neighbours: the
pitch offset of a match is measured from these, and a resampled track's peaks land between bins.

Streaming: only ``2 * time_radius`` frames are carried between chunks, so peaks come out a few
frames late and memory does not grow with the recording.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import ndimage

from tracktiond.fingerprint.spectrum import F32

I32 = np.ndarray[Any, np.dtype[np.int32]]
_SILENT_DB = -200.0


@dataclass(frozen=True)
class PeakSettings:
    time_radius: int = 6  # frames (16 ms): a peak rules ~0.2 s
    freq_radius: int = 5  # bins (quarter tones): and a major third either side
    mean_time_radius: int = 16
    mean_freq_radius: int = 12
    prominence_db: float = 8.0
    floor_db: float = -70.0


@dataclass(frozen=True)
class Peaks:
    """Peaks sorted by frame: ``t`` (frame), ``f`` (fractional log bin), ``level`` (dB)."""

    t: I32
    f: F32
    level: F32

    @staticmethod
    def empty() -> Peaks:
        return Peaks(np.zeros(0, np.int32), np.zeros(0, np.float32), np.zeros(0, np.float32))

    @staticmethod
    def concat(parts: Iterable[Peaks]) -> Peaks:
        items = list(parts)
        if not items:
            return Peaks.empty()
        return Peaks(
            np.concatenate([p.t for p in items]),
            np.concatenate([p.f for p in items]),
            np.concatenate([p.level for p in items]),
        )

    def __len__(self) -> int:
        return int(self.t.size)


class PeakPicker:
    """Feed frame chunks in order; each call returns the peaks that are now final."""

    def __init__(self, n_bins: int, settings: PeakSettings | None = None) -> None:
        self.settings = s = settings or PeakSettings()
        self._ctx = max(s.time_radius, s.mean_time_radius)
        self._buffer = np.zeros((0, n_bins), dtype=np.float32)
        self._base = -self._ctx  # absolute frame number of the buffer's first row

    def feed(self, frames: F32) -> Peaks:
        if frames.shape[0] == 0:
            return Peaks.empty()
        if self._base == -self._ctx and self._buffer.shape[0] == 0:
            # Before the first frame, the first frame again (not silence: against silence the
            # opening frame would stand out everywhere and give a burst of false peaks).
            self._buffer = np.repeat(frames[:1], self._ctx, axis=0)
        self._buffer = np.concatenate([self._buffer, frames])
        return self._pick(final=False)

    def finish(self) -> Peaks:
        if self._buffer.shape[0] == 0:
            return Peaks.empty()
        pad = np.repeat(self._buffer[-1:], self._ctx, axis=0)  # likewise after the last
        self._buffer = np.concatenate([self._buffer, pad])
        return self._pick(final=True)

    def _pick(self, *, final: bool) -> Peaks:
        s, ctx, buf = self.settings, self._ctx, self._buffer
        if buf.shape[0] <= 2 * ctx:
            return Peaks.empty()
        local_max = ndimage.maximum_filter(
            buf,
            size=(2 * s.time_radius + 1, 2 * s.freq_radius + 1),
            mode="constant",
            cval=_SILENT_DB,
        )
        mean = ndimage.uniform_filter(
            buf, size=(2 * s.mean_time_radius + 1, 2 * s.mean_freq_radius + 1), mode="nearest"
        )
        ok = (buf >= local_max) & (buf >= mean + s.prominence_db) & (buf > s.floor_db)
        # Rows whose neighbourhood is complete: all but the last ctx (unless nothing follows).
        ok[:ctx] = False
        ok[buf.shape[0] - ctx :] = False
        rows, cols = np.nonzero(ok)
        f = cols.astype(np.float32)
        inner = (cols > 0) & (cols < buf.shape[1] - 1)
        r, c = rows[inner], cols[inner]
        left, mid, right = buf[r, c - 1], buf[r, c], buf[r, c + 1]
        denom = left - 2 * mid + right
        shift = np.where(denom < 0, 0.5 * (left - right) / np.where(denom < 0, denom, -1), 0.0)
        f[inner] += np.clip(shift, -0.5, 0.5).astype(np.float32)
        out = Peaks((rows + self._base).astype(np.int32), f, buf[rows, cols].astype(np.float32))
        # Keep 2 ctx rows: ctx of context before the first row not yet decided, and those rows.
        keep = buf.shape[0] - 2 * ctx
        if not final:
            self._buffer = buf[keep:]
            self._base += keep
        return out


def peaks_of(
    frames: Iterable[F32], n_bins: int, settings: PeakSettings | None = None
) -> Iterator[Peaks]:
    """The peaks of a stream of spectrogram chunks, in time order."""
    picker = PeakPicker(n_bins, settings)
    for chunk in frames:
        found = picker.feed(chunk)
        if len(found):
            yield found
    last = picker.finish()
    if len(last):
        yield last
