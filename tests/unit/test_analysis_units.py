"""Unit tests of the analysis package's pure parts: settings, results, gating, tempo.

No worker processes and no essentia here (one test checks that importing the package does not
import essentia at all).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tests.support import signals
from tracktiond.analysis import (
    ANALYSIS_VERSION,
    AnalysisResult,
    AnalysisSettings,
    loudness,
    metre,
    tempo,
    tuning,
)
from tracktiond.analysis.decode import Decoder

# -- settings -------------------------------------------------------------------------------------


def test_fingerprint_is_stable_and_sensitive() -> None:
    base = AnalysisSettings()
    assert base.fingerprint() == AnalysisSettings().fingerprint()
    assert len(base.fingerprint()) == 16
    assert AnalysisSettings(bpm_min=60).fingerprint() == base.fingerprint()  # int == float
    changed = {
        AnalysisSettings(bpm_min=70.0).fingerprint(),
        AnalysisSettings(bpm_max=180.0).fingerprint(),
        AnalysisSettings(long_recording_seconds=600.0).fingerprint(),
        AnalysisSettings(curve_window_seconds=60.0).fingerprint(),
        AnalysisSettings(key_profile="bgate").fingerprint(),
        AnalysisSettings(models_dir="/models").fingerprint(),
    }
    assert base.fingerprint() not in changed
    assert len(changed) == 6


def test_settings_round_trip_and_validation() -> None:
    settings = AnalysisSettings(bpm_min=80.0, key_profile="temperley", models_dir="/m")
    assert AnalysisSettings.from_dict(json.loads(json.dumps(settings.to_dict()))) == settings
    with pytest.raises(ValueError, match="unknown analysis settings"):
        AnalysisSettings.from_dict({"bpm_minimum": 80})
    with pytest.raises(ValueError, match="key profile"):
        AnalysisSettings(key_profile="edm")
    with pytest.raises(ValueError, match="greater than"):
        AnalysisSettings(bpm_min=120.0, bpm_max=100.0)
    with pytest.raises(ValueError, match="curve_window_seconds"):
        AnalysisSettings(curve_window_seconds=5.0)
    with pytest.raises(ValueError, match="must be a number"):
        AnalysisSettings(bpm_min=True)


# -- results --------------------------------------------------------------------------------------


def _result(**changes: object) -> AnalysisResult:
    values: dict[str, object] = {
        "version": ANALYSIS_VERSION,
        "settings_fingerprint": "abc",
        "duration": 3600.0,
        "sample_rate": 44100,
        "channels": 2,
        "bpm": 128.04,
        "bpm_confidence": 0.9,
        "beatless": False,
        "tempo_curve": [(0.0, 127.0), (30.0, 129.0)],
        "bpm_start": 127.0,
        "bpm_end": 129.0,
        "tempo_stability": 0.5,
        "variable_tempo": False,
        "key_tonic": "A",
        "key_mode": "minor",
        "key_strength": 0.8,
        "key_segments": [(0.0, "A minor", 0.8), (120.0, "C major", 0.7)],
        "loudness_integrated": -10.5,
        "loudness_range": 6.0,
        "sample_peak": 0.988,
        "replaygain_track_gain": -7.5,
        "replaygain_track_peak": 0.988,
        "danceability": 1.5,
        "energy": 0.7,
        "valence": 0.3,
        "mood": "tense",
        "mood_features": {"loudness": 0.8},
        "mood_source": "descriptors",
    }
    values.update(changes)
    return AnalysisResult(**values)  # type: ignore[arg-type]


def test_result_json_round_trip() -> None:
    result = _result()
    assert AnalysisResult.from_dict(json.loads(json.dumps(result.to_dict()))) == result


def test_metadata_rows() -> None:
    rows = _result().to_metadata()
    assert all(k.startswith("analysis.") for k in rows)
    assert rows["analysis.bpm"] == "128.0"
    assert rows["analysis.key"] == "A minor"
    assert rows["analysis.key_camelot"] == "8A"
    assert rows["analysis.key_openkey"] == "1m"
    assert rows["analysis.key_short"] == "Am"
    assert rows["analysis.replaygain_track_gain"] == "-7.50 dB"
    assert rows["analysis.replaygain_track_peak"] == "0.988000"
    assert rows["analysis.beatless"] == "false"
    assert rows["analysis.version"] == str(ANALYSIS_VERSION)
    assert json.loads(rows["analysis.tempo_curve"]) == [[0.0, 127.0], [30.0, 129.0]]
    assert json.loads(rows["analysis.key_segments"])[1] == [120.0, "C major", 0.7]
    beatless = _result(bpm=None, beatless=True, key_tonic=None, key_mode=None, tempo_curve=[])
    rows = beatless.to_metadata()
    assert "analysis.bpm" not in rows and "analysis.key" not in rows
    assert "analysis.tempo_curve" not in rows
    assert rows["analysis.beatless"] == "true"


# -- loudness gating ------------------------------------------------------------------------------


def test_gating() -> None:
    assert loudness.integrated(np.full(100, -23.0)) == pytest.approx(-23.0)
    # Blocks below -70 LUFS and more than 10 LU under the mean are gated out.
    values = np.concatenate([np.full(100, -23.0), np.full(50, -80.0), np.full(50, -40.0)])
    assert loudness.integrated(values) == pytest.approx(-23.0)
    assert loudness.integrated(np.full(10, -90.0)) == loudness.SILENT
    assert loudness.integrated(np.zeros(0)) == loudness.SILENT
    assert loudness.loudness_range(np.concatenate([np.full(100, -20.0), np.full(100, -30.0)])) == (
        pytest.approx(10.0)
    )
    assert loudness.loudness_range(np.full(10, -100.0)) == 0.0


def test_windows_keep_every_block_once() -> None:
    """Feeding in windows gives the same blocks as metering the whole signal at once."""

    def meter(stereo: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        # Fake meter: block "loudness" = index of the block's first sample in the global signal
        # (encoded in the signal itself), so kept blocks can be identified exactly.
        starts = stereo[:, 0]
        m = starts[
            : max(0, (len(starts) - loudness.MOMENTARY) // loudness.HOP + 1)
            * loudness.HOP : loudness.HOP
        ]
        s = starts[
            : max(0, (len(starts) - loudness.SHORT_TERM) // loudness.HOP + 1)
            * loudness.HOP : loudness.HOP
        ]
        return m.copy(), s.copy()

    total = 95 * loudness.HOP * 10  # 95 s
    signal = np.repeat(np.arange(total, dtype=np.float64)[:, None], 2, axis=1)
    acc = loudness.LoudnessAccumulator(meter, mono_source=False)
    window = 300 * loudness.HOP
    for start in range(0, total, window):
        acc.feed(signal[start : start + window].astype(np.float64))
    whole_m, whole_s = meter(signal)
    assert np.array_equal(acc.momentary(), whole_m)
    assert np.array_equal(acc.short_term(), whole_s)


def test_uncertain_tempo_is_not_tagged_unless_asked() -> None:
    from tracktiond.pipeline.tagging import values_from_analysis

    sure = _result().to_dict()
    unsure = _result(bpm_uncertain=True, bpm_confidence=0.3).to_dict()
    assert values_from_analysis(sure, with_energy=False).bpm == 128.04
    assert values_from_analysis(unsure, with_energy=False).bpm is None
    assert values_from_analysis(unsure, with_energy=False, uncertain_bpm=True).bpm == 128.04
    assert values_from_analysis(unsure, with_energy=False).key_tonic == "A"  # the rest stays
    # Results stored by version 1 have no flag: their tempo is written as before.
    old = {k: v for k, v in sure.items() if k != "bpm_uncertain"}
    assert values_from_analysis(old, with_energy=False).bpm == 128.04
    assert _result(bpm_uncertain=True).to_metadata()["analysis.bpm_uncertain"] == "true"


# -- tempo ----------------------------------------------------------------------------------------


def test_fold() -> None:
    assert tempo.fold(65.0, 70.0, 180.0) == 130.0
    assert tempo.fold(190.0, 70.0, 180.0) == 95.0
    assert tempo.fold(85.0, 70.0, 180.0) == 85.0  # both 85 and 170 are in range: kept
    assert tempo.fold(170.0, 70.0, 180.0) == 170.0
    assert tempo.fold(30.0, 70.0, 180.0) == 120.0
    assert tempo.fold(400.0, 60.0, 200.0) == 100.0
    # Narrower than an octave: the multiple nearest the range.
    assert tempo.fold(60.0, 100.0, 150.0) == 120.0


def _window(
    start: float, bpm: float | None, clarity: float = 0.8, *, evidenced: bool = True
) -> tempo.WindowTempo:
    return tempo.WindowTempo(start, 30.0, bpm, clarity, 4.0, False, evidenced, True)


def test_combine_short_and_long() -> None:
    windows = [_window(30.0 * i, b) for i, b in enumerate([128.0, 128.2, 64.1, 127.9, 256.0])]
    short = tempo.combine(windows, 70.0, 180.0, long_recording=False)
    assert short.bpm == pytest.approx(128.0, abs=0.3)
    assert not short.beatless and short.curve == []
    # Every window is in the tempo class, but two of five were read at another octave.
    assert short.confidence == pytest.approx(0.6, abs=0.01)
    assert not short.uncertain
    agreeing = tempo.combine(
        [_window(30.0 * i, 128.0) for i in range(5)], 70.0, 180.0, long_recording=False
    )
    assert agreeing.confidence == pytest.approx(1.0)
    drift = [_window(30.0 * i, 110.0 + i) for i in range(20)]
    long = tempo.combine(drift, 70.0, 180.0, long_recording=True)
    assert len(long.curve) == 20
    assert long.bpm_start is not None and long.bpm_end is not None
    assert long.bpm_start < long.bpm_end
    assert long.variable
    steady = tempo.combine(
        [_window(30.0 * i, 124.0) for i in range(20)], 70, 180, long_recording=True
    )
    assert not steady.variable and steady.stability == 1.0


def test_the_range_is_only_a_last_resort() -> None:
    # A level the signal decided stays where it is, inside the range or not ...
    decided = [_window(30.0 * i, 190.0) for i in range(4)]
    assert tempo.combine(decided, 70.0, 180.0, long_recording=False).bpm == 190.0
    # ... an undecided one is folded into the range, and trusted less.
    undecided = [_window(30.0 * i, 190.0, evidenced=False) for i in range(4)]
    folded = tempo.combine(undecided, 70.0, 180.0, long_recording=False)
    assert folded.bpm == 95.0
    assert folded.confidence < tempo.combine(decided, 70.0, 180.0, long_recording=False).confidence


def test_curve_points_follow_their_neighbours_octave() -> None:
    values = [120.0, 121.0, 61.0, 122.0, 244.0, 123.0]
    windows = [_window(30.0 * i, b) for i, b in enumerate(values)]
    result = tempo.combine(windows, 60.0, 210.0, long_recording=True)
    assert [b for _, b in result.curve] == [120.0, 121.0, 122.0, 122.0, 122.0, 123.0]


def test_low_confidence_is_marked_uncertain() -> None:
    # Half the sounding time has no beat and the rest has a faint pulse: reported, not trusted.
    windows = [_window(0.0, 100.0, 0.1, evidenced=False), _window(30.0, None)]
    result = tempo.combine(windows, 60.0, 210.0, long_recording=False)
    assert result.bpm == 100.0
    assert result.confidence < tempo.UNCERTAIN_BELOW and result.uncertain


def test_combine_beatless() -> None:
    assert tempo.combine([], 70, 180, long_recording=False).beatless
    mostly_pads = [_window(0.0, 120.0)] + [_window(30.0 * i, None) for i in range(1, 8)]
    result = tempo.combine(mostly_pads, 70, 180, long_recording=False)
    assert result.beatless and result.bpm is None
    assert not result.uncertain  # no tempo, nothing to distrust


def _level(bpm: float, kit: str, tracker: float) -> metre.LevelDecision:
    mono = signals.drum_pattern(bpm, kit, seconds=20.0, seed=3)[:, 0]
    envelopes = tempo.onset_envelopes(mono)
    bass = envelopes.bass()
    return metre.decide(
        tracker, tempo.autocorrelation(bass), tempo.autocorrelation(envelopes.full()), bass
    )


@pytest.mark.parametrize(
    ("bpm", "kit", "tracker"),
    [
        (87.0, "offbeat", 174.0),  # off-beat hats pull trackers to double time
        (174.0, "house", 116.0),  # a 2/3 error, which octave checks alone cannot undo
        (66.0, "breakbeat", 132.0),
        (190.0, "hiphop", 95.0),
        (180.0, "waltz", 60.0),  # the bar of a fast waltz taken for its beat
        (150.0, "shuffle", 100.0),  # triplet hats: the 2/3 reading
        (120.0, "house", 120.0),  # and a right tracker is left alone
    ],
)
def test_the_level_comes_from_the_signal_not_the_tracker(
    bpm: float, kit: str, tracker: float
) -> None:
    decision = _level(bpm, kit, tracker)
    assert decision.bpm == pytest.approx(bpm, rel=0.04), decision
    assert decision.evidenced
    assert decision.moved == (abs(tracker / bpm - 1.0) > 0.04 and decision.agrees)


def test_evenness_tells_every_beat_from_every_other() -> None:
    # Kick on every beat: even at the beat, every other "beat" empty at double the tempo.
    house = tempo.onset_envelopes(signals.drum_pattern(100.0, "house", seed=1)[:, 0]).bass()
    assert metre.evenness(house, 100.0) > 0.6
    assert metre.evenness(house, 200.0) < 0.3
    # Half-time: kick on 1, snare on 3 - the hats' beats alternate with empty ones down low.
    half = tempo.onset_envelopes(signals.drum_pattern(140.0, "halftime", seed=1)[:, 0]).bass()
    assert metre.evenness(half, 140.0) < metre.SKIP_EVENNESS
    # Three beats to a bar, each with its hit: even over three beats.
    waltz = tempo.onset_envelopes(signals.drum_pattern(150.0, "waltz", seed=1)[:, 0]).bass()
    assert metre.evenness(waltz, 150.0, beats=3) > 0.4
    assert metre.evenness(np.zeros(100), 120.0) == 1.0  # nothing to say: no skip


def test_same_family() -> None:
    assert metre.same_family(64.0, 128.0) and metre.same_family(256.0, 128.0)
    assert metre.same_family(126.0, 128.0)
    assert not metre.same_family(85.0, 128.0) and not metre.same_family(0.0, 128.0)


# -- tuning ---------------------------------------------------------------------------------------


def _fine_profile(semitones: tuple[int, ...], cents: float) -> np.ndarray:
    """A fine pitch profile with one triangular peak per note, every note ``cents`` sharp."""
    profile = np.zeros(tuning.FINE_BINS)
    for semitone in semitones:
        centre = semitone * tuning.PER_SEMITONE + cents / tuning.CENTS_PER_BIN
        for i in range(int(np.floor(centre)) - 5, int(np.floor(centre)) + 6):
            profile[i % tuning.FINE_BINS] += max(0.0, 1.0 - abs(i - centre) / 4.0)
    return profile


@pytest.mark.parametrize("cents", [-45.0, -31.8, -12.0, 0.0, 7.0, 25.0, 40.0])
def test_tuning_is_estimated_and_corrected(cents: float) -> None:
    # A minor triad (A, C, E: semitones 0, 3, 7 above A) played off concert pitch.
    fine = _fine_profile((0, 3, 7), cents)
    found = tuning.estimate_cents(fine)
    assert found == pytest.approx(cents, abs=1.0)
    pcp = tuning.retune(fine, found)
    assert pcp.shape == (tuning.KEY_BINS,)
    assert sorted(np.argsort(pcp)[-3:].tolist()) == [0, 9, 21]  # bins 3 x semitone
    assert tuning.frequency(-31.8) == pytest.approx(432.0, abs=0.1)


def test_tuning_of_nothing_is_concert_pitch() -> None:
    assert tuning.estimate_cents(np.zeros(tuning.FINE_BINS)) == 0.0
    assert tuning.estimate_cents(np.ones(tuning.FINE_BINS)) == 0.0
    # A faint lean within an otherwise even spread is chance, not a tuning.
    lean = np.ones(tuning.FINE_BINS) + 0.05 * _fine_profile((0, 3, 7), 30.0)
    assert tuning.estimate_cents(lean) == 0.0
    assert (
        tuning.estimate_cents(0.1 * np.ones(tuning.FINE_BINS) + _fine_profile((0, 3, 7), 30.0)) > 20
    )


# -- decoding -------------------------------------------------------------------------------------


def test_decoder_blocks(tmp_path: Path) -> None:
    path = signals.write_audio(tmp_path / "a.wav", signals.sine(10.5, -20.0))
    with Decoder(str(path), 44100 * 3) as decoder:
        sizes = [b.shape for b in decoder.blocks()]
    # 3 + 3 + 4.5: the 1.5 s remainder is not shorter than a third of a block, so it stays alone
    assert sizes == [(2, 132300), (2, 132300), (2, 132300), (2, 66150)]
    path = signals.write_audio(tmp_path / "b.wav", signals.sine(9.5, -20.0))
    with Decoder(str(path), 44100 * 3) as decoder:
        sizes = [b.shape for b in decoder.blocks()]
        assert decoder.decoded_seconds == pytest.approx(9.5)
    assert sizes == [(2, 132300), (2, 132300), (2, 154350)]  # 0.5 s merged into the last block


def test_importing_the_package_does_not_import_essentia() -> None:
    code = (
        "import sys, tracktiond.analysis, tracktiond.analysis.engine, tracktiond.analysis.pool;"
        "print('essentia' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
    assert out.stderr == ""
