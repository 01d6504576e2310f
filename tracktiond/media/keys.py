"""Musical keys: one value object for the 24 major and minor keys, read from and written in the
notations people and tools use.

A :class:`Key` is a tonic (pitch class, C = 0 … B = 11) and a mode. It reads

- standard names: ``"A minor"``, ``"Am"``, ``"A min"``, ``"F#"``, ``"Gb major"``, ``"Bbm"``,
  ``"E♭ major"`` (ASCII or Unicode accidentals, any case, spaces between the parts; a lone
  capital ``"M"``, as some taggers write it, means major; German ``"moll"``/``"dur"`` too);
- Camelot codes: ``"8A"`` … ``"12B"`` (``"08A"``, ``"8 a"``);
- Open Key codes (Traktor): ``"1m"`` … ``"12d"``,

and writes the standard name (``"A minor"``), the short standard form (``"Am"``, ``"Db"``), the
Camelot and the Open Key code. Names spell each tonic the way DJ software and key detectors print
it: flats for the major keys Db, Eb, Ab, Bb; sharps for F# major and for the minor keys C#m, F#m,
G#m; Ebm and Bbm.

The Camelot wheel numbers the 12 major keys 1B…12B and the 12 minor keys 1A…12A so that one step
(with wrap-around 12 -> 1) is a fifth up or down and the same number with the other letter is the
relative key (same notes, other mode); A minor and C major are 8. Open Key is the same wheel
turned: Camelot 8 is Open Key 1, A/B become m/d.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final, Literal, get_args

__all__ = ["MODES", "NOTATIONS", "Key", "Mode", "Notation", "parse_mode", "pitch_class"]

Mode = Literal["major", "minor"]
Notation = Literal["standard", "camelot", "openkey"]
MODES: Final[tuple[Mode, ...]] = get_args(Mode)
NOTATIONS: Final[tuple[Notation, ...]] = get_args(Notation)

_LETTERS: Final = {"C": 0, "D": 2, "E": 4, "F": 5, "G": 7, "A": 9, "B": 11}
_ACCIDENTALS: Final = {"": 0, "#": 1, "♯": 1, "b": -1, "♭": -1}
_ASCII: Final = {"♯": "#", "♭": "b"}
_MODE_WORDS: Final[dict[str, Mode]] = {
    "major": "major",
    "maj": "major",
    "minor": "minor",
    "min": "minor",
}
# How tonics are named, per mode (see the module docstring).
_MAJOR_NAMES: Final = ("C", "Db", "D", "Eb", "E", "F", "F#", "G", "Ab", "A", "Bb", "B")
_MINOR_NAMES: Final = ("C", "C#", "D", "Eb", "E", "F", "F#", "G", "G#", "A", "Bb", "B")

_TONIC_RE: Final = re.compile(r"([A-Ga-g])([#♯b♭]?)")
_CAMELOT_RE: Final = re.compile(r"0?(1[0-2]|[1-9])\s*([ab])", re.IGNORECASE)
_OPENKEY_RE: Final = re.compile(r"0?(1[0-2]|[1-9])\s*([md])", re.IGNORECASE)
# Case-insensitive throughout, as tags are written: "EBM" is E flat major (the capital M again).
_STANDARD_RE: Final = re.compile(
    r"([a-g])\s*([#♯b♭]?)\s*(m|min|minor|moll|maj|major|dur)?", re.IGNORECASE
)


def pitch_class(tonic: str) -> int:
    """0 for C up to 11 for B: ``"C#"``, ``"Db"`` and ``"D♭"`` are 1, ``"Cb"`` is 11.

    A letter and at most one accidental; raises ValueError for anything else.
    """
    m = _TONIC_RE.fullmatch(tonic.strip())
    if m is None:
        raise ValueError(f"not a note name: {tonic!r} (expected e.g. 'A', 'C#', 'Bb')")
    return (_LETTERS[m[1].upper()] + _ACCIDENTALS[m[2]]) % 12


def parse_mode(mode: str) -> Mode:
    """``"major"``/``"maj"`` or ``"minor"``/``"min"``, any case; raises ValueError otherwise."""
    word = _MODE_WORDS.get(mode.strip().lower())
    if word is None:
        raise ValueError(f"mode must be 'major' or 'minor', got {mode!r}")
    return word


def _spelled(tonic: str) -> str:
    """A tonic as written, normalised: capital letter, ASCII accidental (``"e♭"`` -> ``"Eb"``)."""
    m = _TONIC_RE.fullmatch(tonic.strip())
    if m is None:
        raise ValueError(f"not a note name: {tonic!r} (expected e.g. 'A', 'C#', 'Bb')")
    return m[1].upper() + _ASCII.get(m[2], m[2])


@dataclass(frozen=True, slots=True)
class Key:
    """A major or minor key: ``Key(9, "minor")`` is A minor (8A, 1m)."""

    tonic: int  # pitch class of the tonic, C = 0 … B = 11
    mode: Mode

    def __post_init__(self) -> None:
        if type(self.tonic) is not int or not 0 <= self.tonic <= 11:
            raise ValueError(f"a key's tonic is a pitch class 0..11, got {self.tonic!r}")
        if self.mode not in MODES:
            raise ValueError(f"a key's mode is 'major' or 'minor', got {self.mode!r}")

    # -- reading -------------------------------------------------------------------------------

    @classmethod
    def of(cls, tonic: str, mode: str) -> Key:
        """The key of a tonic name and a mode word: ``Key.of("A", "minor")``, ``("Db", "MAJ")``."""
        return cls(pitch_class(tonic), parse_mode(mode))

    @classmethod
    def from_camelot(cls, number: int, letter: str) -> Key:
        """The key at a position of the Camelot wheel: ``(8, "A")`` is A minor."""
        if not 1 <= number <= 12 or letter.upper() not in ("A", "B"):
            raise ValueError(f"not a Camelot key: {number}{letter}")
        major = (number - 8) * 7 % 12  # 7 is its own inverse modulo 12: undoes `camelot_number`
        if letter.upper() == "B":
            return cls(major, "major")
        return cls((major - 3) % 12, "minor")

    @classmethod
    def from_open_key(cls, number: int, letter: str) -> Key:
        """The key of an Open Key code: ``(1, "m")`` is A minor, ``(1, "d")`` C major."""
        if not 1 <= number <= 12 or letter.lower() not in ("m", "d"):
            raise ValueError(f"not an Open Key code: {number}{letter}")
        return cls.from_camelot((number + 6) % 12 + 1, "A" if letter.lower() == "m" else "B")

    @classmethod
    def parse(cls, text: str) -> Key:
        """Read a key in any notation (see the module docstring); ValueError names bad text."""
        return cls.parse_notation(text)[0]

    @classmethod
    def parse_notation(cls, text: str) -> tuple[Key, Notation]:
        """Like :meth:`parse`, and which notation the text was written in."""
        value = text.strip()
        if m := _CAMELOT_RE.fullmatch(value):
            return cls.from_camelot(int(m[1]), m[2]), "camelot"
        if m := _OPENKEY_RE.fullmatch(value):
            return cls.from_open_key(int(m[1]), m[2]), "openkey"
        if m := _STANDARD_RE.fullmatch(value):
            word = m[3] or ""
            # "m" is minor, but a lone capital "M" is the (rare) major abbreviation.
            minor = word == "m" or word.lower() in ("min", "minor", "moll")
            tonic = (_LETTERS[m[1].upper()] + _ACCIDENTALS[m[2].lower()]) % 12
            return cls(tonic, "minor" if minor else "major"), "standard"
        raise ValueError(
            f"not a musical key: {text!r} (expected e.g. 'A minor', 'Am', 'F#', '8A' or '1m')"
        )

    # -- writing -------------------------------------------------------------------------------

    @property
    def minor(self) -> bool:
        return self.mode == "minor"

    @property
    def tonic_name(self) -> str:
        """The usual spelling of the tonic in this mode: ``"Db"`` in Db major, ``"C#"`` in C#m."""
        return (_MINOR_NAMES if self.minor else _MAJOR_NAMES)[self.tonic]

    @property
    def name(self) -> str:
        """Standard notation: ``"A minor"``, ``"Db major"``."""
        return f"{self.tonic_name} {self.mode}"

    def short(self, spelling: str | None = None) -> str:
        """Short standard notation: ``"Am"``, ``"C"``, ``"F#m"``, ``"Db"``.

        ``spelling`` names the tonic another way (``"A#"`` for Bb minor gives ``"A#m"``); it must
        be a spelling of this key's tonic.
        """
        tonic = self.tonic_name
        if spelling is not None:
            tonic = _spelled(spelling)
            if pitch_class(tonic) != self.tonic:
                raise ValueError(f"{spelling!r} does not spell the tonic of {self.name}")
        return tonic + ("m" if self.minor else "")

    @property
    def camelot_number(self) -> int:
        # A minor key sits on the wheel with its relative major, three semitones up; each fifth
        # (7 semitones) is one step, and C major is 8.
        major = (self.tonic + 3) % 12 if self.minor else self.tonic
        return (major * 7 + 7) % 12 + 1

    @property
    def camelot(self) -> str:
        """Camelot code: ``"8A"`` for A minor, ``"8B"`` for C major."""
        return f"{self.camelot_number}{'A' if self.minor else 'B'}"

    @property
    def open_key(self) -> str:
        """Open Key code: ``"1m"`` for A minor, ``"1d"`` for C major."""
        return f"{(self.camelot_number - 8) % 12 + 1}{'m' if self.minor else 'd'}"

    def format(self, notation: Notation) -> str:
        """``"Am"`` (standard, short), ``"8A"`` (camelot) or ``"1m"`` (openkey)."""
        if notation == "standard":
            return self.short()
        if notation == "camelot":
            return self.camelot
        if notation == "openkey":
            return self.open_key
        raise ValueError(f"notation must be one of {', '.join(NOTATIONS)}, got {notation!r}")

    # -- relations -----------------------------------------------------------------------------

    def relative(self) -> Key:
        """The relative major of a minor key and vice versa: same notes, same Camelot number."""
        if self.minor:
            return Key((self.tonic + 3) % 12, "major")
        return Key((self.tonic - 3) % 12, "minor")

    def step(self, steps: int) -> Key:
        """The key ``steps`` positions around the Camelot wheel (a fifth up each), same mode."""
        return Key((self.tonic + 7 * steps) % 12, self.mode)

    def adjacent(self) -> tuple[Key, Key]:
        """One step down and one step up the wheel: ``7A`` and ``9A`` for ``8A``."""
        return self.step(-1), self.step(1)

    def neighbours(self) -> tuple[Key, Key, Key]:
        """The keys that mix harmonically with this one: both adjacent keys and the relative."""
        down, up = self.adjacent()
        return down, up, self.relative()

    def __str__(self) -> str:
        return self.name
