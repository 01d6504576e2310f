"""Turning the bytes of a sheet or a pasted tracklist into text, and saying which encoding did it.

The order, each step only when the one before does not fit:

1. an encoding given for this file (the user knows best: ``tracklist import --encoding``);
2. a byte-order mark (UTF-8, UTF-16, UTF-32);
3. strict UTF-8 (Mixxx, foobar2000, anything recent; ASCII is UTF-8);
4. the configured legacy code page, strictly (default cp1252: CUETools and EAC write "ANSI");
5. charset-normalizer, among a short list of candidates only.

Why guessing comes last: on short Western sheets chardet and charset-normalizer both pick the
wrong code page (Windows-1251, mac_iceland, cp1250 for a cp1252 "é"), while a strict cp1252
decode of those bytes is right. A Cyrillic or Greek library sets ``[tracklists] legacy_encoding``.
"""

from __future__ import annotations

import codecs
from dataclasses import dataclass

from tracktiond.errors import BadInput

# What charset-normalizer may choose from when neither UTF-8 nor the legacy code page decodes.
CANDIDATES = (
    "cp1252", "cp1250", "cp1251", "cp1253", "cp1254", "cp1257", "iso8859_15", "koi8_r",
    "shift_jis", "gb18030", "big5", "euc_kr", "mac_roman",
)  # fmt: skip

_BOMS = (
    (codecs.BOM_UTF32_LE, "utf-32-le"),
    (codecs.BOM_UTF32_BE, "utf-32-be"),
    (codecs.BOM_UTF8, "utf-8"),
    (codecs.BOM_UTF16_LE, "utf-16-le"),
    (codecs.BOM_UTF16_BE, "utf-16-be"),
)


@dataclass(frozen=True, slots=True)
class Decoded:
    text: str
    encoding: str  # a Python codec name, normalised ("utf-8", "cp1252", ...)
    bom: bool = False
    guessed: bool = False  # chosen by charset-normalizer, not by a rule


def codec_name(name: str) -> str:
    """The normalised name of an encoding; BadInput for one Python does not know."""
    try:
        return codecs.lookup(name).name
    except LookupError:
        raise BadInput(f"unknown encoding {name!r}") from None


def decode_text(raw: bytes, *, legacy: str = "cp1252", override: str | None = None) -> Decoded:
    """Decode ``raw`` as described above; BadInput when it is not text in any of them."""
    if override:
        name = codec_name(override)
        try:
            return Decoded(raw.decode(name), name)
        except UnicodeDecodeError as exc:
            raise BadInput(f"not valid {name} (byte {exc.start}): {exc.reason}") from None
    for bom, name in _BOMS:
        if raw.startswith(bom):
            try:
                return Decoded(raw[len(bom) :].decode(name), name, bom=True)
            except UnicodeDecodeError as exc:
                raise BadInput(
                    f"starts with a {name} BOM but is not {name}: {exc.reason}"
                ) from None
    if b"\x00" in raw:
        raise BadInput("not a text file (it contains NUL bytes)")
    try:
        return Decoded(raw.decode("utf-8"), "utf-8")
    except UnicodeDecodeError:
        pass
    name = codec_name(legacy)
    try:
        return Decoded(raw.decode(name), name)
    except UnicodeDecodeError:
        pass
    return _guess(raw, name)


def _guess(raw: bytes, legacy: str) -> Decoded:
    import charset_normalizer  # only here: most sheets never get this far

    best = charset_normalizer.from_bytes(raw, cp_isolation=list(CANDIDATES)).best()
    if best is None:
        raise BadInput(f"cannot decode the text: not UTF-8, not {legacy}, and no encoding fits")
    name = codec_name(best.encoding)
    return Decoded(raw.decode(name, errors="strict"), name, guessed=True)
