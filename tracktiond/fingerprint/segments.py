"""The windows' candidates smoothed into a tracklist: segments of one track each, or unknown.

A Viterbi pass over the windows: each window's states are its verified candidates and "unknown".
A candidate scores its aligned hits beyond ``min_aligned`` (below it: a loss), unknown scores 0;
going from a candidate to one of the same track and offset (within ``same_offset`` seconds) costs
nothing, any other change costs ``switch_penalty``. So one stray window cannot insert a track or
split one, a weak match stays unknown rather than become a guess, and two tracks in a crossfade
hand over where the evidence turns. Runs of the same track and offset are then segments.

Start and end: a track heard from its first second starts where its frame 0 lands in the set
(the fitted offset: precise even if the fade-in is quiet); one cued in later starts at its first
aligned hit. The end likewise, from the track's length.
"""

from __future__ import annotations

from dataclasses import dataclass

from tracktiond.fingerprint.matcher import Candidate


@dataclass(frozen=True)
class SegmentSettings:
    min_aligned: int = 14
    switch_penalty: float = 20.0
    same_offset: float = 2.0  # seconds
    cued_slack: float = 10.0  # seconds: first hit this close to frame 0 means "from the start"
    min_score: float = 80.0  # a segment's aligned hits in all, at least


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


def smooth(
    windows: list[Window],
    frame_seconds: float,
    bins_per_semitone: float,
    track_seconds: dict[int, float],
    settings: SegmentSettings,
) -> list[Segment]:
    s = settings
    if not windows:
        return []
    # scores[w][i]: best path ending in state i of window w (state 0 is unknown).
    back: list[list[int]] = []
    prev_states: list[Candidate | None] = [None]
    prev_scores = [0.0]
    for w in windows:
        states: list[Candidate | None] = [None, *w.candidates]
        scores, links = [], []
        for state in states:
            gain = 0.0 if state is None else float(state.aligned - s.min_aligned)
            best, link = -1e18, 0
            for j, (p, ps) in enumerate(zip(prev_states, prev_scores, strict=True)):
                same = (p is None and state is None) or (
                    p is not None
                    and state is not None
                    and p.track == state.track
                    and abs(p.offset - state.offset) * frame_seconds <= s.same_offset
                )
                cost = 0.0 if same or state is None or p is None else s.switch_penalty
                if p is None and state is not None:
                    cost = s.switch_penalty / 2  # entering a track from unknown
                if ps - cost > best:
                    best, link = ps - cost, j
            scores.append(best + gain)
            links.append(link)
        back.append(links)
        prev_states, prev_scores = states, scores
    # Trace back the best path.
    path: list[Candidate | None] = []
    i = max(range(len(prev_scores)), key=prev_scores.__getitem__)
    for at in range(len(windows) - 1, -1, -1):
        path.append([None, *windows[at].candidates][i])
        i = back[at][i]
    path.reverse()
    return _segments(path, windows, frame_seconds, bins_per_semitone, track_seconds, s)


def _segments(
    path: list[Candidate | None],
    windows: list[Window],
    frame_seconds: float,
    bins_per_semitone: float,
    track_seconds: dict[int, float],
    s: SegmentSettings,
) -> list[Segment]:
    runs: list[list[Candidate]] = []
    for cand in path:
        if cand is None:
            continue
        before = runs[-1][-1] if runs else None
        # The same track at the same offset again after an unknown window: one segment.
        if (
            before is not None
            and before.track == cand.track
            and abs(before.offset - cand.offset) * frame_seconds <= s.same_offset
        ):
            runs[-1].append(cand)
        else:
            runs.append([cand])
    out = []
    for run in runs:
        aligned = sum(c.aligned for c in run)
        if aligned < s.min_score:
            continue
        best = max(run, key=lambda c: c.aligned)
        speed, offset = best.speed, best.offset * frame_seconds
        first = min(c.first for c in run) * frame_seconds
        last = max(c.last for c in run) * frame_seconds
        length = track_seconds.get(best.track, 0.0) / speed
        start = offset if first - offset <= s.cued_slack else first
        end = offset + length if offset + length - last <= s.cued_slack else last
        start = max(start, 0.0, windows[0].start)
        end = min(end, windows[-1].end)
        # Confidence grows with the evidence: 0.5 at the threshold, 0.75 at twice it, ...
        confidence = 1.0 - 0.5 ** (aligned / s.min_score)
        out.append(
            Segment(
                track=best.track,
                start=start,
                end=end,
                speed=speed,
                pitch=best.pitch / bins_per_semitone,
                confidence=round(confidence, 3),
                aligned=aligned,
            )
        )
    return out
