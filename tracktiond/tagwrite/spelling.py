"""How each value is spelled in each tag system, and whether the file already holds it in an
equivalent spelling (the rules are in docs/tagging.md, "Spelling and rounding" and "Policy")."""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal, InvalidOperation

from tracktiond.media.keys import Key, Notation
from tracktiond.media.tags import TagSystem
from tracktiond.tagwrite.model import TagValues, TagWriteOptions


def format_key(tonic: str, mode: str, notation: Notation) -> str:
    """A key as written into tags: ("A", "minor") is "Am", "8A" or "1m".

    The standard notation keeps the sharp or flat spelling of the tonic it is given ("Bb" stays
    "Bb", "A#" stays "A#"); analysis gives the usual one (tracktiond.media.keys).
    """
    key = Key.of(tonic, mode)
    return key.short(tonic) if notation == "standard" else key.format(notation)


def parse_key(text: str) -> tuple[int, str, Notation] | None:
    """(pitch class, "major"/"minor", notation) of a key a tag holds, None if it is not a key."""
    try:
        key, notation = Key.parse_notation(text)
    except ValueError:
        return None
    return key.tonic, key.mode, notation


def _decimal(x: float) -> Decimal:
    # repr() is the shortest text that reads back as the same float, so half-up rounding acts
    # on the decimal value people see (126.5 -> 127), not on binary artefacts or round()'s
    # half-to-even rule (round(126.5) == 126).
    return Decimal(repr(x))


def _bpm_text(bpm: Decimal, integer: bool) -> str:
    if integer:
        return str(int(bpm.quantize(Decimal(1), ROUND_HALF_UP)))
    tenth = bpm.quantize(Decimal("0.1"), ROUND_HALF_UP)
    return str(int(tenth)) if tenth == tenth.to_integral_value() else str(tenth)


def _gain_text(db: Decimal) -> str:
    q = db.quantize(Decimal("0.01"), ROUND_HALF_UP)
    return f"{q + 0:+.2f} dB"  # "+ 0" turns -0.00 into 0.00


def _peak_text(peak: Decimal) -> str:
    return f"{peak.quantize(Decimal('0.000001'), ROUND_HALF_UP):.6f}"


def _r128_text(rg_db: Decimal) -> str:
    # RFC 7845 5.2.1: a Q7.8 fixed-point gain in dB (an integer, 1/256 dB) towards -23 LUFS
    # (EBU R128), applied on top of the header's output gain. ReplayGain 2.0 aims at -18 LUFS, so
    # the R128 gain is 5 dB lower. FFmpeg applies the output gain when decoding, so the analysed
    # loudness already includes it.
    q78 = int(((rg_db - 5) * 256).quantize(Decimal(1), ROUND_HALF_UP))
    return str(max(-32768, min(32767, q78)))


def _number(text: str, unit: str = "") -> Decimal | None:
    text = text.strip()
    if unit and text.lower().endswith(unit):
        text = text[: -len(unit)].strip()
    try:
        value = Decimal(text)
    except InvalidOperation:
        return None
    return value if value.is_finite() else None


_INTEGER_BPM = (TagSystem.ID3, TagSystem.MP4)  # ID3v2's TBPM is an integer string; tmpo an int


def _render(key: str, values: TagValues, options: TagWriteOptions, system: TagSystem) -> str | None:
    if key == "bpm" and values.bpm is not None:
        return _bpm_text(_decimal(values.bpm), system in _INTEGER_BPM)
    if key == "initialkey" and values.key_tonic is not None and values.key_mode is not None:
        return format_key(values.key_tonic, values.key_mode, options.key_notation)
    if key == "replaygain_track_gain" and values.replaygain_track_gain is not None:
        return _gain_text(_decimal(values.replaygain_track_gain))
    if key == "replaygain_track_peak" and values.replaygain_track_peak is not None:
        return _peak_text(_decimal(values.replaygain_track_peak))
    if key == "r128_track_gain" and values.replaygain_track_gain is not None:
        return _r128_text(_decimal(values.replaygain_track_gain))
    if key == "energy" and values.energy is not None:
        return values.energy.strip()
    return None


def _same(key: str, old: list[str], new: str, system: TagSystem) -> bool:
    """Does the file already hold ``new``, spelled in any equivalent way?"""
    if len(old) != 1:
        return False  # several values: writing collapses them to ours
    text = old[0].strip()
    if key == "bpm":
        bpm = _number(text)
        return bpm is not None and bpm > 0 and _bpm_text(bpm, system in _INTEGER_BPM) == new
    if key == "initialkey":
        # The same key in the configured notation; "A minor" and "Am", or "A#m" and "Bbm", are
        # equal, but "8A" is rewritten when the configured notation is standard.
        return parse_key(text) == parse_key(new)
    if key == "replaygain_track_gain":
        gain = _number(text, "db")
        return gain is not None and _gain_text(gain) == new
    if key == "replaygain_track_peak":
        peak = _number(text)
        return peak is not None and _peak_text(peak) == new
    if key == "r128_track_gain":
        return text.lstrip("+") == new
    return text == new
