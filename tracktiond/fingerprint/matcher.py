"""One query window's hits into verified (track, offset, speed) candidates.

Each hit (a query triplet and an indexed one with the same key) proposes a speed factor, the
ratio of the reference triplet's span to the query's (noisy: spans are tens of frames, peaks
move by a frame). Votes go to a grid of speed factors near that proposal and to the reference
frame that would play at the window's centre at that speed; true matches pile up in one cell,
chance hits spread. The best cells are then *verified*: their hits are fitted with a line
(query frame = offset + reference frame / speed), and only hits within ``time_tolerance``
frames of the line and ``pitch_tolerance`` bins of the common pitch offset count, each query
hash once. That count, not the vote, picks a track's best candidate, the only one of that track a
window gives.

Each aligned hash also carries an IDF-like *weight*, ``min(1, m / df)``: ``df`` is how many
indexed tracks hold its key (counted from the window's hits, so any posting source gives it),
``m`` the median of that count over the window's query hashes (at least 1), the level chance
collisions set as the index grows (a median, not a mean: the keys that many tracks share are
the few it must not be set by). A hash that one track holds, or no more than chance, weighs 1;
a sound several tracks share (a drum kit, a sample pack: their triplets have the same keys at
any tempo) weighs 1/df, so a track found only through a drum loop that other library tracks
also play does not add up to a match. Measured on generated mixes: the shared-kit false
matches had 0-3 aligned hashes their track alone held (of 34-115), true ones tens; summed 1/df,
false 2-16, true 47 and up but for two weak ones (docs/identify.md). The candidate's weight,
the sum, is what ``segments`` thresholds.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from tracktiond.fingerprint.index import Hits
from tracktiond.fingerprint.triplets import Hashes

# A vote cell packs (track, speed step, offset cell) into one int64 for np.unique; the offset
# cell can be negative (a track starting inside the window), so it is stored biased.
_CELL_BIAS = 1 << 31


@dataclass(frozen=True)
class MatchSettings:
    max_speed_change: float = 0.15  # speed factors 1/1.15 ... 1.15
    speed_step: float = 0.01  # grid step (relative)
    span_slack: float = 0.05  # how far a hit's own speed proposal may be off
    vote_frames: int = 8  # width of an offset cell
    time_tolerance: float = 4.0  # frames from the fitted line
    pitch_tolerance: float = 1.0  # bins from the common pitch offset
    candidates: int = 4  # cells verified per window
    min_aligned: int = 12  # verified hits below this are not a candidate


@dataclass(frozen=True)
class Candidate:
    track: int
    offset: float  # query frame at which the reference's frame 0 lies
    speed: float  # > 1: the query plays the reference faster
    pitch: float  # bins (query minus reference)
    aligned: int  # distinct query hashes on the line
    first: int  # query frames of the first and last aligned hashes
    last: int
    weight: float = 0.0  # the aligned hashes' IDF-like weights, summed (module docstring)


def match_window(
    query: Hashes,
    hits: Hits,
    centre: float,
    settings: MatchSettings,
    *,
    window_hashes: int | None = None,
) -> list[Candidate]:
    """The verified candidates of one window, best first (``centre``: its middle frame).

    ``window_hashes``: how many query hashes the window holds (those without hits included),
    for the chance level of the weights; by default, those with hits.
    """
    s = settings
    if len(hits) == 0:
        return []
    hits = _weighted(hits, window_hashes)
    qt = query.t[hits.query].astype(np.float64)
    qspan = query.span[hits.query].astype(np.float64)
    proposal = np.log(hits.span / qspan)
    limit = np.log1p(s.max_speed_change)
    keep = np.abs(proposal) <= limit + s.span_slack
    hits, qt, proposal = hits.select(keep), qt[keep], proposal[keep]
    if len(hits) == 0:
        return []
    grid = np.arange(-limit, limit + 1e-9, np.log1p(s.speed_step))
    reach = int(np.ceil(s.span_slack / np.log1p(s.speed_step)))
    nearest = np.rint((proposal + limit) / np.log1p(s.speed_step)).astype(np.int64)
    votes_cell = []
    for d in range(-reach, reach + 1):
        g = nearest + d
        ok = (g >= 0) & (g < grid.size)
        speed = np.exp(grid[g[ok]])
        at_centre = hits.t[ok] - (qt[ok] - centre) * speed
        cell = np.floor(at_centre / s.vote_frames).astype(np.int64)
        votes_cell.append(
            (hits.track[ok].astype(np.int64) << 40)
            | (g[ok] << 32)
            | ((cell + _CELL_BIAS) & 0xFFFFFFFF)
        )
    cells, counts = np.unique(np.concatenate(votes_cell), return_counts=True)
    best = cells[np.argsort(counts)[::-1][: 4 * s.candidates]]
    # One candidate per track, its best: a loop-based track also matches itself a bar or two
    # off, and those echoes would crowd other tracks of the window out.
    found: dict[int, Candidate] = {}
    for cell in best:
        track = int(cell >> 40)
        speed0 = float(np.exp(grid[int((cell >> 32) & 0xFF)]))
        ref_centre = (int(cell & 0xFFFFFFFF) - _CELL_BIAS + 0.5) * s.vote_frames
        cand = _verify(query, hits, qt, track, speed0, ref_centre, centre, s)
        if cand is not None and (track not in found or found[track].aligned < cand.aligned):
            found[track] = cand
    return sorted(found.values(), key=lambda c: -c.aligned)[: s.candidates]


def _weighted(hits: Hits, window_hashes: int | None) -> Hits:
    """``hits`` with ``weight``: each hit's query hash's IDF-like weight (module docstring)."""
    pairs = np.unique((hits.query.astype(np.int64) << 24) | hits.track.astype(np.int64))
    queries, df = np.unique(pairs >> 24, return_counts=True)
    # Query hashes without hits hold no key of the index: df 0, in the median too.
    zeros = max(0, (window_hashes or queries.size) - queries.size)
    chance = max(1.0, float(np.median(np.concatenate([np.zeros(zeros), df]))))
    weight = np.minimum(1.0, chance / df)
    return hits.weighted(weight[np.searchsorted(queries, hits.query)])


def _verify(
    query: Hashes,
    hits: Hits,
    qt: np.ndarray,
    track: int,
    speed: float,
    ref_centre: float,
    centre: float,
    s: MatchSettings,
) -> Candidate | None:
    mine = hits.track == track
    rt = hits.t[mine].astype(np.float64)
    q = qt[mine]
    dq = hits.query[mine]
    pitch = (query.f[dq] - hits.f[mine]).astype(np.float64)
    near = np.abs(rt - (q - centre) * speed - ref_centre) <= 1.5 * s.vote_frames
    if near.sum() < s.min_aligned:
        return None
    rt, q, dq, pitch = rt[near], q[near], dq[near], pitch[near]
    slope, intercept = 1.0 / speed, centre - ref_centre / speed
    inliers = np.ones(rt.size, dtype=bool)
    for _ in range(3):
        # Refit the line on the inliers; the spread shrinks, so do the outliers it admits.
        if inliers.sum() < s.min_aligned or np.ptp(rt[inliers]) < 4 * s.vote_frames:
            return None  # too few, or all at one instant (a repeated sound): no line to fit
        slope, intercept = np.polyfit(rt[inliers], q[inliers], 1)
        if not (1 / (1 + s.max_speed_change + 0.02) <= slope <= 1 + s.max_speed_change + 0.02):
            return None
        common = float(np.median(pitch[inliers]))
        inliers = (np.abs(q - (intercept + slope * rt)) <= s.time_tolerance) & (
            np.abs(pitch - common) <= s.pitch_tolerance
        )
    aligned, first = np.unique(dq[inliers], return_index=True)
    if aligned.size < s.min_aligned:
        return None
    assert hits.weight is not None
    weight = float(hits.weight[mine][near][inliers][first].sum())
    qs = q[inliers]
    return Candidate(
        track=track,
        offset=float(intercept),
        speed=float(1.0 / slope),
        pitch=float(np.median(pitch[inliers])),
        aligned=int(aligned.size),
        first=int(qs.min()),
        last=int(qs.max()),
        weight=weight,
    )
