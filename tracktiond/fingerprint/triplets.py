"""Triplets of spectral peaks into hashes of ratios, which time-stretch and pitch shift keep.

For three peaks ``a, b, c`` in time order (``c`` within ``max_span`` frames of ``a``):

* the **time-gap ratio** ``(t_b - t_a) / (t_c - t_a)``: a time-stretch (or a resampling) scales
  every gap by the same factor, so the ratio stays; quantised to ``time_levels`` levels;
* the **frequency-gap ratio** ``(f_b - f_a) / (|f_b - f_a| + |f_c - f_b|)`` (in [-1, 1]) and the
  sign of ``f_c - f_b``: the shape of the triplet on the log-frequency axis, where a pitch shift
  is a translation, so differences (and their ratio) stay; and the coarse size of the gaps
  (octave-wide classes of ``|f_b - f_a| + |f_c - f_b|``), for a few more bits that also stay;
* a **coarse band**: which ``band_bins``-wide band ``f_a`` lies in. A pitch shift moves it, but
  consistently for every triplet of a track: it separates bass from treble triplets, and the
  matcher measures the pitch offset from the peaks themselves (``f_a`` is kept in each posting).

Each hash keeps, besides its key, the anchor's frame ``t``, the triplet's span ``t_c - t_a`` (its
ratio between query and reference estimates the speed factor) and the anchor's frequency ``f``.
The index uses a sparser fan-out than a query (``index_fanout`` vs ``query_fanout``): every
triplet an index holds is among those a query forms from the same peaks, at a fraction of the
storage.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import combinations
from typing import Any

import numpy as np

from tracktiond.fingerprint.peaks import I32, Peaks
from tracktiond.fingerprint.spectrum import F32

U32 = np.ndarray[Any, np.dtype[np.uint32]]


@dataclass(frozen=True)
class TripletSettings:
    index_fanout: int = 4  # the next peaks an anchor pairs among: C(4, 2) = 6 triplets
    query_fanout: int = 6  # C(6, 2) = 15 triplets
    min_gap: int = 1  # frames between consecutive peaks of a triplet
    max_span: int = 72  # frames (1.15 s) from the first to the third peak
    time_levels: int = 8  # coarse: key-locked stretching moves onsets by a frame or two
    freq_levels: int = 16
    # The three terms below add ~2.5 bits of key entropy (collision entropy 10.3 -> 12.8 bits)
    # and cut chance hits per query window tenfold, at 10-25 % of the aligned hits of a true
    # match (measured on 16 generated tracks under every change the issue lists; docs/identify.md).
    size_levels: int = 2  # classes per octave of the gaps' size |f_b - f_a| + |f_c - f_b|
    # Classes per octave of the span t_c - t_a (0: not in the key). The one term a speed change
    # moves: one class per octave is wide enough that +-8 % moves few triplets across a border.
    span_levels: int = 1
    loudest: bool = True  # which of the three peaks is the loudest (3 values)
    band_bins: int = 12  # half an octave at 24 bins per octave
    min_freq_gaps: float = 2.0  # bins: a triplet on one note carries no shape
    max_bin: float = 128.0  # anchor bins are below this (the packed posting's limit)

    @property
    def bands(self) -> int:
        return int(np.ceil(self.max_bin / self.band_bins))

    @property
    def sizes(self) -> int:
        # Sizes run from min_freq_gaps to twice max_bin (two gaps across the whole axis).
        return int(np.ceil(np.log2(2 * self.max_bin / self.min_freq_gaps) * self.size_levels))

    @property
    def spans(self) -> int:
        if self.span_levels <= 0:
            return 1
        return int(np.floor(np.log2(max(self.max_span, 2)) * self.span_levels)) + 1

    @property
    def key_space(self) -> int:
        """Keys are below this (a mixed-radix number of the terms; band outermost)."""
        return self.bands * self.per_band

    @property
    def per_band(self) -> int:
        """The key distance between two neighbouring bands (all else equal)."""
        return (
            self.sizes
            * 2
            * self.freq_levels
            * self.time_levels
            * self.spans
            * (3 if self.loudest else 1)
        )


@dataclass(frozen=True)
class Hashes:
    key: U32
    t: I32  # anchor frame
    span: I32  # frames from the first to the third peak
    f: F32  # anchor's fractional log bin

    def __len__(self) -> int:
        return int(self.key.size)

    def select(self, which: np.ndarray[Any, Any]) -> Hashes:
        """The hashes a boolean mask or an index array picks."""
        return Hashes(self.key[which], self.t[which], self.span[which], self.f[which])


def triplet_hashes(peaks: Peaks, settings: TripletSettings, *, fanout: int) -> Hashes:
    """The hashes of ``peaks`` (sorted by frame), ``C(fanout, 2)`` triplets per anchor at most."""
    s = settings
    n = len(peaks)
    t, f = peaks.t.astype(np.int64), peaks.f.astype(np.float64)
    level = peaks.level.astype(np.float64)
    # For each anchor, the next `fanout` peaks at least min_gap frames later and within the span:
    # look a few times further ahead than the fan-out, as several peaks can share a frame.
    ahead = 4 * fanout
    idx = np.arange(n)[:, None] + np.arange(1, ahead + 1)[None, :]
    inside = idx < n
    idx = np.where(inside, idx, n - 1) if n else idx
    gap = t[idx] - t[:, None] if n else np.zeros_like(idx)
    valid = inside & (gap >= s.min_gap) & (gap <= s.max_span)
    rank = np.cumsum(valid, axis=1)
    chosen = valid & (rank <= fanout)
    # Compact each row's chosen columns to the left: a (n, fanout) table of partners (or -1).
    partners = np.full((n, fanout), -1, dtype=np.int64)
    rows, cols = np.nonzero(chosen)
    partners[rows, rank[rows, cols] - 1] = idx[rows, cols]
    keys, anchors, spans = [], [], []
    for a, b in combinations(range(fanout), 2):
        j, k = partners[:, a], partners[:, b]
        ok = (j >= 0) & (k >= 0)
        i = np.nonzero(ok)[0]
        j, k = j[ok], k[ok]
        dt1, dt2 = t[j] - t[i], t[k] - t[i]
        g1, g2 = f[j] - f[i], f[k] - f[j]
        size = np.abs(g1) + np.abs(g2)
        ok = (dt2 - dt1 >= s.min_gap) & (size >= s.min_freq_gaps)
        i, dt1, dt2, g1, g2, size = i[ok], dt1[ok], dt2[ok], g1[ok], g2[ok], size[ok]
        qt = np.clip((dt1 / dt2 * s.time_levels).astype(np.int64), 0, s.time_levels - 1)
        rho = g1 / size
        qf = np.clip(((rho + 1) / 2 * s.freq_levels).astype(np.int64), 0, s.freq_levels - 1)
        sign = (g2 > 0).astype(np.int64)
        qsize = np.clip(
            np.floor(np.log2(size / s.min_freq_gaps) * s.size_levels).astype(np.int64),
            0,
            s.sizes - 1,
        )
        band = np.clip((f[i] / s.band_bins).astype(np.int64), 0, s.bands - 1)
        key = (((band * s.sizes + qsize) * 2 + sign) * s.freq_levels + qf) * s.time_levels + qt
        if s.span_levels > 0:
            qspan = np.floor(np.log2(dt2) * s.span_levels).astype(np.int64)
            key = key * s.spans + np.clip(qspan, 0, s.spans - 1)
        if s.loudest:
            lv = level[np.stack([i, j[ok], k[ok]])]
            key = key * 3 + np.argmax(lv, axis=0)
        keys.append(key)
        anchors.append(i)
        spans.append(dt2)
    if not keys:
        return Hashes(
            np.zeros(0, np.uint32),
            np.zeros(0, np.int32),
            np.zeros(0, np.int32),
            np.zeros(0, np.float32),
        )
    anchor = np.concatenate(anchors)
    order = np.argsort(anchor, kind="stable")
    anchor = anchor[order]
    return Hashes(
        np.concatenate(keys)[order].astype(np.uint32),
        peaks.t[anchor].astype(np.int32),
        np.concatenate(spans)[order].astype(np.int32),
        peaks.f[anchor].astype(np.float32),
    )
