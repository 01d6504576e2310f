"""EBU R128 integrated loudness and loudness range over a whole recording, in bounded memory.

essentia's LoudnessEBUR128 measures the momentary (400 ms) and short-term (3 s) loudness of a
buffer at a 100 ms hop, but its integrated value and range only cover the buffer it is given,
and giving it a whole 3-hour file means holding the file in memory. So each analysis window is
measured separately, preceded by the last 3 s of the window before (so the blocks straddling the
boundary are measured whole and the K-filter has settled), each 100 ms block is kept exactly once,
and the gating is done here over the whole recording: 20 floats per second of audio (momentary
plus short-term), about 0.9 MB for 3 hours.

Gating (ITU-R BS.1770-4, EBU Tech 3341): integrated loudness is the mean *energy* of the
momentary blocks above -70 LUFS (absolute gate), then of those above the first mean minus 10 LU
(relative gate). Loudness range (EBU Tech 3342): short-term values above -70 LUFS, then above
their energy mean minus 20 LU; LRA is the spread between their 10th and 95th percentiles.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np

HOP = 4410  # 100 ms at 44.1 kHz: the block hop of BS.1770 gating
MOMENTARY = 4 * HOP  # 400 ms
SHORT_TERM = 30 * HOP  # 3 s
TAIL = SHORT_TERM  # audio carried over from the previous window

ABSOLUTE_GATE = -70.0
RELATIVE_GATE_INTEGRATED = -10.0
RELATIVE_GATE_RANGE = -20.0
SILENT = -70.0  # reported integrated loudness when no block passes the absolute gate

# 10 log10(2): a mono source decoded to two identical channels has twice the energy BS.1770
# assigns to it (a mono programme is measured on its one channel, weight 1).
MONO_AS_STEREO_DB = 10 * math.log10(2)

FloatArray = np.ndarray[Any, np.dtype[np.float64]]
# (stereo buffer of shape (n, 2) float32) -> (momentary LUFS, short-term LUFS), one value per
# block starting at every HOP from the buffer's first sample, full blocks only.
Meter = Callable[[np.ndarray[Any, Any]], tuple[Any, Any]]


def _energy(lufs: FloatArray) -> FloatArray:
    return np.asarray(10.0 ** ((lufs + 0.691) / 10.0), dtype=np.float64)


def _lufs(energy: float) -> float:
    return -0.691 + 10.0 * math.log10(energy) if energy > 0 else -math.inf


def integrated(momentary: FloatArray) -> float:
    """Two-stage gated loudness of 400 ms block loudness values; :data:`SILENT` if none pass."""
    values = momentary[np.isfinite(momentary) & (momentary > ABSOLUTE_GATE)]
    if values.size == 0:
        return SILENT
    energies = _energy(values)
    relative = _lufs(float(energies.mean())) + RELATIVE_GATE_INTEGRATED
    kept = energies[values > relative]
    return max(SILENT, _lufs(float(kept.mean()))) if kept.size else SILENT


def loudness_range(short_term: FloatArray) -> float:
    """EBU Tech 3342 loudness range (LU) of 3 s block loudness values; 0.0 if undefined."""
    values = short_term[np.isfinite(short_term) & (short_term > ABSOLUTE_GATE)]
    if values.size == 0:
        return 0.0
    relative = _lufs(float(_energy(values).mean())) + RELATIVE_GATE_RANGE
    kept = values[values > relative]
    if kept.size == 0:
        return 0.0
    low, high = np.percentile(kept, [10.0, 95.0])
    return float(high - low)


class LoudnessAccumulator:
    """Feed consecutive stereo windows; read the whole recording's figures at the end."""

    def __init__(self, meter: Meter, *, mono_source: bool) -> None:
        self._meter = meter
        self._offset = -MONO_AS_STEREO_DB if mono_source else 0.0
        self._tail: np.ndarray[Any, np.dtype[np.float32]] = np.zeros((0, 2), dtype=np.float32)
        self._momentary: list[FloatArray] = []
        self._short_term: list[FloatArray] = []
        self.peak = 0.0

    def feed(self, stereo: np.ndarray[Any, np.dtype[np.float32]]) -> FloatArray:
        """Measure one window of shape (n, 2); returns the momentary values it contributed.

        Windows must be whole multiples of :data:`HOP` long, except the last, so block starts
        stay on the global 100 ms grid.
        """
        if stereo.size:
            self.peak = max(self.peak, float(np.max(np.abs(stereo))))
        buffer = np.concatenate([self._tail, stereo]) if self._tail.size else stereo
        tail = self._tail.shape[0]
        momentary, short_term = self._meter(np.ascontiguousarray(buffer, dtype=np.float32))
        m = np.asarray(momentary, dtype=np.float64) + self._offset
        s = np.asarray(short_term, dtype=np.float64) + self._offset
        # Keep the blocks that *end* inside this window: the ones ending inside the carried-over
        # tail were kept by the previous window, which held them whole.
        m = m[self._first_new(tail, MOMENTARY) :]
        s = s[self._first_new(tail, SHORT_TERM) :]
        self._momentary.append(m)
        self._short_term.append(s)
        self._tail = np.ascontiguousarray(buffer[-TAIL:])
        return m

    @staticmethod
    def _first_new(tail: int, length: int) -> int:
        # block i spans [i*HOP, i*HOP + length) in the buffer; it is new if it ends after `tail`
        if tail == 0:
            return 0
        return max(0, (tail - length) // HOP + 1)

    def momentary(self) -> FloatArray:
        return np.concatenate(self._momentary) if self._momentary else np.zeros(0)

    def short_term(self) -> FloatArray:
        return np.concatenate(self._short_term) if self._short_term else np.zeros(0)

    def integrated(self) -> float:
        return integrated(self.momentary())

    def loudness_range(self) -> float:
        return loudness_range(self.short_term())
