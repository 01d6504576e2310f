"""Musical keys on the Camelot wheel, and which keys and tempi mix with which.

Pure functions, no graph: the mix-suggestion query computes the compatible Camelot codes and
BPM windows here and hands them to Cypher as parameters, so the harmonic rules are unit-tested
without a server and never duplicated in query text.

The wheel numbers the 12 major keys 1B..12B and the 12 minor keys 1A..12A so that a step of one
(with wrap-around 12 -> 1) is a fifth up or down and the same number with the other letter is
the relative major/minor. Open Key notation (used by Traktor) is the same wheel rotated: Camelot
8 is Open Key 1, and A/B become m/d.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import IntEnum

from tracktiond.analysis import keys

__all__ = [
    "CamelotKey",
    "KeyRelation",
    "TempoMatch",
    "bpm_windows",
    "compatible_keys",
    "parse_key",
    "tempo_match",
]

# Pitch classes of the natural notes; accidentals shift them by one semitone.
_NATURAL = {"c": 0, "d": 2, "e": 4, "f": 5, "g": 7, "a": 9, "b": 11}
_SHARPS = {"#": 1, "♯": 1, "b": -1, "♭": -1, "": 0}

# Any spelling per pitch class: tracktiond.analysis.keys respells it the way it names keys, so
# the graph's key names are the ones analysis writes ("G# minor", "Db major").
_SPELLING = ("C", "C#", "D", "D#", "E", "F", "F#", "G", "G#", "A", "A#", "B")

_CAMELOT_RE = re.compile(r"^0?(1[0-2]|[1-9])\s*([ab])$", re.IGNORECASE)
_OPENKEY_RE = re.compile(r"^0?(1[0-2]|[1-9])\s*([md])$", re.IGNORECASE)
# A note name, an optional accidental and an optional mode. "m"/"min"/"minor" means minor, except
# a lone capital "M", which some taggers write for major; nothing or "maj" means major.
_NOTE_RE = re.compile(
    r"^([a-g])\s*([#♯b♭]?)\s*(m|min|minor|moll|maj|major|dur)?$",
    re.IGNORECASE,
)


@dataclass(frozen=True, slots=True, order=True)
class CamelotKey:
    """A position on the Camelot wheel: number 1..12 and letter "A" (minor) or "B" (major)."""

    number: int
    letter: str

    def __post_init__(self) -> None:
        if not 1 <= self.number <= 12 or self.letter not in ("A", "B"):
            raise ValueError(f"not a Camelot key: {self.number}{self.letter}")

    @property
    def code(self) -> str:
        return f"{self.number}{self.letter}"

    @property
    def minor(self) -> bool:
        return self.letter == "A"

    @property
    def tonic(self) -> int:
        """Pitch class of the key's tonic (C = 0)."""
        # Inverse of _from_pitch: 7 is its own inverse modulo 12.
        major_pc = ((self.number - 8) % 12 * 7) % 12
        return (major_pc - 3) % 12 if self.minor else major_pc

    @property
    def name(self) -> str:
        """Conventional name, spelt as analysis spells it: "A minor", "Db major"."""
        return keys.key_name(_SPELLING[self.tonic], "minor" if self.minor else "major")

    @property
    def open_key(self) -> str:
        return f"{(self.number - 8) % 12 + 1}{'m' if self.minor else 'd'}"

    def step(self, delta: int) -> CamelotKey:
        """The key ``delta`` steps around the wheel (same letter)."""
        return CamelotKey((self.number - 1 + delta) % 12 + 1, self.letter)

    def relative(self) -> CamelotKey:
        """The relative major of a minor key and vice versa (same notes)."""
        return CamelotKey(self.number, "B" if self.minor else "A")


class KeyRelation(IntEnum):
    """How well two keys mix, best first; the value is the rank used for ordering."""

    SAME = 0
    RELATIVE = 1  # same notes, other mode: the smoothest change of mood
    ADJACENT = 2  # one fifth up or down: one note differs

    @property
    def label(self) -> str:
        return self.name.lower()


def _from_pitch(pitch_class: int, minor: bool) -> CamelotKey:
    # A minor key sits on the wheel with its relative major, three semitones up.
    major_pc = (pitch_class + 3) % 12 if minor else pitch_class
    # Each fifth (7 semitones) is one step; C major is 8B.
    fifths = (major_pc * 7) % 12
    return CamelotKey((fifths + 7) % 12 + 1, "A" if minor else "B")


def parse_key(text: str | None) -> CamelotKey | None:
    """Read a key as taggers and analysers write it; None if it is not recognisable.

    Accepts Camelot ("8A", "08a"), Open Key ("1m", "12d") and note names with an optional
    accidental and mode ("Am", "A minor", "F#m", "Bbmin", "E♭ major", "C"). Whatever follows a
    first "/" or "," is ignored, so "Am/8A" or "8A, Am" (written by some tools) parse too.
    """
    if not text:
        return None
    value = re.split(r"[/,]", text.strip(), maxsplit=1)[0].strip()
    if not value:
        return None
    if m := _CAMELOT_RE.match(value):
        return CamelotKey(int(m[1]), m[2].upper())
    if m := _OPENKEY_RE.match(value):
        number = (int(m[1]) + 6) % 12 + 1  # Open Key 1 is Camelot 8
        return CamelotKey(number, "A" if m[2].lower() == "m" else "B")
    if m := _NOTE_RE.match(value):
        mode = m[3] or ""
        minor = mode == "m" or mode.lower() in ("min", "minor", "moll")
        pitch = _NATURAL[m[1].lower()] + _SHARPS[m[2].lower()]
        return _from_pitch(pitch % 12, minor)
    return None


def compatible_keys(key: CamelotKey) -> dict[str, KeyRelation]:
    """Camelot code -> relation, for every key that mixes harmonically with ``key``."""
    out = {
        key.step(1).code: KeyRelation.ADJACENT,
        key.step(-1).code: KeyRelation.ADJACENT,
        key.relative().code: KeyRelation.RELATIVE,
    }
    out[key.code] = KeyRelation.SAME
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
