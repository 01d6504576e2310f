"""The windows' candidates smoothed into a tracklist: segments of one track each; the rest unknown.

Smoothing is over *hypotheses*, not over one state per window: every verified candidate of every
window joins the hypothesis of its track whose offset (where the track's frame 0 lands in the
set) is within ``same_offset`` seconds of its own, or starts one. A hypothesis becomes a segment
when its evidence adds up: ``min_score`` of weight in all, from at least ``min_windows`` windows
unless it has twice that much. The weight is the aligned hits, each weighing less the more
indexed tracks hold its key (``matcher``): a track found only through a drum loop that other
indexed tracks also play does not add up. A chance match has to repeat at the same offset, in window
after window, to count; a weak match stays unknown rather than become a guess.

Why not a Viterbi path with one track per window (tried first): in a long crossfade, or a short
track mixed in over two others, both tracks are in every window; one state per window drops the
one heard only under the other (measured on generated mixes with 16 s fades: a track in four
lost). Hypotheses may overlap, as tracks in a mix do.

Start and end: a track heard from its first second starts where its frame 0 lands in the set
(the fitted offset: precise even if the fade-in is quiet); one cued in later starts at its first
aligned hit. The end likewise, from the track's length.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from tracktiond.fingerprint.matcher import Candidate


@dataclass(frozen=True)
class SegmentSettings:
    same_offset: float = 2.0  # seconds
    # A segment's weight in all, at least: aligned hashes, those other tracks share weighing
    # less (matcher). 30, where 60 aligned hashes were the bar before the weights: on generated
    # mixes true matches summed 47 and up in 1/df, shared-kit ones 2-16 (docs/identify.md).
    min_score: float = 30.0
    min_windows: int = 2
    # Seconds: a first aligned hit this close to frame 0 means "played from its start". As long
    # as the longest crossfade (32 s): under a long fade, EQ-swept, the first hit the matcher
    # can align comes late, and its time is not where the track starts.
    cued_slack: float = 32.0


@dataclass(frozen=True)
class Window:
    start: float  # seconds in the set
    end: float
    candidates: list[Candidate]


@dataclass(frozen=True)
class Segment:
    track: int
    start: float  # seconds in the set
    end: float
    speed: float  # > 1: played faster than the indexed track
    pitch: float  # semitones (set minus track)
    confidence: float  # 0..1
    aligned: int  # verified hits in all
    weight: float = 0.0  # those hits' IDF-like weights, summed (what min_score bounds)


@dataclass
class _Hypothesis:
    track: int
    offset: float  # frames, of the strongest candidate so far
    members: list[Candidate] = field(default_factory=list)

    @property
    def aligned(self) -> int:
        return sum(c.aligned for c in self.members)

    @property
    def weight(self) -> float:
        return sum(c.weight for c in self.members)


def smooth(
    windows: list[Window],
    frame_seconds: float,
    bins_per_semitone: float,
    track_seconds: dict[int, float],
    settings: SegmentSettings,
) -> list[Segment]:
    s = settings
    hypotheses: list[_Hypothesis] = []
    for window in windows:
        for cand in window.candidates:
            near = [
                h
                for h in hypotheses
                if h.track == cand.track
                and abs(h.offset - cand.offset) * frame_seconds <= s.same_offset
            ]
            if near:
                h = max(near, key=lambda h: h.aligned)
            else:
                h = _Hypothesis(cand.track, cand.offset)
                hypotheses.append(h)
            h.members.append(cand)
            h.offset = max(h.members, key=lambda c: c.aligned).offset
    out = []
    for h in hypotheses:
        weight = h.weight
        if weight < s.min_score or (len(h.members) < s.min_windows and weight < 2 * s.min_score):
            continue
        out.append(_segment(h, windows, frame_seconds, bins_per_semitone, track_seconds, s))
    out.sort(key=lambda seg: (seg.start, seg.track))
    return out


def _segment(
    h: _Hypothesis,
    windows: list[Window],
    frame_seconds: float,
    bins_per_semitone: float,
    track_seconds: dict[int, float],
    s: SegmentSettings,
) -> Segment:
    aligned = h.aligned
    best = max(h.members, key=lambda c: c.aligned)
    speed, offset = best.speed, best.offset * frame_seconds
    first = min(c.first for c in h.members) * frame_seconds
    last = max(c.last for c in h.members) * frame_seconds
    length = track_seconds.get(h.track, 0.0) / speed
    start = offset if first - offset <= s.cued_slack else first
    end = offset + length if offset + length - last <= s.cued_slack else last
    start = max(start, 0.0, windows[0].start)
    end = min(end, windows[-1].end)
    # Confidence grows with the evidence: 0.5 at the threshold, 0.75 at twice it, ...
    confidence = 1.0 - 0.5 ** (h.weight / s.min_score)
    return Segment(
        track=h.track,
        start=start,
        end=end,
        speed=speed,
        pitch=best.pitch / bins_per_semitone,
        confidence=round(confidence, 3),
        aligned=aligned,
        weight=round(h.weight, 1),
    )
