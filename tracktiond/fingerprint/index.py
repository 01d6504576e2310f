"""An in-memory inverted index: hash key to postings (track, anchor frame, span, anchor bin).

Postings are kept as parallel NumPy arrays sorted by key, with a table of where each key's run
starts (the key space is small, ``TripletSettings.key_space``), so a lookup of a window's hashes
is a few vectorised gathers. Adding or removing a track marks the arrays stale; they are rebuilt
on the next lookup (the catalog's packed posting lists, for large libraries, are the next step:
docs/identify.md). Keys whose postings exceed ``max_postings`` are skipped at query time: a hash
that common says little and costs much.
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

    def __len__(self) -> int:
        return int(self.query.size)

    def select(self, mask: np.ndarray[Any, np.dtype[np.bool_]]) -> Hits:
        return Hits(self.query[mask], self.track[mask], self.t[mask], self.span[mask], self.f[mask])


class FingerprintIndex:
    def __init__(self, key_space: int, *, max_postings: int = 20_000) -> None:
        self.key_space = key_space
        self.max_postings = max_postings
        self._tracks: dict[int, tuple[Hashes, int]] = {}  # track -> (hashes, frames)
        self._frozen: tuple[I64, I32, I32, I32, F32] | None = None

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

    def _freeze(self) -> tuple[I64, I32, I32, I32, F32]:
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
            starts = np.zeros(self.key_space + 1, dtype=np.int64)
            starts[1:] = np.cumsum(np.bincount(key, minlength=self.key_space)[: self.key_space])
            self._frozen = (starts, track[order], t[order], span[order], f[order])
        return self._frozen

    def lookup(self, hashes: Hashes) -> Hits:
        starts, track, t, span, f = self._freeze()
        key = hashes.key.astype(np.int64)
        lo, hi = starts[key], starts[key + 1]
        count = hi - lo
        count[count > self.max_postings] = 0
        total = int(count.sum())
        query = np.repeat(np.arange(key.size, dtype=np.int64), count)
        # Position within each run: a running index minus where the run began.
        run_start = np.repeat(np.cumsum(count) - count, count)
        pos = np.repeat(lo, count) + (np.arange(total, dtype=np.int64) - run_start)
        return Hits(query, track[pos], t[pos], span[pos], f[pos])
