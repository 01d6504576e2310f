"""The fingerprinter on generated material: hashes that keep under stretch and pitch shift, and a
mix of generated tracks (one resampled, one time-stretched, one pitch-shifted) identified in
order with its times, while unindexed material gives nothing."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from tests.support import mixes
from tracktiond.fingerprint.identify import (
    Fingerprint,
    FingerprintSettings,
    add_track,
    fingerprint_blocks,
    identify_set,
    new_index,
)
from tracktiond.fingerprint.index import FingerprintIndex, Hits
from tracktiond.fingerprint.matcher import MatchSettings, match_window
from tracktiond.fingerprint.peaks import Peaks
from tracktiond.fingerprint.triplets import Hashes, TripletSettings, triplet_hashes

SETTINGS = FingerprintSettings()
SECONDS = 24.0
INDEXED = range(6)  # tracks 0-3 are played, 4-5 indexed but not played
UNINDEXED = (6, 7, 8)


@pytest.fixture(scope="module")
def tracks() -> dict[int, mixes.F32]:
    return {n: mixes.track(n, SECONDS) for n in (*INDEXED, *UNINDEXED)}


@pytest.fixture(scope="module")
def index(tracks: dict[int, mixes.F32]) -> FingerprintIndex:
    index = new_index(SETTINGS)
    for n in INDEXED:
        add_track(index, n, fingerprint_blocks(mixes.blocks(tracks[n]), SETTINGS), SETTINGS)
    return index


def _peaks(t: list[int], f: list[float]) -> Peaks:
    return Peaks(np.array(t, np.int32), np.array(f, np.float32), np.zeros(len(t), np.float32))


def test_hash_keys_survive_a_time_stretch_and_move_only_their_band_under_a_pitch_shift() -> None:
    rng = np.random.default_rng(3)
    t = np.sort(rng.choice(np.arange(0, 2000), size=120, replace=False))
    f = rng.uniform(0, 90, size=120).round(2)
    wide = TripletSettings(max_span=400)
    plain = triplet_hashes(_peaks(list(t), list(f)), wide, fanout=5)
    # Twice as slow: every time gap doubles, every ratio stays; the span class (one per octave
    # of the span, just above the loudest-peak term) moves up by exactly one, or stays at the top.
    slow = triplet_hashes(_peaks(list(t * 2), list(f)), wide, fanout=5)
    assert wide.span_levels == 1 and wide.loudest
    span_class = np.minimum(np.floor(np.log2(plain.span)).astype(np.int64), wide.spans - 1)
    moved = np.minimum(span_class + 1, wide.spans - 1) - span_class
    assert np.array_equal(slow.key.astype(np.int64) - plain.key.astype(np.int64), 3 * moved)
    # Without the span term the keys are the same.
    ratios = replace(wide, span_levels=0)
    assert np.array_equal(
        triplet_hashes(_peaks(list(t), list(f)), ratios, fanout=5).key,
        triplet_hashes(_peaks(list(t * 2), list(f)), ratios, fanout=5).key,
    )
    # Up by exactly one band (half an octave): only the band field moves, by one.
    band = wide.band_bins
    up = triplet_hashes(_peaks(list(t), list(f + band)), wide, fanout=5)
    assert len(plain) > 300
    assert np.array_equal(slow.span, plain.span * 2)
    per_band = wide.per_band
    assert np.array_equal(
        up.key.astype(np.int64) - plain.key.astype(np.int64), np.full(len(up), per_band)
    )


def test_peaks_do_not_depend_on_how_the_stream_is_cut(tracks: dict[int, mixes.F32]) -> None:
    audio = tracks[0][: 8 * mixes.RATE]
    small = fingerprint_blocks(mixes.blocks(audio, 0.37), SETTINGS)
    large = fingerprint_blocks(mixes.blocks(audio, 5.0), SETTINGS)
    assert len(small.peaks) > 100
    assert small.frames == large.frames
    assert np.array_equal(small.peaks.t, large.peaks.t)
    assert np.allclose(small.peaks.f, large.peaks.f)


def test_silence_and_a_steady_tone_have_no_peaks() -> None:
    silence = np.zeros(4 * mixes.RATE, np.float32)
    t = np.arange(4 * mixes.RATE) / mixes.RATE
    tone = (0.5 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
    assert len(fingerprint_blocks([silence], SETTINGS).peaks) == 0
    # A steady tone is one peak per neighbourhood along its frequency at most: no shape at all.
    hashes = fingerprint_blocks([tone], SETTINGS).index_hashes(SETTINGS)
    assert len(hashes) == 0


def test_a_mix_with_a_resampled_a_stretched_and_a_pitched_track_is_identified_in_order(
    tracks: dict[int, mixes.F32], index: FingerprintIndex
) -> None:
    audio, truth = mixes.mix(
        [
            (0, tracks[0], "none", 0.0),
            (1, tracks[1], "resample", 0.04),
            (2, tracks[2], "stretch", -0.03),
            (3, tracks[3], "pitch", 1.0),
        ],
        crossfade=6.0,
        noise_db=-40.0,
    )
    found = identify_set(fingerprint_blocks(mixes.blocks(audio), SETTINGS), index, SETTINGS)
    assert [s.track for s in found] == [p.track for p in truth]
    for seg, played in zip(found, truth, strict=True):
        assert abs(seg.start - played.start) <= 2.0, (seg, played)
        assert abs(seg.end - played.end) <= 3.0, (seg, played)
        assert abs(seg.speed - mixes.speed_of(played)) <= 0.01, (seg, played)
        assert abs(seg.pitch - mixes.semitones_of(played)) <= 0.3, (seg, played)
        assert 0.5 < seg.confidence <= 1.0


def test_a_set_of_unindexed_tracks_yields_no_entries(
    tracks: dict[int, mixes.F32], index: FingerprintIndex
) -> None:
    audio, _ = mixes.mix(
        [
            (6, tracks[6], "none", 0.0),
            (7, tracks[7], "resample", 0.04),
            (8, tracks[8], "pitch", -1.0),
        ],
        crossfade=6.0,
    )
    fp: Fingerprint = fingerprint_blocks(mixes.blocks(audio), SETTINGS)
    assert len(fp.peaks) > 500  # music, not silence: there was something to match
    assert identify_set(fp, index, SETTINGS) == []


def test_a_removed_track_is_no_longer_found(tracks: dict[int, mixes.F32]) -> None:
    settings = replace(SETTINGS)
    index = new_index(settings)
    for n in (0, 1):
        add_track(index, n, fingerprint_blocks(mixes.blocks(tracks[n]), settings), settings)
    query = fingerprint_blocks(mixes.blocks(tracks[1][: 12 * mixes.RATE]), settings)
    assert [s.track for s in identify_set(query, index, settings)] == [1]
    index.remove(1)
    assert identify_set(query, index, settings) == []


def test_hashes_that_many_tracks_hold_weigh_less_than_hashes_one_track_holds() -> None:
    """The IDF-like weight: a track aligned only by hashes five other tracks also hold (a shared
    drum kit) keeps its aligned count but loses its weight; a track aligned by keys of its own
    weighs what it aligns."""
    rng = np.random.default_rng(5)
    n = 40
    query = Hashes(
        np.arange(2 * n, dtype=np.uint32),
        np.array(sorted(rng.choice(np.arange(0, 900), size=2 * n, replace=False)), np.int32),
        np.full(2 * n, 40, np.int32),
        np.full(2 * n, 40.0, np.float32),
    )
    qi, rt, tr = [], [], []
    # Track 1 aligns hashes 0..n-1, which only it holds.
    for i in range(n):
        qi.append(i)
        rt.append(100 + int(query.t[i]))
        tr.append(1)
    # Track 2 aligns hashes n..2n-1; five other tracks hold the same keys at random times.
    for i in range(n, 2 * n):
        qi.append(i)
        rt.append(300 + int(query.t[i]))
        tr.append(2)
        for other in range(3, 8):
            qi.append(i)
            rt.append(int(rng.integers(0, 3000)))
            tr.append(other)
    order = np.argsort(qi, kind="stable")
    hits = Hits(
        np.array(qi, np.int64)[order],
        np.array(tr, np.int32)[order],
        np.array(rt, np.int32)[order],
        np.full(len(qi), 40, np.int32),
        np.full(len(qi), 40.0, np.float32),
    )
    # The window holds 400 query hashes, most without hits (as in a set): the median is 0.
    cands = match_window(query, hits, 450.0, MatchSettings(), window_hashes=400)
    found = {c.track: c for c in cands}
    assert found[1].aligned == n and found[2].aligned == n
    assert found[1].weight == pytest.approx(n)
    # Held by six tracks where the window's median hash is held by one: 1/6 each.
    assert found[2].weight == pytest.approx(n / 6)
    assert found[2].weight < found[1].weight
