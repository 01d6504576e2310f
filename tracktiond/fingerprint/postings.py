"""Postings and peaks as bytes: what the catalog stores of a fingerprint.

A **posting** (an indexed triplet) is packed into one int64:
``track (24 bits) | anchor frame (20) | span (8) | anchor bin × 32 (12)`` — 16.7 million track
numbers, 4.6 hours of frames at 16 ms, spans up to 255 frames (the triplets stop at
``max_span``), anchor bins below 128 to 1/32 bin (the matcher compares pitch to a bin; a
thirty-second costs it nothing). A **batch** of postings — the tracks one write indexed — is
stored sorted by key as two blobs: the keys as zlib-compressed deltas (sorted keys of a large
batch differ by 0, 1 or 2, which compress to under a byte each) and the packed postings as
raw little-endian int64 (random bits: compression would buy nothing). About 9 bytes per posting
in all, whatever the backend.

A set's **peaks** (kept so a set is identified again, when the library grows, without decoding
it again) are frame deltas, bins and levels, compressed: a few bytes per peak.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np

from tracktiond.fingerprint.index import Hits, gather
from tracktiond.fingerprint.peaks import Peaks
from tracktiond.fingerprint.triplets import Hashes

TRACK_BITS, T_BITS, SPAN_BITS, F_BITS = 24, 20, 8, 12
F_SCALE = 32  # anchor bins are stored in 1/32 bin
MAX_TRACK = (1 << TRACK_BITS) - 1
MAX_FRAMES = 1 << T_BITS

_T_SHIFT = SPAN_BITS + F_BITS
_TRACK_SHIFT = T_BITS + _T_SHIFT

I64 = np.ndarray[Any, np.dtype[np.int64]]


class PostingRangeError(ValueError):
    """A track number or a hash field does not fit the packed posting."""


@dataclass(frozen=True)
class Batch:
    """Postings sorted by key: ``keys`` (uint32) and the packed ``postings`` (int64)."""

    keys: np.ndarray[Any, np.dtype[np.uint32]]
    postings: I64

    def __len__(self) -> int:
        return int(self.keys.size)

    @staticmethod
    def empty() -> Batch:
        return Batch(np.zeros(0, np.uint32), np.zeros(0, np.int64))

    @staticmethod
    def of(track: int, hashes: Hashes) -> Batch:
        """One track's index hashes as a batch."""
        if not 0 <= track <= MAX_TRACK:
            raise PostingRangeError(f"track number {track} does not fit {TRACK_BITS} bits")
        t, span = hashes.t.astype(np.int64), hashes.span.astype(np.int64)
        f = np.rint(hashes.f.astype(np.float64) * F_SCALE).astype(np.int64)
        if hashes.key.size and (
            t.min() < 0
            or t.max() >= MAX_FRAMES
            or span.min() < 0
            or span.max() >= 1 << SPAN_BITS
            or f.min() < 0
            or f.max() >= 1 << F_BITS
        ):
            raise PostingRangeError("a hash's frame, span or bin is out of the packed range")
        packed = (np.int64(track) << _TRACK_SHIFT) | (t << _T_SHIFT) | (span << F_BITS) | f
        order = np.argsort(hashes.key, kind="stable")
        return Batch(hashes.key[order].astype(np.uint32), packed[order])

    @staticmethod
    def merge(parts: list[Batch]) -> Batch:
        if not parts:
            return Batch.empty()
        keys = np.concatenate([p.keys for p in parts])
        postings = np.concatenate([p.postings for p in parts])
        order = np.argsort(keys, kind="stable")
        return Batch(keys[order], postings[order])

    def tracks(self) -> I64:
        return (self.postings >> _TRACK_SHIFT).astype(np.int64)

    def without(self, dead: set[int]) -> Batch:
        """This batch minus the postings of tracks in ``dead``."""
        if not dead:
            return self
        keep = ~np.isin(self.tracks(), np.fromiter(dead, np.int64, len(dead)))
        return Batch(self.keys[keep], self.postings[keep])

    # -- bytes ---------------------------------------------------------------------------------

    def encode(self) -> tuple[bytes, bytes]:
        deltas = np.diff(self.keys.astype(np.int64), prepend=np.int64(0)).astype("<u4")
        return zlib.compress(deltas.tobytes(), 6), self.postings.astype("<i8").tobytes()

    @staticmethod
    def decode(keys_blob: bytes, postings_blob: bytes) -> Batch:
        deltas = np.frombuffer(zlib.decompress(keys_blob), dtype="<u4")
        keys = np.cumsum(deltas, dtype=np.uint64).astype(np.uint32)
        postings = np.frombuffer(postings_blob, dtype="<i8").astype(np.int64)
        if keys.size != postings.size:
            raise ValueError(f"a batch of {keys.size} keys holds {postings.size} postings")
        return Batch(keys, postings)

    # -- lookup --------------------------------------------------------------------------------

    def hits(self, sorted_keys: np.ndarray[Any, Any], which: I64, max_postings: int) -> Hits:
        """Hits of query hashes whose keys are ``sorted_keys`` (``which``: their indexes in the
        query), unpacked."""
        wanted, pos = gather(self.keys, sorted_keys, max_postings)
        packed = self.postings[pos]
        return Hits(
            which[wanted],
            (packed >> _TRACK_SHIFT).astype(np.int32),
            ((packed >> _T_SHIFT) & (MAX_FRAMES - 1)).astype(np.int32),
            ((packed >> F_BITS) & ((1 << SPAN_BITS) - 1)).astype(np.int32),
            ((packed & ((1 << F_BITS) - 1)) / F_SCALE).astype(np.float32),
        )


def encode_peaks(peaks: Peaks) -> bytes:
    t = peaks.t.astype(np.int64)
    deltas = np.diff(t, prepend=np.int64(0)).astype("<u4")
    body = (
        np.array([len(peaks)], "<u4").tobytes()
        + deltas.tobytes()
        + peaks.f.astype("<f4").tobytes()
        + peaks.level.astype("<f4").tobytes()
    )
    return zlib.compress(body, 6)


def decode_peaks(blob: bytes) -> Peaks:
    body = zlib.decompress(blob)
    n = int(np.frombuffer(body[:4], "<u4")[0])
    if len(body) != 4 + 12 * n:
        raise ValueError(f"stored peaks are {len(body)} bytes, not the {4 + 12 * n} of {n} peaks")
    deltas = np.frombuffer(body[4 : 4 + 4 * n], "<u4")
    f = np.frombuffer(body[4 + 4 * n : 4 + 8 * n], "<f4").astype(np.float32)
    level = np.frombuffer(body[4 + 8 * n :], "<f4").astype(np.float32)
    return Peaks(np.cumsum(deltas, dtype=np.int64).astype(np.int32), f, level)


class StoredIndex:
    """The ``PostingSource`` of stored batches: each lookup reads every batch once, one at a
    time (``batches`` yields them decoded), so memory holds one batch and the hits.

    ``frames`` maps the live track numbers to their lengths; postings of any other track (one
    removed, or re-indexed under a new number, whose batch was not compacted yet) are dropped.
    A key is skipped in a batch holding more than ``max_postings`` of it.
    """

    def __init__(
        self,
        batches: Callable[[], Iterable[Batch]],
        frames: dict[int, int],
        *,
        max_postings: int = 20_000,
    ) -> None:
        self._batches = batches
        self._frames = frames
        self.max_postings = max_postings
        top = max(frames, default=-1)
        self._live = np.zeros(top + 2, dtype=bool)
        self._live[list(frames)] = True

    def frames(self, track: int) -> int:
        return self._frames[track]

    def lookup(self, hashes: Hashes) -> Hits:
        order = np.argsort(hashes.key, kind="stable").astype(np.int64)
        keys = hashes.key[order]
        parts = []
        for batch in self._batches():
            hits = batch.hits(keys, order, self.max_postings)
            track = hits.track.astype(np.int64)
            live = np.zeros(len(hits), dtype=bool)
            known = track < self._live.size - 1
            live[known] = self._live[track[known]]
            parts.append(hits.select(live))
        if not parts:
            none = np.zeros(0, np.int32)
            return Hits(np.zeros(0, np.int64), none, none, none, np.zeros(0, np.float32))
        return Hits(
            np.concatenate([p.query for p in parts]),
            np.concatenate([p.track for p in parts]),
            np.concatenate([p.t for p in parts]),
            np.concatenate([p.span for p in parts]),
            np.concatenate([p.f for p in parts]),
        )
