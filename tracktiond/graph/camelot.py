"""Which keys and tempi mix with which: the harmonic and tempo rules of the mix suggestions.

Pure functions, no graph: the mix-suggestion query computes the compatible Camelot codes and
BPM windows here and hands them to Cypher as parameters, so the rules are unit-tested without a
server and never duplicated in query text. Keys themselves (notations, the Camelot wheel, the
relative and adjacent keys) are tracktiond.media.keys.Key; :func:`read_key` reads one as tags
and analysis store it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import IntEnum

from tracktiond.media.keys import Key

__all__ = [
    "KeyRelation",
    "TempoMatch",
    "bpm_windows",
    "compatible_keys",
    "read_key",
    "tempo_match",
]


def read_key(text: str | None) -> Key | None:
    """The key a tag or metadata value names, in any notation; None if it names none.

    Whatever follows a first "/" or "," is ignored, so "Am/8A" or "8A, Am" (written by some
    tools) read as their first key.
    """
    if not text:
        return None
    value = re.split(r"[/,]", text.strip(), maxsplit=1)[0].strip()
    try:
        return Key.parse(value)
    except ValueError:
        return None


class KeyRelation(IntEnum):
    """How well two keys mix, best first; the value is the rank used for ordering."""

    SAME = 0
    RELATIVE = 1  # same notes, other mode: the smoothest change of mood
    ADJACENT = 2  # one fifth up or down: one note differs

    @property
    def label(self) -> str:
        return self.name.lower()


def compatible_keys(key: Key) -> dict[str, KeyRelation]:
    """Camelot code -> relation, for every key that mixes harmonically with ``key``."""
    out = {k.camelot: KeyRelation.ADJACENT for k in key.adjacent()}
    out[key.relative().camelot] = KeyRelation.RELATIVE
    out[key.camelot] = KeyRelation.SAME
    return out


# Tempo multiples a DJ can mix at: the same tempo, half time and double time.
TEMPO_FACTORS: tuple[tuple[str, float], ...] = (("same", 1.0), ("half", 0.5), ("double", 2.0))


@dataclass(frozen=True, slots=True)
class TempoMatch:
    tempo: str  # "same", "half" or "double": which multiple of the source tempo matched
    distance: float  # |candidate - target| / target, where target = source bpm * factor


def bpm_windows(bpm: float, tolerance: float) -> list[tuple[float, float]]:
    """Inclusive [low, high] BPM ranges that match ``bpm`` within ±``tolerance`` (a fraction)."""
    if bpm <= 0 or tolerance < 0:
        raise ValueError(f"bpm must be positive and tolerance non-negative ({bpm}, {tolerance})")
    return [(bpm * f * (1 - tolerance), bpm * f * (1 + tolerance)) for _, f in TEMPO_FACTORS]


def tempo_match(source_bpm: float, bpm: float, tolerance: float) -> TempoMatch | None:
    """The closest tempo multiple at which ``bpm`` mixes with ``source_bpm``, or None.

    Membership uses exactly the windows of :func:`bpm_windows`, so the Cypher pre-filter and
    this ranking can never disagree about a value on a boundary.
    """
    best: TempoMatch | None = None
    windows = bpm_windows(source_bpm, tolerance)
    for (label, factor), (low, high) in zip(TEMPO_FACTORS, windows, strict=True):
        if low <= bpm <= high:
            target = source_bpm * factor
            match = TempoMatch(label, abs(bpm - target) / target)
            # Strictly smaller wins, so on a tie the earlier (same tempo) is kept.
            if best is None or match.distance < best.distance:
                best = match
    return best
