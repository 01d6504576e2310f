"""Generated material with exact truth, and its scores: for the accuracy tests and the bench.

One definition serves both: the CI tests (tests/integration/test_analysis_accuracy.py) run a
small, fixed selection of these cases with thresholds; ``bench/accuracy.py`` runs all of them
next to real annotated recordings and the plain-essentia and librosa peers.

* :func:`tempo_cases`: drum patterns of every kit (``signals.KITS`` and the metrical traps of
  ``signals.TRAP_KITS``: off-beat hats, half-time, triplet shuffle, waltz) at tempi spread
  over 60-200 BPM, swung where the kit is;
* :func:`key_cases`: cadences in all 24 keys, alone or under a drum loop, each detuned by up to
  ±40 cents from A4 = 440 Hz;
* scores: :func:`tempo_verdict` (Accuracy1 / Accuracy2), :func:`key_relation` (exact, fifth,
  relative, parallel, other, as in MIREX) and :func:`roc_auc` (how well a confidence separates
  right answers from wrong ones).

Like ``signals``, this module imports nothing from ``tracktiond``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from tests.support import signals

SWING = {"breakbeat": 0.1, "hiphop": 0.2, "offbeat": 0.0, "halftime": 0.15}
DETUNE_CENTS = (-40.0, -27.0, -13.0, 0.0, 12.0, 26.0, 40.0)
DRUM_TEMPI = (122.0, 95.0, 140.0, 174.0)
TOLERANCE = 0.04  # Accuracy1 / Accuracy2 tolerance of the tempo literature
OCTAVE_ERRORS = (1 / 3, 1 / 2, 2.0, 3.0)  # what Accuracy2 forgives


@dataclass(frozen=True)
class Case:
    """One generated recording: a name that says what it is, its truth, and how to make it."""

    name: str
    make: Callable[[], signals.Signal]
    bpm: float | None = None
    key: tuple[str, str] | None = None
    cents: float = 0.0


def tempi(count: int, low: float = 60.0, high: float = 200.0) -> tuple[float, ...]:
    return tuple(round(float(b), 1) for b in np.geomspace(low, high, count))


def tempo_cases(
    count: int, kits: Sequence[str] = signals.KITS + signals.TRAP_KITS, seed: int = 0
) -> list[Case]:
    """``count`` tempi per kit, 20 s each; seeds differ per case and from the tuning runs."""
    cases = []
    for k, kit in enumerate(kits):
        for i, bpm in enumerate(tempi(count)):

            def make(
                b: float = bpm, kt: str = kit, sd: int = seed + 1000 * k + i
            ) -> signals.Signal:
                return signals.drum_pattern(b, kt, seconds=20.0, seed=sd, swing=SWING.get(kt, 0.0))

            cases.append(Case(f"tempo/{kit}/{bpm}", make, bpm=bpm))
    return cases


def noisy_cases(
    kits: Sequence[str] = ("house", "breakbeat", "shuffle"), seed: int = 0
) -> list[Case]:
    """Drum patterns under pink noise as loud as they are (0 dB) or louder (+6 dB).

    Evidence gets weak here and level errors appear: the set on which the confidence has to
    show that it knows when it does not know.
    """
    cases = []
    for k, kit in enumerate(kits):
        for i, bpm in enumerate((72.0, 97.0, 128.0, 174.0)):
            for noise_db in (0.0, 6.0):

                def make(
                    b: float = bpm,
                    kt: str = kit,
                    nd: float = noise_db,
                    sd: int = seed + 100 * k + i,
                ) -> signals.Signal:
                    return signals.drum_pattern(b, kt, seconds=20.0, seed=sd, noise_db=nd)

                cases.append(Case(f"noisy/{kit}/{bpm}/{noise_db:+.0f}dB", make, bpm=bpm))
    return cases


def key_cases(
    timbres: Sequence[str] = ("saw", "piano"), *, drums: bool = False, step: int = 1
) -> list[Case]:
    """Every ``step``-th of the 24 keys per timbre, each detuned by one of :data:`DETUNE_CENTS`."""
    cases = []
    for t, timbre in enumerate(timbres):
        for i, (tonic, mode) in enumerate(signals.KEYS):
            if i % step:
                continue
            cents = DETUNE_CENTS[(i + 3 * t) % len(DETUNE_CENTS)]
            bpm = DRUM_TEMPI[i % len(DRUM_TEMPI)]
            kit = signals.KITS[i % len(signals.KITS)]

            def make(
                tn: str = tonic,
                md: str = mode,
                tb: str = timbre,
                c: float = cents,
                b: float = bpm,
                kt: str = kit,
                sd: int = i,
            ) -> signals.Signal:
                if not drums:
                    return signals.chord_progression(tn, md, tb, seconds=16.0, seed=sd, cents=c)
                harmony = signals.chord_progression(
                    tn, md, tb, seconds=16.0, seed=sd, chord_seconds=240.0 / b, cents=c
                )
                beat = signals.drum_pattern(b, kt, seconds=16.0, seed=200 + sd)
                return (0.6 * beat + 0.4 * harmony).astype(np.float32)

            prefix = "keydrums" if drums else "key"
            cases.append(
                Case(
                    f"{prefix}/{timbre}/{tonic}/{mode}/{cents:+.0f}c",
                    make,
                    key=(tonic, mode),
                    cents=cents,
                    bpm=bpm if drums else None,
                )
            )
    return cases


# -- scores -------------------------------------------------------------------------------------


def tempo_verdict(found: float | None, truth: float) -> str:
    """ "acc1" (within 4 %), "acc2" (within 4 % of a third, half, double or triple), or "miss"."""
    if found is None or not found > 0:
        return "miss"
    if abs(found / truth - 1.0) <= TOLERANCE:
        return "acc1"
    if any(abs(found / (truth * m) - 1.0) <= TOLERANCE for m in OCTAVE_ERRORS):
        return "acc2"
    return "miss"


PITCH = {
    name: i
    for i, names in enumerate(
        ("C B#", "C# Db", "D", "D# Eb", "E Fb", "F E#", "F# Gb", "G", "G# Ab", "A", "A# Bb", "B Cb")
    )
    for name in names.split()
}


def key_relation(found: tuple[str, str] | None, truth: tuple[str, str]) -> str:
    """MIREX's categories: "exact", "fifth", "relative", "parallel" or "other"."""
    if found is None:
        return "other"
    f, t = PITCH[found[0]], PITCH[truth[0]]
    if found[1] == truth[1]:
        if f == t:
            return "exact"
        if (f - t) % 12 in (5, 7):
            return "fifth"
        return "other"
    relative = (t + 9) % 12 if truth[1] == "major" else (t + 3) % 12
    if f == relative:
        return "relative"
    if f == t:
        return "parallel"
    return "other"


MIREX_WEIGHTS = {"exact": 1.0, "fifth": 0.5, "relative": 0.3, "parallel": 0.2, "other": 0.0}


def roc_auc(right: Sequence[float], wrong: Sequence[float]) -> float | None:
    """Probability that a right answer's confidence exceeds a wrong one's (ties count half);
    None when either side is empty."""
    if not right or not wrong:
        return None
    greater = sum(1.0 if r > w else 0.5 if r == w else 0.0 for r in right for w in wrong)
    return greater / (len(right) * len(wrong))
