"""Key notation: spelling a key as "Am", "8A" (Camelot) or "1m" (Open Key), and reading any of
the three back, so that equal keys in different spellings compare equal."""

from __future__ import annotations

import re
from typing import Literal

KeyNotation = Literal["standard", "camelot", "openkey"]

_MODES = {"major": "major", "maj": "major", "minor": "minor", "min": "minor"}

_LETTERS = {"C": 0, "D": 2, "E": 4, "F": 5, "G": 7, "A": 9, "B": 11}
_TONIC = re.compile(r"([A-Ga-g])([#♯b♭]?)")
_STANDARD = re.compile(r"([A-Ga-g])([#♯b♭]?)\s*((?i:minor|min|major|maj)|m|M)?")
_CAMELOT = re.compile(r"(1[0-2]|0?[1-9])\s*([AB])", re.IGNORECASE)
_OPENKEY = re.compile(r"(1[0-2]|0?[1-9])\s*([md])", re.IGNORECASE)


def _parse_tonic(text: str) -> tuple[str, int] | None:
    m = _TONIC.fullmatch(text.strip())
    if m is None:
        return None
    accidental = {"♯": "#", "♭": "b"}.get(m[2], m[2])
    pc = (_LETTERS[m[1].upper()] + {"#": 1, "b": -1, "": 0}[accidental]) % 12
    return m[1].upper() + accidental, pc


def _camelot_number(pc: int, minor: bool) -> int:
    # The Camelot wheel steps a fifth (7 semitones) per number; A minor and C major are 8.
    n = (8 + 7 * (pc - 9)) % 12 if minor else (8 + 7 * pc) % 12
    return n or 12


def format_key(tonic: str, mode: str, notation: KeyNotation) -> str:
    """Spell a key in a notation: ("A", "minor") is "Am", "8A" or "1m".

    The tonic keeps the sharp or flat spelling it was given ("Bb" stays "Bb", "A#" stays "A#").
    """
    parsed = _parse_tonic(tonic)
    if parsed is None or mode.strip().lower() not in _MODES:
        raise ValueError(f"not a key: {tonic!r} {mode!r}")
    name, pc = parsed
    minor = _MODES[mode.strip().lower()] == "minor"
    if notation == "standard":
        return name + ("m" if minor else "")
    camelot = _camelot_number(pc, minor)
    if notation == "camelot":
        return f"{camelot}{'A' if minor else 'B'}"
    # Open Key numbers are the Camelot numbers turned by five steps (8A = 1m, 8B = 1d).
    return f"{(camelot + 4) % 12 + 1}{'m' if minor else 'd'}"


def parse_key(text: str) -> tuple[int, str, KeyNotation] | None:
    """(pitch class, "major"/"minor", notation) of a key written in any of the three notations."""
    text = text.strip()
    m = _CAMELOT.fullmatch(text)
    if m is not None:
        n, minor = int(m[1]), m[2].upper() == "A"
        pc = (9 + 7 * (n - 8)) % 12 if minor else (7 * (n - 8)) % 12
        return pc, "minor" if minor else "major", "camelot"
    m = _OPENKEY.fullmatch(text)
    if m is not None:
        camelot = (int(m[1]) + 6) % 12 + 1
        minor = m[2].lower() == "m"
        pc = (9 + 7 * (camelot - 8)) % 12 if minor else (7 * (camelot - 8)) % 12
        return pc, "minor" if minor else "major", "openkey"
    m = _STANDARD.fullmatch(text)
    if m is not None:
        tonic = _parse_tonic(m[1] + m[2])
        mode = m[3] or ""
        if tonic is None:
            return None
        # "m" is minor, but a lone capital "M" is the (rare) major abbreviation.
        minor = mode == "m" or mode.lower() in ("min", "minor")
        return tonic[1], "minor" if minor else "major", "standard"
    return None
