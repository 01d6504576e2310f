"""An in-memory inverted index: hash key to postings (track, anchor frame, span, anchor bin).

Postings are kept as parallel NumPy arrays sorted by key; a lookup finds each key's run with a
binary search (no table over the key space, which may be 2^24 keys or more), then gathers the
runs in a few vectorised steps. Adding or removing a track marks the arrays stale; they are
rebuilt on the next lookup. This is the index of tests and benchmarks; the catalog's packed
posting lists (``catalog/fingerprints.py``) answer the same ``lookup`` for a library. Keys whose
postings exceed ``max_postings`` are skipped at query time: a hash that common says little and
costs much.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from tracktiond.fingerprint.peaks import I32
from tracktiond.fingerprint.spectrum import F32
from tracktiond.fingerprint.triplets import Hashes

I64 = np.ndarray[Any, np.dtype[np.int64]]


@dataclass(frozen=True)
class Hits:
    """Pairs of a query hash and a posting with the same key."""

    query: I64  # index into the query's hashes
    track: I32
    t: I32
    span: I32
    f: F32
    weight: np.ndarray[Any, np.dtype[np.float64]] | None = None  # set by the matcher

    def __len__(self) -> int:
        return int(self.query.size)

    def select(self, mask: np.ndarray[Any, Any]) -> Hits:
        return Hits(
            self.query[mask],
            self.track[mask],
            self.t[mask],
            self.span[mask],
            self.f[mask],
            None if self.weight is None else self.weight[mask],
        )

    def weighted(self, weight: np.ndarray[Any, np.dtype[np.float64]]) -> Hits:
        return Hits(self.query, self.track, self.t, self.span, self.f, weight)


def gather(
    keys: np.ndarray[Any, Any], wanted: np.ndarray[Any, Any], max_postings: int
) -> tuple[I64, I64]:
    """For ``wanted`` keys, the pairs (which wanted key, position in ``keys``) of equal keys.

    ``keys`` is sorted; runs longer than ``max_postings`` are left out.
    """
    lo = np.searchsorted(keys, wanted, side="left").astype(np.int64)
    hi = np.searchsorted(keys, wanted, side="right").astype(np.int64)
    count = hi - lo
    count[count > max_postings] = 0
    total = int(count.sum())
    which = np.repeat(np.arange(wanted.size, dtype=np.int64), count)
    # Position within each run: a running index minus where the run began.
    run_start = np.repeat(np.cumsum(count) - count, count)
    pos = np.repeat(lo, count) + (np.arange(total, dtype=np.int64) - run_start)
    return which, pos


class FingerprintIndex:
    def __init__(self, *, max_postings: int = 20_000) -> None:
        self.max_postings = max_postings
        self._tracks: dict[int, tuple[Hashes, int]] = {}  # track -> (hashes, frames)
        self._frozen: tuple[np.ndarray[Any, Any], I32, I32, I32, F32] | None = None

    def add(self, track: int, hashes: Hashes, frames: int) -> None:
        """Index (or re-index) ``track``: its hashes and its length in frames."""
        self._tracks[track] = (hashes, frames)
        self._frozen = None

    def remove(self, track: int) -> None:
        self._tracks.pop(track, None)
        self._frozen = None

    def frames(self, track: int) -> int:
        return self._tracks[track][1]

    def __contains__(self, track: object) -> bool:
        return track in self._tracks

    def __len__(self) -> int:
        return len(self._tracks)

    @property
    def postings(self) -> int:
        return sum(len(h) for h, _ in self._tracks.values())

    def _freeze(self) -> tuple[np.ndarray[Any, Any], I32, I32, I32, F32]:
        if self._frozen is None:
            items = list(self._tracks.items())
            key = np.concatenate([h.key for _, (h, _) in items] or [np.zeros(0, np.uint32)])
            track = np.concatenate(
                [np.full(len(h), tid, np.int32) for tid, (h, _) in items] or [np.zeros(0, np.int32)]
            )
            t = np.concatenate([h.t for _, (h, _) in items] or [np.zeros(0, np.int32)])
            span = np.concatenate([h.span for _, (h, _) in items] or [np.zeros(0, np.int32)])
            f = np.concatenate([h.f for _, (h, _) in items] or [np.zeros(0, np.float32)])
            order = np.argsort(key, kind="stable")
            self._frozen = (key[order], track[order], t[order], span[order], f[order])
        return self._frozen

    def lookup(self, hashes: Hashes) -> Hits:
        """Every posting that shares a key with one of ``hashes``, in the order of ``hashes``."""
        keys, track, t, span, f = self._freeze()
        query, pos = gather(keys, hashes.key, self.max_postings)
        return Hits(query, track[pos], t[pos], span[pos], f[pos])
