"""Safe names: what a rendered pattern level becomes on disk.

Each level goes through the same steps, in this order (the order matters):

1. **Unicode normalisation to NFC.** Linux filesystems store bytes, so ``é`` precomposed (NFC)
   and ``e`` + combining accent (NFD, what macOS HFS+ hands out) are different names there that
   look identical. Tags arrive in either form; NFC is what most tools write and what rekordbox,
   Traktor and Windows expect, so every name tracktiond makes is NFC, and collisions between
   planned names are found on NFC + case folding.
2. **Transliteration** (``[organise] transliterate``, off by default) with anyascii, *before*
   sanitising: anyascii turns ``½`` into ``1/2``, and the ``/`` it brings in must meet step 3
   rather than become a directory level.
3. **Sanitising**: ``/``, NUL and control characters become ``_``; runs of white space become
   one space, and none leads or trails; a leading ``.`` becomes ``_`` (a hidden file is one the
   library scan skips). With ``[organise] portable``: Windows' reserved characters ``<>:"\\|?*``
   become ``_``, trailing dots and spaces go, and reserved device names (``CON``, ``NUL``,
   ``COM1`` …, also with an extension) get a ``_`` appended.
4. **Length**: each level fits the target filesystem's ``f_namemax`` (statvfs, in *bytes* of
   UTF-8: 255 bytes is 85 CJK characters), and with ``portable`` also 255 characters. Only a
   file's *stem* is shortened: its extension, and room for the longest sidecar suffix
   (``.accurip``), are always kept, so ``x.flac`` never loses ``.flac`` and its ``.cue`` never
   collides with its audio. The cut never splits a character or leaves an accent without its
   letter. The whole path fits ``PATH_MAX`` and, with ``max_path_chars`` (255 under
   ``portable`` unless set), that many characters: the longest levels are shortened first.
5. **Validation** with pathvalidate (``universal`` platform under ``portable``, else
   ``linux``): a name that still fails is not used; the file is skipped with the reason.
"""

from __future__ import annotations

import functools
import os
import re
import unicodedata
from dataclasses import dataclass
from typing import Final

from anyascii import anyascii
from pathvalidate import ValidationError, validate_filename

NORMALIZATION: Final = "NFC"
REPLACEMENT = "_"
#: Longest suffix a sidecar adds to a stem: a stem is cut so that every sidecar still fits.
SIDECAR_ROOM = len(".accurip")
PORTABLE_MAX_CHARS = 255  # rekordbox and Windows: per name, and rekordbox for the whole path
MIN_LEVEL_CHARS = 8  # a level is never shortened below this to fit a long path

_WINDOWS_CHARS = re.compile(r'[<>:"\\|?*]')
_WHITESPACE = re.compile(r"\s+")
_SPACES = re.compile(" {2,}")
_RESERVED = {"CON", "PRN", "AUX", "NUL"} | {f"{d}{n}" for d in ("COM", "LPT") for n in "123456789"}


class UnsafeName(Exception):
    """A name that cannot be made valid; the message says why (a per-file skip reason)."""


@dataclass(frozen=True, slots=True)
class NameRules:
    """How names are made for one target filesystem."""

    max_name_bytes: int = 255  # statvfs f_namemax of the target filesystem
    max_path_bytes: int = 4096  # PATH_MAX
    portable: bool = False
    transliterate: bool = False
    max_path_chars: int = 0  # 0: no limit beyond max_path_bytes

    @property
    def path_chars(self) -> int:
        if self.max_path_chars:
            return self.max_path_chars
        return PORTABLE_MAX_CHARS if self.portable else 0

    @property
    def name_chars(self) -> int:
        return PORTABLE_MAX_CHARS if self.portable else 0


def filesystem_rules(path: str, **options: object) -> NameRules:
    """The rules for names created under ``path`` (its nearest existing ancestor's filesystem)."""
    probe = path
    while not os.path.isdir(probe):
        parent = os.path.dirname(probe)
        if parent == probe:
            break
        probe = parent
    try:
        namemax = os.statvfs(probe).f_namemax or 255
    except OSError:
        namemax = 255
    try:
        pathmax = os.pathconf(probe, "PC_PATH_MAX")
    except (OSError, ValueError):
        pathmax = 4096
    return NameRules(max_name_bytes=namemax, max_path_bytes=pathmax, **options)  # type: ignore[arg-type]


def clean(text: str, rules: NameRules) -> str:
    """Steps 1-3 for one level: normalised, transliterated (optionally), sanitised."""
    text = unicodedata.normalize(NORMALIZATION, text)
    if rules.transliterate:
        text = unicodedata.normalize(NORMALIZATION, anyascii(text))
    if text.isprintable():
        # The common case, without a loop per character (a plan cleans 100,000 names):
        # printable text has no control characters, surrogates or NUL, and no white space but
        # the ASCII space, so "/" is all there is to replace and runs of spaces all to collapse.
        text = text.replace("/", REPLACEMENT)
        if "  " in text:
            text = _SPACES.sub(" ", text)
        text = text.strip(" ")
    else:
        out = []
        for ch in text:
            if ch.isspace():
                out.append(" ")  # tabs and line breaks too: step 3 collapses them
            elif ch == "/" or ch == "\0" or unicodedata.category(ch) in ("Cc", "Cs"):
                out.append(REPLACEMENT)
            else:
                out.append(ch)
        text = _WHITESPACE.sub(" ", "".join(out)).strip()
    if rules.portable:
        text = _WINDOWS_CHARS.sub(REPLACEMENT, text).rstrip(". ")
    if text.startswith("."):
        text = REPLACEMENT + text[1:]
    if rules.portable and text.split(".")[0].strip().upper() in _RESERVED:
        head, dot, tail = text.partition(".")
        text = head + REPLACEMENT + dot + tail
    return text or REPLACEMENT


def fit(text: str, max_bytes: int, max_chars: int = 0, *, portable: bool = False) -> str:
    """``text`` cut to at most ``max_bytes`` of UTF-8 (and ``max_chars`` characters), never in the
    middle of a character or between a letter and its accent; trailing spaces (and, portable,
    dots) dropped."""
    if max_chars and len(text) > max_chars:
        text = _cut(text, max_chars)
    if len(text.encode("utf-8", "surrogateescape")) > max_bytes:
        size, keep = 0, 0
        for i, ch in enumerate(text):
            size += len(ch.encode("utf-8", "surrogateescape"))
            if size > max_bytes:
                break
            keep = i + 1
        text = _cut(text, keep)
    text = text.rstrip(". " if portable else " ")
    return text


def _cut(text: str, keep: int) -> str:
    # If what follows the cut attaches to the character before it (a combining accent, a
    # zero-width joiner, a variation selector), that character goes too.
    while 0 < keep < len(text) and _attaches(text[keep]):
        keep -= 1
    return text[:keep]


def _attaches(ch: str) -> bool:
    return (
        unicodedata.combining(ch) != 0
        or unicodedata.category(ch) in ("Mn", "Me", "Mc")
        or ch in "\u200d\ufe0e\ufe0f"
    )


@functools.lru_cache(maxsize=65536)  # artist and album levels repeat across a library
def directory_name(raw: str, rules: NameRules) -> str:
    name = fit(clean(raw, rules), rules.max_name_bytes, rules.name_chars, portable=rules.portable)
    return _validated(name or REPLACEMENT, rules)


def file_name(raw_stem: str, extension: str, rules: NameRules, number: int = 0) -> str:
    """The file name for a rendered last level: the stem made safe and cut to leave room for
    ``.extension`` and any sidecar suffix, `` (N)`` before the extension when ``number`` > 1."""
    return _file_name(clean(raw_stem, rules), extension, rules, number)


def _file_name(stem: str, extension: str, rules: NameRules, number: int) -> str:
    """``file_name`` for a stem that is already ``clean``: a plan names 100,000 files, and
    cleaning twice was a good part of its time."""
    suffix = f".{extension}" if extension else ""
    counter = f" ({number})" if number > 1 else ""
    room = max(SIDECAR_ROOM, len(suffix.encode()))
    stem_bytes = rules.max_name_bytes - room - len(counter)
    stem_chars = rules.name_chars - max(SIDECAR_ROOM, len(suffix)) - len(counter)
    if stem_bytes < 1 or (rules.name_chars and stem_chars < 1):
        raise UnsafeName(f"the filesystem allows only {rules.max_name_bytes} bytes per name")
    stem = fit(stem, stem_bytes, max(stem_chars, 0), portable=rules.portable) or REPLACEMENT
    return _validated(stem + counter + suffix, rules)


def _validated(name: str, rules: NameRules) -> str:
    if not rules.portable and _plainly_valid(name, rules):
        # On Linux a name is valid when it has no "/" or NUL and fits the byte limit, which
        # clean() and fit() guarantee; pathvalidate checks the rest (Windows rules, reserved
        # names) in the portable profile, and anything that fails this cheap test.
        return name
    try:
        validate_filename(
            name,
            platform="universal" if rules.portable else "linux",
            max_len=rules.max_name_bytes,
        )
    except ValidationError as exc:
        raise UnsafeName(f"{name!r} is not a valid file name: {exc.reason.name.lower()}") from None
    return name


def _plainly_valid(name: str, rules: NameRules) -> bool:
    return (
        "/" not in name
        and "\0" not in name
        and name not in (".", "..")
        and 0 < len(name.encode("utf-8", "surrogateescape")) <= rules.max_name_bytes
    )


def target_path(
    root: str, levels: list[str], extension: str, rules: NameRules, number: int = 0
) -> str:
    """The absolute target path: ``root`` + the rendered ``levels`` (the last one names the file),
    each made safe, the whole shortened level by level until it fits the path limits."""
    if not levels:
        raise UnsafeName("the pattern rendered nothing")
    dirs = [directory_name(level, rules) for level in levels[:-1]]
    stem = clean(levels[-1], rules)
    # Joined by hand: the levels hold no "/" (cleaned, validated), and os.path.join was a
    # third of this function's time over a 100,000-file plan.
    prefix = root if root.endswith("/") else root + "/"
    tail = len(f" ({number})" if number > 1 else "") + len(f".{extension}" if extension else "")
    while True:
        name = _file_name(stem, extension, rules, number)
        stem = name[: len(name) - tail]  # what file_name kept of it
        path = prefix + "/".join((*dirs, name))
        too_many_bytes = len(path.encode("utf-8", "surrogateescape")) >= rules.max_path_bytes
        too_many_chars = bool(rules.path_chars) and len(path) > rules.path_chars
        if not (too_many_bytes or too_many_chars):
            return path
        # Shorten the longest level that is still longer than MIN_LEVEL_CHARS by a quarter.
        lengths = [len(d) for d in dirs] + [len(stem)]
        candidates = [i for i, n in enumerate(lengths) if n > MIN_LEVEL_CHARS]
        if not candidates:
            raise UnsafeName(
                f"the path is too long even with every level shortened ({len(path)} characters, "
                f"{len(path.encode())} bytes)"
            )
        i = max(candidates, key=lambda k: lengths[k])
        keep = max(MIN_LEVEL_CHARS, lengths[i] - max(1, lengths[i] // 4))
        if i < len(dirs):
            cut = fit(dirs[i], rules.max_name_bytes, keep, portable=rules.portable)
            dirs[i] = _validated(cut or REPLACEMENT, rules)
        else:
            stem = fit(stem, rules.max_name_bytes, keep, portable=rules.portable) or REPLACEMENT


def name_key(path: str) -> str:
    """What two planned targets collide on: NFC, case-folded (safe on case-insensitive disks)."""
    return unicodedata.normalize(NORMALIZATION, path).casefold()
