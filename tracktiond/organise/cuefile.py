"""Keeping a cue sheet pointed at its audio: the ``FILE`` lines, rewritten byte-for-byte.

A cue sheet names its audio in ``FILE "name" WAVE`` lines (rekordbox writes one per TRACK),
relative to the sheet's own directory. When the audio or the sheet moves, those names must
follow. Only the name inside each FILE line is replaced; every other byte of the sheet — other
lines, line endings, the BOM, the encoding — stays exactly as it was, so an undo that writes the
original bytes back restores the file byte-identically.

The sheet's encoding is read as the cue-sheet readers do it: UTF-8 (with or without BOM), else
cp1252, else latin-1 (every byte is valid there). A new name that the sheet's encoding cannot
hold (a Japanese title in a cp1252 sheet) would point nowhere; such a sheet is not rewritten and
the plan says why.

(The tracklist parser and writer of ``tracktiond.tracklists`` are for the whole sheet; the
organise package may not import them, and needs nothing but this one line kind.)
"""

from __future__ import annotations

import ntpath
import os
import re
from collections.abc import Callable

MAX_CUE_BYTES = 1 << 20

_FILE_LINE = re.compile(
    rb"^(?P<lead>[ \t]*FILE[ \t]+)"
    rb'(?:"(?P<quoted>[^"]*)"|(?P<bare>\S+))'
    rb"(?P<tail>.*?)(?P<eol>\r?\n?)$",
    re.IGNORECASE | re.DOTALL,
)


class CueError(Exception):
    """The sheet cannot be rewritten; the message says why."""


def encoding_of(raw: bytes) -> str:
    if raw.startswith(b"\xef\xbb\xbf"):
        return "utf-8"
    for encoding in ("utf-8", "cp1252"):
        try:
            raw.decode(encoding)
            return encoding
        except UnicodeDecodeError:
            continue
    return "latin-1"


def _lines(raw: bytes) -> list[bytes]:
    return raw.splitlines(keepends=True)


def file_references(raw: bytes) -> list[str]:
    """The names in the sheet's FILE lines, decoded, in order."""
    encoding = encoding_of(raw)
    body = raw[3:] if raw.startswith(b"\xef\xbb\xbf") else raw
    out = []
    for line in _lines(body):
        m = _FILE_LINE.match(line)
        if m:
            name = m.group("quoted") if m.group("quoted") is not None else m.group("bare")
            out.append(name.decode(encoding, "replace"))
    return out


def resolve(reference: str, sheet_dir: str, entries: Callable[[str], list[str]]) -> str:
    """The absolute path a FILE name means: relative to the sheet, Windows separators allowed,
    matched without regard to case when no entry has exactly that name (sheets are often
    written on Windows)."""
    ref = reference.replace("\\", "/") if "\\" in reference else reference
    if ntpath.isabs(reference) and not reference.startswith("/"):
        ref = ntpath.basename(reference)  # C:\Music\x.wav: only the name can still mean anything
    path = os.path.normpath(os.path.join(sheet_dir, ref))
    directory, name = os.path.split(path)
    names = entries(directory)
    if name in names:
        return path
    folded = [n for n in names if n.casefold() == name.casefold()]
    return os.path.join(directory, folded[0]) if len(folded) == 1 else path


def rewrite(raw: bytes, new_names: dict[str, str]) -> bytes:
    """``raw`` with each FILE name found in ``new_names`` (decoded name -> new name) replaced.

    Raises CueError when a new name cannot be written in the sheet's encoding."""
    encoding = encoding_of(raw)
    bom = b"\xef\xbb\xbf" if raw.startswith(b"\xef\xbb\xbf") else b""
    body = raw[len(bom) :]
    out = [bom]
    for line in _lines(body):
        m = _FILE_LINE.match(line)
        if not m:
            out.append(line)
            continue
        old = m.group("quoted") if m.group("quoted") is not None else m.group("bare")
        new = new_names.get(old.decode(encoding, "replace"))
        if new is None:
            out.append(line)
            continue
        try:
            encoded = new.encode(encoding)
        except UnicodeEncodeError:
            raise CueError(
                f"the new name {new!r} cannot be written in the sheet's encoding ({encoding})"
            ) from None
        if b'"' in encoded:
            raise CueError(f"the new name {new!r} contains a double quote")
        out.append(m.group("lead") + b'"' + encoded + b'"' + m.group("tail") + m.group("eol"))
    return b"".join(out)


def relative_reference(audio_path: str, sheet_dir: str) -> str:
    """How a sheet in ``sheet_dir`` names ``audio_path``: just the name when they share a
    directory (what every player expects), else a relative path with ``/``."""
    if os.path.dirname(audio_path) == sheet_dir:
        return os.path.basename(audio_path)
    return os.path.relpath(audio_path, sheet_dir)
