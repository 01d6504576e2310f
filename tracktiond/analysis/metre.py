"""Metrical level: which of a beat tracker's related tempi is the beat, decided by evidence.

Every beat tracker finds *a* periodicity reliably and the *right one* less so: it prefers
80-160 BPM, so a 60 BPM groove comes out at 120, a 190 BPM one at 95, a waltz at its bar rate,
and a shuffle at 3/2 or 2/3 of its beat. Here the tracker's tempo is only the starting point;
the level is chosen from the window's own onset envelopes in two steps:

1. **Family** (x1, x3/2, x2/3): the tempo whose octave family best explains the periodicity of
   the full-band onset envelope (a comb of its first four beat multiples) wins, and it must beat
   the tracker's by :data:`FAMILY_MARGIN` to replace it.
2. **Level** (x4, x3, x2, x1, x1/2): the fastest level at which the *bass band* (30 Hz-1 kHz:
   kick, snare body, bass) recurs at least :data:`FASTER_RATIO` as strongly as at the level below,
   and at least :data:`FASTER_STRENGTH` in absolute terms, is the beat: on a real beat every
   beat carries a low-band hit (kick or snare), while hats, which subdivide the beat, have no
   energy there. Half the tempo is taken only when the bass band recurs strongly at the slower
   level (at least :data:`SLOWER_STRENGTH`), more weakly at this one (below
   :data:`SLOWER_RATIO` of it) and, folded onto pairs of beats, clearly skips every other beat
   (:func:`evenness` below :data:`SKIP_EVENNESS`): the phase-aware test settles breakbeats,
   whose off-beat kick pushes make the autocorrelation alone ambiguous.

When the bass band is too weak to say anything (much real music: acoustic guitars, strings,
voices), the family's tempo is kept as the tracker found it, and the decision is marked
``evidenced=False``; only those windows are ever folded into the configured tempo range
(:func:`tracktiond.analysis.tempo.combine`), which is therefore the last resort, not the rule.

The thresholds sit in the middle of wide plateaus found on generated drum patterns (seven kits,
60-200 BPM) and the real annotated excerpts of ``bench/accuracy.py`` (docs/analysis.md).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

FPS = 44100 / 512  # onset-envelope frames per second (tempo.HOP at 44.1 kHz)
# The span a beat is felt in (tapping studies put the slowest beat near 1 per second): a level
# below MIN_BPM is never chosen, which also keeps half-time grooves at 60-110 BPM at their
# hats' tempo instead of a 30-55 BPM "beat".
MIN_BPM = 55.0
MAX_BPM = 230.0
FAMILY_MARGIN = 1.05
FAMILY_RATIOS = (1.5, 1 / 1.5)
COMB_TERMS = 4
FASTER_RATIO = 0.62
FASTER_STRENGTH = 0.3
SLOWER_STRENGTH = 0.33
SLOWER_RATIO = 0.6
SKIP_EVENNESS = 0.4
AGREEMENT = 0.04

FloatArray = np.ndarray[Any, np.dtype[np.float64]]


def recurrence(r: FloatArray, bpm: float) -> float:
    """r at the beat period of ``bpm``, allowing ±1 frame for rounding and slight drift."""
    if not bpm > 0:
        return 0.0
    lag = 60.0 / bpm * FPS
    i = round(lag)
    if i < 1 or i + 2 > r.shape[0]:
        return 0.0
    return float(np.max(r[max(1, i - 1) : i + 2]))


def comb(r: FloatArray, bpm: float, terms: int = COMB_TERMS) -> float:
    """Mean recurrence at 1..``terms`` beat periods: how well ``bpm`` explains the envelope."""
    return float(np.mean([recurrence(r, bpm / k) for k in range(1, terms + 1)]))


def evenness(envelope: FloatArray, bpm: float, beats: int = 2) -> float:
    """How evenly ``envelope`` marks consecutive beats at ``bpm``, 0..1.

    The envelope is folded onto a cycle of ``beats`` beats (mean per phase bin, median
    removed); the strongest phase is taken as a beat, and the result is the weakest of the
    other beats' peaks relative to it: about 1 when every beat has its hit, near 0 when the
    bass plays only every other beat (the level is then half this tempo).
    """
    if not bpm > 0 or envelope.size < 2:
        return 1.0
    period = 60.0 / bpm * FPS * beats
    bins = max(beats, round(period))
    phase = ((np.arange(envelope.size) % period) / period * bins).astype(np.int64) % bins
    counts = np.bincount(phase, minlength=bins)
    cycle = np.bincount(phase, weights=envelope, minlength=bins) / np.maximum(counts, 1)
    cycle = cycle - np.median(cycle)
    width = max(1, bins // (8 * beats))  # ±1/8 beat for timing spread and rounding

    def peak(at: int) -> float:
        return float(max(cycle[(at + d) % bins] for d in range(-width, width + 1)))

    top_at = int(np.argmax(cycle))
    top = peak(top_at)
    if not top > 0:
        return 1.0
    others = [max(0.0, peak(top_at + j * bins // beats)) for j in range(1, beats)]
    return min(others) / top


def family_score(r_full: FloatArray, bpm: float) -> float:
    """The best comb over the octave family of ``bpm`` (the level is decided separately)."""
    return max(comb(r_full, bpm * m) for m in (0.5, 1.0, 2.0))


@dataclass(frozen=True)
class LevelDecision:
    bpm: float  # the chosen beat tempo
    evidenced: bool  # the bass band decided the level (False: the tracker's level was kept)
    clarity: float  # full-band recurrence at the chosen beat period, 0..1
    margin: float  # how decisively the level won: bass recurrence here / at the rival level
    agrees: bool  # the tracker's own tempo is this tempo or an octave of it
    moved: bool = False  # ... an octave of it: the level was changed against the tracker


def same_family(a: float, b: float) -> bool:
    """``a`` is ``b`` or an octave of it, within :data:`AGREEMENT`."""
    if not (a > 0 and b > 0):
        return False
    ratio = a / b
    return any(abs(ratio / m - 1.0) <= AGREEMENT for m in (0.25, 0.5, 1.0, 2.0, 4.0))


def decide(
    tracker_bpm: float, r_bass: FloatArray, r_full: FloatArray, bass: FloatArray
) -> LevelDecision:
    """The beat tempo of one window from its tracker's estimate, the autocorrelations of its
    bass and full-band envelopes, and the bass envelope itself."""
    family = tracker_bpm
    best = family_score(r_full, family)
    for ratio in FAMILY_RATIOS:
        alt = tracker_bpm * ratio
        if MIN_BPM <= alt <= MAX_BPM:
            score = family_score(r_full, alt)
            if score > FAMILY_MARGIN * best:
                family, best = alt, score
    agrees = same_family(tracker_bpm, family)

    # Faster levels first: the fastest level carrying a bass hit on every beat is the beat.
    for multiple, base in ((4.0, 2.0), (3.0, 1.0), (2.0, 1.0)):
        faster = family * multiple
        if faster > MAX_BPM:
            continue
        here = recurrence(r_bass, faster)
        below = recurrence(r_bass, family * base)
        if here >= FASTER_STRENGTH and here >= FASTER_RATIO * below:
            return LevelDecision(
                faster, True, recurrence(r_full, faster), here / max(below, 1e-3), agrees, True
            )
    here = recurrence(r_bass, family)
    slower = family / 2.0
    below = recurrence(r_bass, slower)
    if (
        slower >= MIN_BPM
        and below >= SLOWER_STRENGTH
        and here < SLOWER_RATIO * below
        and evenness(bass, family) < SKIP_EVENNESS
    ):
        return LevelDecision(
            slower, True, recurrence(r_full, slower), below / max(here, 1e-3), agrees, True
        )
    faster = recurrence(r_bass, family * 2.0)
    # Evidenced when the bass band itself marks this level (strong, and stronger than the
    # subdivision), not merely when nothing contradicted the tracker.
    evidenced = here >= FASTER_STRENGTH and here >= max(faster, 1e-3) / FASTER_RATIO
    return LevelDecision(
        family, evidenced, recurrence(r_full, family), here / max(faster, 1e-3), agrees
    )
