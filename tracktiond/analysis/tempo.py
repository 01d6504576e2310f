"""Tempo: metrical-level choice per window, combination over windows, range folding, curves.

The per-window beat tracker (essentia's RhythmExtractor2013, degara method, run by the engine)
finds the beat period reliably but, like every tracker, prefers tempi around 80-160 BPM: a
60 BPM groove comes out as 120, a 180 BPM one as 90. Octave errors dominate tempo errors, so the
level is chosen separately here, from the signal:

* an onset-strength envelope is computed from the spectral flux of the band where kick, snare,
  bass and chords live (30 Hz - 4 kHz; hats and cymbals, which subdivide the beat, are mostly
  above it);
* its normalised autocorrelation r(lag) says how strongly events recur at each period;
* among the octave-related candidates (tracker BPM x 1/2, 1, 2), the chosen level is the
  *fastest* one whose period recurs at least :data:`LEVEL_RATIO` as strongly as the period twice
  as long. On a backbeat (kick on 1 and 3, snare on 2 and 4) every beat has a low-band hit, so
  the beat period recurs about as strongly as the bar half; a half-beat subdivision played by
  hats does not recur in this band, so the level stops at the beat.

Measured on the generated test set (3 kits x 20 tempi, 60-196 BPM): wrong faster levels reach a
ratio of at most 0.54, correct levels at least 0.73.

Windows are then combined with a duration- and clarity-weighted histogram (the mode wins, then
the weighted median of the windows near it), and the result is folded into the preferred range.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

RATE = 44100
FRAME = 2048
HOP = 512
FPS = RATE / HOP
BAND = (30.0, 4000.0)
HIGH_BAND = (4000.0, 16000.0)
HIGH_GROUP = 16
LEVEL_RATIO = 0.62
# A window is rhythmic when it has onsets at least this often and its beat period recurs at
# least this clearly; below either it is beatless (tones, drones, pads, silence). Measured:
# noise recurs at < 0.08 (held tones can recur spuriously, but have no onsets); drums under
# a loud detuned pad as little as 0.2.
MIN_ONSET_RATE = 0.8  # per second, in either band; a struck chord left to ring has ~0.7
MIN_CLARITY = 0.1
MIN_BEATS_FOR_TEMPO = 4
# A recording without a beat in at least this share of its (non-silent) duration is beatless.
MIN_RHYTHMIC_SHARE = 0.25
ONSET_SPREADS = 4.0
AGREEMENT = 0.04  # Accuracy1 tolerance: windows within 4 % "agree"
STABLE = 0.02  # a curve point within 2 % of the main tempo counts as "at the main tempo"

FloatArray = np.ndarray[Any, np.dtype[np.float64]]


def onset_envelopes(mono: np.ndarray[Any, Any]) -> tuple[FloatArray, FloatArray]:
    """Half-wave rectified log-magnitude spectral flux, one value per hop, in two bands.

    The first covers :data:`BAND` (kick, snare, bass, chords) and drives the tempo; the second
    :data:`HIGH_BAND` (hats, cymbals, snare noise), where sustained pads and held chords have
    little energy, so percussion under a loud pad still shows as onsets there. The high band is
    summed in groups of :data:`HIGH_GROUP` bins first: noise bursts are broadband, and it keeps
    the cost down. Computed in chunks of frames so the FFT matrix stays a few MB.
    """
    signal = np.asarray(mono, dtype=np.float32)
    n_frames = (signal.shape[0] - FRAME) // HOP + 1
    if n_frames < 2:
        return np.zeros(0), np.zeros(0)
    freqs = np.fft.rfftfreq(FRAME, 1 / RATE)
    band = (freqs >= BAND[0]) & (freqs < BAND[1])
    high = np.flatnonzero((freqs >= HIGH_BAND[0]) & (freqs < HIGH_BAND[1]))
    high = high[: high.size // HIGH_GROUP * HIGH_GROUP]
    window = np.hanning(FRAME).astype(np.float32)
    # log(1 + C|X|) compresses level differences between hits (kick vs snare) without letting
    # the noise floor's random fluctuations dominate as a plain log would.
    main = np.empty(n_frames - 1)
    upper = np.empty(n_frames - 1)
    previous: tuple[np.ndarray[Any, Any], np.ndarray[Any, Any]] | None = None
    chunk = 256
    for start in range(0, n_frames, chunk):
        stop = min(n_frames, start + chunk)
        idx = np.arange(FRAME)[None, :] + HOP * np.arange(start, stop)[:, None]
        spectrum = np.abs(np.fft.rfft(signal[idx] * window, axis=1))
        logs = np.log1p(100.0 * spectrum[:, band])
        grouped = spectrum[:, high].reshape(stop - start, -1, HIGH_GROUP).sum(axis=2)
        high_logs = np.log1p(100.0 * grouped)
        first = start - 1 if previous is not None else 0
        for logs_now, prev, out in (
            (logs, previous[0] if previous else None, main),
            (high_logs, previous[1] if previous else None, upper),
        ):
            joined = np.vstack([prev, logs_now]) if prev is not None else logs_now
            diff = np.maximum(0.0, np.diff(joined, axis=0)).sum(axis=1)
            out[first : first + diff.shape[0]] = diff
        previous = (logs[-1:], high_logs[-1:])
    return main, upper


def onset_envelope(mono: np.ndarray[Any, Any]) -> FloatArray:
    """The :data:`BAND` envelope of :func:`onset_envelopes`."""
    return onset_envelopes(mono)[0]


def autocorrelation(envelope: FloatArray) -> FloatArray:
    """Normalised autocorrelation (r[0] == 1) of the mean-removed envelope; zeros if flat."""
    x = envelope - envelope.mean() if envelope.size else envelope
    n = x.shape[0]
    if n == 0:
        return np.zeros(1)
    spectrum = np.fft.rfft(x, 2 * n)
    r = np.fft.irfft(np.abs(spectrum) ** 2)[:n]
    if not r[0] > 0:
        return np.zeros(n)
    return np.asarray(r / r[0], dtype=np.float64)


def recurrence(r: FloatArray, bpm: float) -> float:
    """r at the beat period of ``bpm``, allowing ±1 hop for rounding and slight drift."""
    lag = 60.0 / bpm * FPS
    i = round(lag)
    if i < 1 or i + 2 > r.shape[0]:
        return 0.0
    return float(np.max(r[max(1, i - 1) : i + 2]))


def choose_level(bpm: float, r: FloatArray) -> tuple[float, float]:
    """(tempo at the chosen metrical level, its recurrence strength, i.e. pulse clarity)."""
    candidates = [bpm * 2.0, bpm, bpm / 2.0]
    for candidate in candidates:
        here = recurrence(r, candidate)
        slower = recurrence(r, candidate / 2.0)
        if here >= MIN_CLARITY and here >= LEVEL_RATIO * slower:
            return candidate, here
    return bpm, recurrence(r, bpm)


def onset_rate(envelope: FloatArray) -> float:
    """Onsets per second: envelope peaks standing clearly above the window's typical level."""
    if envelope.size < 3:
        return 0.0
    # An onset is an outlier above the window's typical flux. The spread is measured on the
    # lower side (median - 10th percentile), which hits never reach, so dense hats cannot inflate
    # it; sustained pads and noise raise the median but not the outliers. The floor keeps a
    # steady tone's numerical noise out.
    median = float(np.median(envelope))
    spread = median - float(np.percentile(envelope, 10))
    threshold = max(median + ONSET_SPREADS * spread, 2.0)
    mid = envelope[1:-1]
    peaks = (mid > threshold) & (mid >= envelope[:-2]) & (mid > envelope[2:])
    # Merge peaks closer than 50 ms: one drum hit can spread over two hops.
    positions = np.flatnonzero(peaks)
    if positions.size == 0:
        return 0.0
    kept = 1 + int(np.count_nonzero(np.diff(positions) > 0.05 * FPS))
    return kept / (envelope.size / FPS)


def fold(bpm: float, low: float, high: float) -> float:
    """Fold ``bpm`` by octaves into [low, high).

    A range at least an octave wide only moves values outside it (so both 85 and 170 stay put in
    70-180). For a narrower range, the octave multiple nearest to the range (in log distance) is
    taken, which may lie just outside it.
    """
    if bpm <= 0 or not math.isfinite(bpm):
        return bpm
    if high >= 2 * low:
        while bpm < low:
            bpm *= 2.0
        while bpm >= high:
            bpm /= 2.0
        return bpm
    centre = math.sqrt(low * high)
    octave = round(math.log2(centre / bpm))
    return bpm * 2.0**octave


@dataclass
class WindowTempo:
    start: float
    duration: float
    bpm: float | None  # at the chosen level, not yet folded; None when beatless
    clarity: float  # recurrence of the beat period, 0..1
    onset_rate: float
    silent: bool


@dataclass
class Tempo:
    bpm: float | None
    confidence: float
    beatless: bool
    curve: list[tuple[float, float]]
    bpm_start: float | None
    bpm_end: float | None
    stability: float | None
    variable: bool


def _align(bpm: float, reference: float) -> float:
    """The octave multiple of ``bpm`` closest to ``reference`` (for curve points)."""
    return bpm * 2.0 ** round(math.log2(reference / bpm))


def combine(
    windows: Sequence[WindowTempo], low: float, high: float, *, long_recording: bool
) -> Tempo:
    sounding = [w for w in windows if not w.silent]
    total = sum(w.duration for w in sounding)
    rhythmic = [w for w in sounding if w.bpm is not None]
    rhythmic_time = sum(w.duration for w in rhythmic)
    if not rhythmic or total <= 0 or rhythmic_time < MIN_RHYTHMIC_SHARE * total:
        return Tempo(None, 0.0, True, [], None, None, None, False)

    folded = [fold(w.bpm, low, high) for w in rhythmic if w.bpm is not None]
    weights = np.array([w.duration * max(w.clarity, 1e-3) for w in rhythmic])
    logs = np.log2(np.array(folded))
    # Histogram in 1 % bins of log tempo, smoothed by ±2 bins (the 4 % tolerance), so windows a
    # little apart still vote together.
    width = math.log2(1.01)
    bins = np.round(logs / width).astype(np.int64)
    votes: dict[int, float] = {}
    for b, weight in zip(bins.tolist(), weights.tolist(), strict=True):
        for d in range(-2, 3):
            votes[b + d] = votes.get(b + d, 0.0) + weight * (1.0 - abs(d) / 3.0)
    mode = 2.0 ** (max(votes, key=lambda k: votes[k]) * width)
    near = np.abs(np.array(folded) / mode - 1.0) <= AGREEMENT
    bpm = _weighted_median(np.array(folded)[near], weights[near])
    bpm = fold(bpm, low, high)

    agreeing = [w for w, ok in zip(rhythmic, near.tolist(), strict=True) if ok]
    agree_time = sum(w.duration for w in agreeing)
    clarity = sum(w.duration * w.clarity for w in agreeing) / agree_time
    # Confidence: how much of the sounding audio supports this tempo, times how clearly.
    confidence = min(1.0, (agree_time / total) * min(1.0, clarity / 0.6))

    if not long_recording:
        return Tempo(round(bpm, 1), confidence, False, [], None, None, None, False)

    curve = [
        (w.start, round(_align(fold(w.bpm, low, high), bpm), 1))
        for w in rhythmic
        if w.bpm is not None
    ]
    values = np.array([b for _, b in curve])
    edge = max(1, min(4, len(curve) // 4))  # the first / last ~2 minutes of the curve
    bpm_start = round(float(np.median(values[:edge])), 1)
    bpm_end = round(float(np.median(values[-edge:])), 1)
    stability = float(np.mean(np.abs(values / bpm - 1.0) <= STABLE))
    low_p, high_p = np.percentile(values, [10.0, 90.0])
    variable = bool((high_p - low_p) / bpm > AGREEMENT)
    return Tempo(
        round(bpm, 1), confidence, False, curve, bpm_start, bpm_end, round(stability, 3), variable
    )


def _weighted_median(values: FloatArray, weights: FloatArray) -> float:
    order = np.argsort(values)
    cumulative = np.cumsum(weights[order])
    index = int(np.searchsorted(cumulative, cumulative[-1] / 2.0))
    return float(values[order][min(index, values.size - 1)])
