"""Tuning: how far a recording sits from A4 = 440 Hz, and its pitch profile corrected for it.

Key profiles are matched against a 36-bin pitch-class profile (three bins per semitone, bin 0
on A). A band tuned to A4 = 432 Hz (-32 cents), a record mastered a little fast, or an old
recording off concert pitch puts its notes between those bins, and a semitone's worth of
detuning makes every note look like its neighbour: D minor reads C# minor.

So the engine accumulates a finer profile, :data:`FINE_BINS` bins (nine per semitone, 11.1
cents each), referenced to 440 Hz. The recording's tuning is the circular mean of where its
energy falls *within* a semitone (pitch classes do not matter for it, only the offset every
note shares); the fine profile is then shifted back by that offset and pooled into the 36 bins
the key profiles expect. Both steps are plain numpy on 108 numbers, once per recording.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

FINE_BINS = 108  # 9 per semitone
PER_SEMITONE = FINE_BINS // 12
KEY_BINS = 36
POOL = FINE_BINS // KEY_BINS  # fine bins per key bin (3)
CENTS_PER_BIN = 100.0 / PER_SEMITONE
REFERENCE_HZ = 440.0
# How concentrated within the semitone the energy must be (length of its mean resultant, 0..1)
# for a tuning to be estimated: pitched music measured 0.07-0.25, generated cadences 0.2-0.26,
# drum loops, noise and the dubstep clip 0.008-0.03.
MIN_CONCENTRATION = 0.05

FloatArray = np.ndarray[Any, np.dtype[np.float64]]


def estimate_cents(fine: FloatArray) -> float:
    """The tuning offset, in cents from A4 = 440 Hz (-50 ... +50), of a fine profile.

    Zero for an empty profile, or one whose energy is not concentrated anywhere within the
    semitone (:data:`MIN_CONCENTRATION`). Energy is folded onto one semitone (nine positions);
    the angle of its circular mean is the shared offset of the notes.
    """
    profile = np.asarray(fine, dtype=np.float64)
    if profile.shape != (FINE_BINS,) or not profile.sum() > 0:
        return 0.0
    folded = profile.reshape(12, PER_SEMITONE).sum(axis=0)
    angles = 2.0 * math.pi * np.arange(PER_SEMITONE) / PER_SEMITONE
    x = float(np.dot(folded, np.cos(angles)))
    y = float(np.dot(folded, np.sin(angles)))
    if math.hypot(x, y) < MIN_CONCENTRATION * float(folded.sum()):
        # Energy spread (nearly) evenly over the semitone: noise, drums, detuned synth stacks.
        # There is no tuning to speak of, and "correcting" by an offset that is mostly chance
        # made the same clip's key differ between codecs (essentia's dubstep clip: 0.011).
        return 0.0
    return math.atan2(y, x) / (2.0 * math.pi) * 100.0


def frequency(cents: float) -> float:
    """A4 in Hz for a tuning offset in cents."""
    return float(REFERENCE_HZ * 2.0 ** (cents / 1200.0))


def retune(fine: FloatArray, cents: float) -> FloatArray:
    """The 36-bin profile (bin 0 on A) of a fine profile whose notes sit ``cents`` off 440 Hz.

    The fine profile is shifted back by the offset (circularly, with linear interpolation
    between bins) and every three fine bins around a key bin's centre are summed.
    """
    profile = np.asarray(fine, dtype=np.float64)
    shift = cents / CENTS_PER_BIN
    index = (np.arange(FINE_BINS) + shift) % FINE_BINS
    floor = np.floor(index)
    frac = index - floor
    low = floor.astype(np.int64) % FINE_BINS  # (-tiny % 108 can round to 108.0 itself)
    shifted = profile[low] * (1.0 - frac) + profile[(low + 1) % FINE_BINS] * frac
    # Key bin j is centred on fine bin POOL * j; pool the fine bins -1, 0, +1 around it.
    centred = np.roll(shifted, POOL // 2)
    return np.asarray(centred.reshape(KEY_BINS, POOL).sum(axis=1), dtype=np.float64)
