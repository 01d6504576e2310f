"""The two entry points: a recording's fingerprint, and a set identified against an index.

``fingerprint_blocks`` streams mono blocks at ``SpectrumSettings.rate`` through the spectrogram
and the peak picker; the audio and the spectrogram are never held whole, the peaks are (a few
hundred bytes per second). ``identify_set`` forms the set's query triplets (the denser fan-out),
looks up overlapping windows of them, verifies each window's candidates and smooths the
windows into segments.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

import numpy as np

from tracktiond.fingerprint.index import FingerprintIndex
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
    return FingerprintIndex(settings.triplets.key_space)


def add_track(
    index: FingerprintIndex, track: int, fp: Fingerprint, settings: FingerprintSettings
) -> None:
    index.add(track, fp.index_hashes(settings), fp.frames)


def identify_set(
    fp: Fingerprint, index: FingerprintIndex, settings: FingerprintSettings
) -> list[Segment]:
    """The indexed tracks ``fp`` plays, in order, with times in seconds; unknown stays out."""
    sec = settings.spectrum.frame_seconds
    query = triplet_hashes(fp.peaks, settings.triplets, fanout=settings.triplets.query_fanout)
    win, hop = round(settings.window_seconds / sec), round(settings.hop_seconds / sec)
    windows: list[Window] = []
    tracks: set[int] = set()
    start = 0
    while True:
        end = start + win
        lo, hi = np.searchsorted(query.t, [start, end])  # query hashes are in anchor order
        part = query.select(np.arange(lo, hi))
        hits = index.lookup(part)
        found = match_window(part, hits, (start + end) / 2, settings.match)
        tracks.update(c.track for c in found)
        windows.append(Window(start * sec, min(end, fp.frames) * sec, found))
        if end >= fp.frames:
            break
        start += hop
    bins_per_semitone = settings.spectrum.bins_per_octave / 12
    lengths = {t: index.frames(t) * sec for t in tracks}
    return smooth(windows, sec, bins_per_semitone, lengths, settings.segments)
