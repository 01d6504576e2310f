"""Matching tracklist entries to library recordings: by names (rapidfuzz) and duration.

Candidates first, scores second. The catalog keeps each recording's search words
(``recording_words``, ``media.names.words``); an entry's candidates are the recordings sharing
the most words with its artist and title. Words that many recordings have ("love", "night")
find everything and say little: of each entry's words only those held by at most
``COMMON_WORD`` recordings are looked up (the two rarest when all are common), so a tracklist
reads a few thousand rows, never the whole library — two queries for all its entries (how
common each word is, counted in the index; then who has the chosen ones). Each candidate is
then scored:

=========  ======  ==================================================================
part       weight  how
=========  ======  ==================================================================
title      0.45    ``token_sort_ratio`` of the normalised titles, with and without the
                   version in brackets (the better of the two)
artist     0.35    ``token_set_ratio`` of the normalised artists ("A & B" contains "A")
version    0.10    ``partial_ratio`` of the entry's version ("X Remix") in the title
duration   0.10    1 when the track is at least as long as the part played (minus 30 s)
=========  ======  ==================================================================

Parts an entry lacks (no version, no times) drop out and the others are reweighted. The
replaced system weighted date and event too: those describe sets, not tracks, and are not used.
A score ≥ 0.85 is a match, unless a second candidate is within 0.03 of it (ambiguous: both
kept); ≥ 0.6 a possible match; below, unmatched. An entry whose nested ``FILE`` (rekordbox) is
a cataloged file is that recording, score 1. "ID - ID" entries are unknown, never matched.
"""

from __future__ import annotations

import re
import uuid
from collections import Counter
from collections.abc import Sequence
from typing import Protocol

from rapidfuzz import fuzz

from tracktiond.catalog.tracklistvalues import (
    AMBIGUOUS,
    MATCHED,
    POSSIBLE,
    UNKNOWN,
    UNMATCHED,
    Candidate,
    EntryDraft,
    EntryMatch,
    LibraryTrack,
)
from tracktiond.media.names import normalise, words

MATCH = 0.85
POSSIBLE_MATCH = 0.6
AMBIGUITY = 0.03
CANDIDATES_PER_ENTRY = 25
COMMON_WORD = 500  # recordings holding a word beyond which it is not looked up
KEPT_CANDIDATES = 5
WEIGHTS = {"title": 0.45, "artist": 0.35, "version": 0.10, "duration": 0.10}
PLAYED_SLACK = 30.0  # seconds a played part may exceed the track (loops, a slow-down)

_BRACKETS = re.compile(r"[\(\[][^\)\]]*[\)\]]")


class Library(Protocol):
    """What matching asks of the catalog (``Catalog`` provides it)."""

    async def candidates_by_words(self, wanted: Sequence[str]) -> dict[str, list[str]]: ...

    async def word_frequencies(self, wanted: Sequence[str]) -> dict[str, int]: ...

    async def library_tracks(
        self, recording_ids: Sequence[uuid.UUID]
    ) -> dict[uuid.UUID, LibraryTrack]: ...

    async def audio_at(self, paths: Sequence[str]) -> dict[str, uuid.UUID]: ...


def entry_words(entry: EntryDraft) -> set[str]:
    return words(entry.artist or "", artist=True) | words(entry.title or "")


def score(entry: EntryDraft, track: LibraryTrack) -> float:
    """How well ``track`` fits ``entry``, 0..1 (the table in the module docstring)."""
    parts: dict[str, float] = {}
    title = normalise(entry.title or "")
    full = normalise(f"{entry.title or ''} {entry.version or ''}")
    theirs = normalise(track.title or "")
    theirs_bare = normalise(_BRACKETS.sub(" ", track.title or ""))
    parts["title"] = (
        max(fuzz.token_sort_ratio(full, theirs), fuzz.token_sort_ratio(title, theirs_bare)) / 100
    )
    if entry.artist:
        parts["artist"] = (
            fuzz.token_set_ratio(
                normalise(entry.artist, artist=True), normalise(track.artist or "", artist=True)
            )
            / 100
        )
    if entry.version:
        parts["version"] = fuzz.partial_ratio(normalise(entry.version), theirs) / 100
    if entry.start is not None and entry.end is not None and track.duration:
        played = entry.end - entry.start
        parts["duration"] = 1.0 if played <= track.duration + PLAYED_SLACK else 0.0
    total = sum(WEIGHTS[k] for k in parts)
    return sum(WEIGHTS[k] * v for k, v in parts.items()) / total


def _verdict(ranked: list[tuple[float, LibraryTrack]]) -> EntryMatch:
    if not ranked or ranked[0][0] < POSSIBLE_MATCH:
        kept = tuple(_candidate(s, t) for s, t in ranked[:KEPT_CANDIDATES] if s >= 0.4)
        return EntryMatch(UNMATCHED, None, ranked[0][0] if ranked else None, kept, "names")
    best, track = ranked[0]
    close = [(s, t) for s, t in ranked if s >= best - AMBIGUITY and s >= POSSIBLE_MATCH]
    kept = tuple(_candidate(s, t) for s, t in ranked[:KEPT_CANDIDATES] if s >= POSSIBLE_MATCH)
    if best >= MATCH and len(close) > 1:
        return EntryMatch(AMBIGUOUS, track.recording_id, best, kept, "names")
    status = MATCHED if best >= MATCH else POSSIBLE
    return EntryMatch(status, track.recording_id, best, kept, "names")


def _candidate(s: float, t: LibraryTrack) -> Candidate:
    return Candidate(t.recording_id, s, t.path, t.artist, t.title)


async def match_entries(
    library: Library, entries: Sequence[EntryDraft], *, exclude: uuid.UUID | None = None
) -> list[EntryMatch]:
    """A match for each entry, in order; ``exclude`` (the set itself) is never a candidate."""
    by_file = await library.audio_at([e.source_path for e in entries if e.source_path])
    wanted = {e.position: entry_words(e) for e in entries if not e.unknown}
    frequency = await library.word_frequencies(sorted({w for ws in wanted.values() for w in ws}))
    for position, ws in wanted.items():
        known = sorted((frequency[w], w) for w in ws if w in frequency)
        rare = {w for n, w in known if n <= COMMON_WORD}
        wanted[position] = rare if rare else {w for _, w in known[:2]}
    holders = await library.candidates_by_words(sorted({w for ws in wanted.values() for w in ws}))
    shortlist: dict[int, list[uuid.UUID]] = {}
    for position, ws in wanted.items():
        counts: Counter[str] = Counter()
        for w in ws:
            counts.update(holders.get(w, ()))
        if exclude is not None:
            counts.pop(str(exclude), None)
            counts.pop(exclude.hex, None)
        # A candidate shares at least half of the words looked up (one, for short names):
        # a typo costs one word, a recording sharing a single word of five is not the track.
        floor = max(1, len(ws) // 2)
        shortlist[position] = [
            uuid.UUID(r) for r, n in counts.most_common(CANDIDATES_PER_ENTRY) if n >= floor
        ]
    tracks = await library.library_tracks(
        sorted({r for ids in shortlist.values() for r in ids} | set(by_file.values()), key=str)
    )
    out = []
    for entry in entries:
        if entry.unknown:
            out.append(EntryMatch(UNKNOWN))
            continue
        direct = by_file.get(entry.source_path or "")
        if direct is not None and direct in tracks:
            t = tracks[direct]
            out.append(EntryMatch(MATCHED, direct, 1.0, (_candidate(1.0, t),), "file"))
            continue
        ranked = sorted(
            ((score(entry, tracks[r]), tracks[r]) for r in shortlist.get(entry.position, ())),
            key=lambda st: (-st[0], str(st[1].recording_id)),
        )
        out.append(_verdict(ranked))
    return out
