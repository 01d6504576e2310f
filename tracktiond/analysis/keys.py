"""Musical key notation: standard names, Camelot and Open Key codes (no essentia here).

Tonics may be spelt with sharps or flats, ASCII or Unicode (``"C#"``, ``"Db"``, ``"D♭"``), including
the rare enharmonics ``"B#"``, ``"Cb"``, ``"E#"`` and ``"Fb"``; modes are ``"major"``/``"minor"``
(``"maj"``/``"min"`` and any case accepted). Output spells each key the way DJ software and
key-detection tools print it: flats for the major keys Db, Eb, Ab, Bb, sharps for F# major and
for the minor keys C#m, F#m, G#m; Ebm and Bbm (the usual spellings of those two).
"""

from __future__ import annotations

_LETTERS = {"C": 0, "D": 2, "E": 4, "F": 5, "G": 7, "A": 9, "B": 11}
_ACCIDENTALS = {"#": 1, "♯": 1, "b": -1, "♭": -1}

_MAJOR_NAMES = ("C", "Db", "D", "Eb", "E", "F", "F#", "G", "Ab", "A", "Bb", "B")
_MINOR_NAMES = ("C", "C#", "D", "Eb", "E", "F", "F#", "G", "G#", "A", "Bb", "B")


def pitch_class(tonic: str) -> int:
    """0 for C up to 11 for B; raises ValueError for anything that is not a note name."""
    text = tonic.strip()
    if not text or text[0].upper() not in _LETTERS:
        raise ValueError(f"not a note name: {tonic!r}")
    value = _LETTERS[text[0].upper()]
    for char in text[1:]:
        if char not in _ACCIDENTALS:
            raise ValueError(f"not a note name: {tonic!r}")
        value += _ACCIDENTALS[char]
    return value % 12


def normalize_mode(mode: str) -> str:
    lowered = mode.strip().lower()
    if lowered in ("major", "maj"):
        return "major"
    if lowered in ("minor", "min"):
        return "minor"
    raise ValueError(f"mode must be 'major' or 'minor', got {mode!r}")


def _major_fifths(tonic: str, mode: str) -> int:
    """Position on the circle of fifths (C=0, G=1, ...) of the key's relative major."""
    pc = pitch_class(tonic)
    if normalize_mode(mode) == "minor":
        pc = (pc + 3) % 12  # the relative major shares the Camelot/Open Key number
    return (7 * pc) % 12


def camelot(tonic: str, mode: str) -> str:
    """Camelot wheel code: ``("A", "minor") -> "8A"``, ``("C", "major") -> "8B"``."""
    number = (_major_fifths(tonic, mode) + 7) % 12 + 1
    return f"{number}{'A' if normalize_mode(mode) == 'minor' else 'B'}"


def open_key(tonic: str, mode: str) -> str:
    """Open Key notation: ``("A", "minor") -> "1m"``, ``("C", "major") -> "1d"``."""
    number = _major_fifths(tonic, mode) + 1
    return f"{number}{'m' if normalize_mode(mode) == 'minor' else 'd'}"


def tonic_name(tonic: str, mode: str) -> str:
    """The conventional spelling of the tonic for this mode (``("C#", "major") -> "Db"``)."""
    names = _MINOR_NAMES if normalize_mode(mode) == "minor" else _MAJOR_NAMES
    return names[pitch_class(tonic)]


def key_name(tonic: str, mode: str) -> str:
    """Standard notation: ``"A minor"``, ``"Db major"``."""
    return f"{tonic_name(tonic, mode)} {normalize_mode(mode)}"


def short_key(tonic: str, mode: str) -> str:
    """Compact notation: ``"Am"``, ``"C"``, ``"F#m"``."""
    suffix = "m" if normalize_mode(mode) == "minor" else ""
    return f"{tonic_name(tonic, mode)}{suffix}"


def parse_key_name(name: str) -> tuple[str, str]:
    """Inverse of :func:`key_name`: ``"A minor" -> ("A", "minor")``."""
    tonic, _, mode = name.strip().partition(" ")
    return tonic_name(tonic, mode), normalize_mode(mode)
