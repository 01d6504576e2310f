"""The two entry points: a recording's fingerprint, and a set identified against an index.

``fingerprint_blocks`` streams mono blocks at ``SpectrumSettings.rate`` through the spectrogram
and the peak picker; the audio and the spectrogram are never held whole, the peaks are (a few
hundred bytes per second). ``identify_set`` forms the set's query triplets (the denser fan-out),
looks them up a chunk of the set at a time (one pass over a catalog index per chunk, so the
hits held at once stay bounded), verifies each overlapping window's candidates and smooths the
windows into segments.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from typing import Protocol

import numpy as np

from tracktiond.fingerprint.index import FingerprintIndex, Hits
from tracktiond.fingerprint.matcher import MatchSettings, match_window
from tracktiond.fingerprint.peaks import Peaks, PeakSettings, peaks_of
from tracktiond.fingerprint.segments import Segment, SegmentSettings, Window, smooth
from tracktiond.fingerprint.spectrum import F32, SpectrumSettings, spectrogram_blocks
from tracktiond.fingerprint.triplets import Hashes, TripletSettings, triplet_hashes


@dataclass(frozen=True)
class FingerprintSettings:
    spectrum: SpectrumSettings = field(default_factory=SpectrumSettings)
    peaks: PeakSettings = field(default_factory=PeakSettings)
    triplets: TripletSettings = field(default_factory=TripletSettings)
    match: MatchSettings = field(default_factory=MatchSettings)
    segments: SegmentSettings = field(default_factory=SegmentSettings)
    window_seconds: float = 16.0
    hop_seconds: float = 4.0
    chunk_seconds: float = 1800.0  # the set is looked up this much at a time


class PostingSource(Protocol):
    """What a set is identified against: the in-memory index, or the catalog's."""

    def lookup(self, hashes: Hashes) -> Hits:
        """The postings sharing a key with ``hashes``; ``Hits.query`` indexes ``hashes``."""
        ...

    def frames(self, track: int) -> int:
        """The indexed track's length in frames."""
        ...


def settings_id(settings: FingerprintSettings) -> str:
    """Names the settings that shape what is stored (peaks and index hashes): a fingerprint
    made with other settings is made again. Query-side settings (matching, smoothing) are not
    part of it: changing them costs a re-identification, not a re-index."""
    shaping = {
        "spectrum": asdict(settings.spectrum),
        "peaks": asdict(settings.peaks),
        "triplets": asdict(settings.triplets),
    }
    text = json.dumps(shaping, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


@dataclass(frozen=True)
class Fingerprint:
    peaks: Peaks
    frames: int  # the recording's length in spectrogram frames

    def seconds(self, settings: FingerprintSettings) -> float:
        return self.frames * settings.spectrum.frame_seconds

    def index_hashes(self, settings: FingerprintSettings) -> Hashes:
        return triplet_hashes(self.peaks, settings.triplets, fanout=settings.triplets.index_fanout)


def fingerprint_blocks(blocks: Iterable[F32], settings: FingerprintSettings) -> Fingerprint:
    """The peaks of a recording given as mono float blocks at ``settings.spectrum.rate``."""
    frames = 0

    def counted() -> Iterable[F32]:
        nonlocal frames
        for chunk in spectrogram_blocks(blocks, settings.spectrum):
            frames += chunk.shape[0]
            yield chunk

    peaks = Peaks.concat(peaks_of(counted(), settings.spectrum.n_bins, settings.peaks))
    return Fingerprint(peaks, frames)


def new_index(settings: FingerprintSettings) -> FingerprintIndex:
    return FingerprintIndex()


def add_track(
    index: FingerprintIndex, track: int, fp: Fingerprint, settings: FingerprintSettings
) -> None:
    index.add(track, fp.index_hashes(settings), fp.frames)


def query_hashes(fp: Fingerprint, settings: FingerprintSettings) -> Hashes:
    return triplet_hashes(fp.peaks, settings.triplets, fanout=settings.triplets.query_fanout)


def identify_set(
    fp: Fingerprint,
    index: PostingSource,
    settings: FingerprintSettings,
    progress: Callable[[float], None] | None = None,
) -> list[Segment]:
    """The indexed tracks ``fp`` plays, in order, with times in seconds; unknown stays out.

    ``progress`` is told the seconds of the set done so far, after each chunk.
    """
    sec = settings.spectrum.frame_seconds
    query = query_hashes(fp, settings)
    win, hop = round(settings.window_seconds / sec), round(settings.hop_seconds / sec)
    chunk = max(win, round(settings.chunk_seconds / sec) // hop * hop)
    windows: list[Window] = []
    tracks: set[int] = set()
    starts = list(range(0, max(fp.frames - win, 0) + hop, hop)) or [0]
    for first in range(0, len(starts), max(1, chunk // hop)):
        mine = starts[first : first + max(1, chunk // hop)]
        # One lookup for every window starting in this chunk: the hashes from the chunk's
        # first window start to its last window's end.
        lo, hi = np.searchsorted(query.t, [mine[0], mine[-1] + win])
        part = query.select(np.arange(lo, hi))
        hits = index.lookup(part)
        order = np.argsort(hits.query, kind="stable")
        hits = Hits(
            hits.query[order], hits.track[order], hits.t[order], hits.span[order], hits.f[order]
        )
        for start in mine:
            end = start + win
            wlo, whi = np.searchsorted(part.t, [start, end])  # query hashes are in anchor order
            hlo, hhi = np.searchsorted(hits.query, [wlo, whi])
            found = match_window(
                part,
                hits.select(np.arange(hlo, hhi)),
                (start + end) / 2,
                settings.match,
                window_hashes=int(whi - wlo),
            )
            tracks.update(c.track for c in found)
            windows.append(Window(start * sec, min(end, fp.frames) * sec, found))
        if progress is not None:
            progress(min(mine[-1] + win, fp.frames) * sec)
    bins_per_semitone = settings.spectrum.bins_per_octave / 12
    lengths = {t: index.frames(t) * sec for t in tracks}
    return smooth(windows, sec, bins_per_semitone, lengths, settings.segments)
