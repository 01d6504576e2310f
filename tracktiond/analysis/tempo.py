"""Tempo: onset envelopes, per-window decisions combined over windows, range folding, curves.

Per window the engine runs essentia's PercivalBpmEstimator (a beat-period estimator, as fast as
the degara tracker and better on real music in bench/accuracy.py) and hands its tempo, with the
autocorrelations of the onset envelopes computed here, to :mod:`tracktiond.analysis.metre`,
which chooses the metrical level from evidence. This module owns:

* the onset-strength envelopes: half-wave rectified log-magnitude spectral flux in four bands
  (30-200 Hz kick and bass, 200 Hz-1 kHz snare body and chords, 1-4 kHz, 4-16 kHz hats and
  cymbals), from which the bass (first two), full-band and onset-count envelopes are made;
* the onset rate that tells rhythmic windows from beatless ones;
* :func:`combine`: windows vote in a duration- and clarity-weighted histogram (the mode wins,
  then the weighted median of the windows near it); only windows whose level the signal could
  not decide are folded into the configured range first; the confidence; the tempo curve.
"""

from __future__ import annotations

import itertools
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
BASS_SPLIT = 200.0  # kick and bass below, snare body and chords above
BASS_TOP = 1000.0  # the bass envelope of the level decision: 30 Hz - 1 kHz
HIGH_BAND = (4000.0, 16000.0)
HIGH_GROUP = 16
# A window is rhythmic when it has onsets at least this often and its beat period recurs at
# least this clearly; below either it is beatless (tones, drones, pads, silence). Measured:
# noise recurs at < 0.08 (held tones can recur spuriously, but have no onsets); drums under
# a loud detuned pad as little as 0.2.
MIN_ONSET_RATE = 0.8  # per second, in either band; a struck chord left to ring has ~0.7
MIN_CLARITY = 0.1
# A recording without a beat in at least this share of its (non-silent) duration is beatless.
MIN_RHYTHMIC_SHARE = 0.25
ONSET_SPREADS = 4.0
AGREEMENT = 0.04  # Accuracy1 tolerance: windows within 4 % "agree"
STABLE = 0.02  # a curve point within 2 % of the main tempo counts as "at the main tempo"
# Below this confidence a tempo is marked uncertain (result.bpm_uncertain) and not written to
# tags unless the user asks; bench/accuracy.py measures what it separates (docs/analysis.md).
UNCERTAIN_BELOW = 0.5

FloatArray = np.ndarray[Any, np.dtype[np.float64]]


@dataclass(frozen=True)
class Envelopes:
    """One window's onset-strength envelopes, one value per hop, by band."""

    low: FloatArray  # 30-200 Hz
    lowmid: FloatArray  # 200 Hz - 1 kHz
    mid: FloatArray  # 1-4 kHz
    high: FloatArray  # 4-16 kHz, bins summed in groups of HIGH_GROUP first

    @property
    def main(self) -> FloatArray:
        """30 Hz - 4 kHz, where kick, snare, bass and chords are: the onset count's band."""
        return self.low + self.lowmid + self.mid

    def bass(self) -> FloatArray:
        """Kick, snare body and bass (30 Hz - 1 kHz), each band at its own scale."""
        return _unit(self.low) + _unit(self.lowmid)

    def full(self) -> FloatArray:
        """All four bands at equal weight: the envelope for periodicity and clarity."""
        return _unit(self.low) + _unit(self.lowmid) + _unit(self.mid) + _unit(self.high)


def _unit(x: FloatArray) -> FloatArray:
    # Bands differ in level by orders of magnitude (hundreds of bins vs a dozen groups):
    # scaled to mean 1, each band counts the same.
    mean = float(x.mean()) if x.size else 0.0
    return x / mean if mean > 0 else x


def onset_envelopes(mono: np.ndarray[Any, Any]) -> Envelopes:
    """Half-wave rectified log-magnitude spectral flux per band, one value per hop.

    The high band is summed in groups of :data:`HIGH_GROUP` bins first: noise bursts are
    broadband, and it keeps the cost down. Computed in chunks of frames so the FFT matrix stays
    a few MB.
    """
    signal = np.asarray(mono, dtype=np.float32)
    n_frames = (signal.shape[0] - FRAME) // HOP + 1
    if n_frames < 2:
        empty = np.zeros(0)
        return Envelopes(empty, empty, empty, empty)
    freqs = np.fft.rfftfreq(FRAME, 1 / RATE)
    edges = (BAND[0], BASS_SPLIT, BASS_TOP, BAND[1])
    bands = [(freqs >= a) & (freqs < b) for a, b in itertools.pairwise(edges)]
    high = np.flatnonzero((freqs >= HIGH_BAND[0]) & (freqs < HIGH_BAND[1]))
    high = high[: high.size // HIGH_GROUP * HIGH_GROUP]
    window = np.hanning(FRAME).astype(np.float32)
    # log(1 + C|X|) compresses level differences between hits (kick vs snare) without letting
    # the noise floor's random fluctuations dominate as a plain log would.
    outs = [np.empty(n_frames - 1) for _ in range(4)]
    previous: list[np.ndarray[Any, Any]] | None = None
    chunk = 256
    for start in range(0, n_frames, chunk):
        stop = min(n_frames, start + chunk)
        idx = np.arange(FRAME)[None, :] + HOP * np.arange(start, stop)[:, None]
        spectrum = np.abs(np.fft.rfft(signal[idx] * window, axis=1))
        logs = [np.log1p(100.0 * spectrum[:, mask]) for mask in bands]
        grouped = spectrum[:, high].reshape(stop - start, -1, HIGH_GROUP).sum(axis=2)
        logs.append(np.log1p(100.0 * grouped))
        first = start - 1 if previous is not None else 0
        for k, (now, out) in enumerate(zip(logs, outs, strict=True)):
            joined = np.vstack([previous[k], now]) if previous is not None else now
            diff = np.maximum(0.0, np.diff(joined, axis=0)).sum(axis=1)
            out[first : first + diff.shape[0]] = diff
        previous = [x[-1:] for x in logs]
    return Envelopes(*outs)


def onset_envelope(mono: np.ndarray[Any, Any]) -> FloatArray:
    """The 30 Hz - 4 kHz envelope of :func:`onset_envelopes`."""
    return onset_envelopes(mono).main


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
    evidenced: bool = False  # the signal decided the metrical level (metre.LevelDecision)
    agrees: bool = False  # the tracker's own tempo is this tempo or an octave of it
    moved: bool = False  # the level was moved an octave (or more) away from the tracker's


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

    @property
    def uncertain(self) -> bool:
        return self.bpm is not None and self.confidence < UNCERTAIN_BELOW


def _align(bpm: float, reference: float) -> float:
    """The octave multiple of ``bpm`` closest to ``reference`` (for curve points)."""
    return bpm * 2.0 ** round(math.log2(reference / bpm))


def _placed(w: WindowTempo, low: float, high: float) -> float:
    """A window's tempo as it votes: as decided when the signal decided its level, otherwise
    folded into the configured range (the last resort)."""
    assert w.bpm is not None
    return w.bpm if w.evidenced else fold(w.bpm, low, high)


def window_quality(w: WindowTempo) -> float:
    """0..1: how much one window's tempo can be trusted, from its own evidence.

    A clear pulse (full-band recurrence at the beat period), a level the bass band decided
    rather than one kept by default, and a tracker that found this very tempo (not an octave of
    it, and not 3/2 or 2/3 of it) each raise it. Overruling the tracker is often right (that is
    the point of the level decision) but it is where the remaining errors are, so it costs. A
    tempo prior was tried as a fourth factor and left out: it rewards the trackers' own bias
    towards 80-160 BPM, which is the error it should catch (a 174 BPM pattern read as 87).
    """
    pulse = 0.3 + 0.7 * min(1.0, w.clarity / 0.5)
    # An undecided level is the tracker's, and trackers' level errors are the commonest tempo
    # errors; on noisy drums (bench/accuracy.py) they were nearly all of them.
    level = 1.0 if w.evidenced else 0.6
    tracker = 0.7 if not w.agrees else 0.85 if w.moved else 1.0
    return pulse * level * tracker


def _class_votes(values: FloatArray, weights: FloatArray) -> float:
    """The winning tempo class (log2 tempo modulo one octave), from a circular histogram in
    1 % bins smoothed by ±2 bins (the 4 % tolerance)."""
    width = math.log2(1.01)
    n = round(1.0 / width)
    bins = np.round((np.log2(values) % 1.0) / width).astype(np.int64) % n
    votes = np.zeros(n)
    for b, weight in zip(bins.tolist(), weights.tolist(), strict=True):
        for d in range(-2, 3):
            votes[(b + d) % n] += weight * (1.0 - abs(d) / 3.0)
    return float(int(np.argmax(votes)) * width)


def combine(
    windows: Sequence[WindowTempo], low: float, high: float, *, long_recording: bool
) -> Tempo:
    sounding = [w for w in windows if not w.silent]
    total = sum(w.duration for w in sounding)
    rhythmic = [w for w in sounding if w.bpm is not None]
    rhythmic_time = sum(w.duration for w in rhythmic)
    if not rhythmic or total <= 0 or rhythmic_time < MIN_RHYTHMIC_SHARE * total:
        return Tempo(None, 0.0, True, [], None, None, None, False)

    placed = np.array([_placed(w, low, high) for w in rhythmic])
    weights = np.array([w.duration * max(w.clarity, 1e-3) for w in rhythmic])
    # 1. The tempo class (which tempo, up to octaves) by a vote of all rhythmic windows.
    cls = _class_votes(placed, weights)
    offset = (np.log2(placed) - cls + 0.5) % 1.0 - 0.5  # signed distance to the class, octaves
    in_class = np.abs(offset) <= math.log2(1.0 + AGREEMENT)
    octave = np.round(np.log2(placed) - cls - offset).astype(np.int64)
    # 2. The level within the class: the octave with the most support, windows whose level
    # the signal decided counting double.
    support: dict[int, float] = {}
    for k, ok, weight, w in zip(octave.tolist(), in_class.tolist(), weights, rhythmic, strict=True):
        if ok:
            support[k] = support.get(k, 0.0) + float(weight) * (2.0 if w.evidenced else 1.0)
    level = max(support, key=lambda k: support[k])
    # Every window of the class votes for the tempo itself, moved to the chosen octave.
    moved = placed * 2.0 ** (level - octave).astype(np.float64)
    bpm = _weighted_median(moved[in_class], weights[in_class])
    evidenced_share = sum(
        float(wt)
        for wt, ok, w in zip(weights, in_class.tolist(), rhythmic, strict=True)
        if ok and w.evidenced
    ) / float(weights[in_class].sum())
    if evidenced_share < 0.5:
        bpm = fold(bpm, low, high)

    # Confidence: the share of the sounding audio in this tempo class, the share of the class's
    # support at the chosen level, and the windows' own quality (window_quality).
    members = [w for w, ok in zip(rhythmic, in_class.tolist(), strict=True) if ok]
    class_time = sum(w.duration for w in members)
    quality = sum(w.duration * window_quality(w) for w in members) / class_time
    level_share = support[level] / sum(support.values())
    confidence = min(1.0, (class_time / total) * level_share * quality)

    if not long_recording:
        return Tempo(round(bpm, 1), confidence, False, [], None, None, None, False)

    # The curve: each window's tempo at the octave nearest the recent curve (continuity: a
    # window read at half time does not show as a jump), starting from the main tempo.
    curve: list[tuple[float, float]] = []
    for w, value in zip(rhythmic, placed.tolist(), strict=True):
        recent = [b for _, b in curve[-3:]]
        reference = float(np.median(recent)) if recent else bpm
        curve.append((w.start, round(_align(value, reference), 1)))
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
