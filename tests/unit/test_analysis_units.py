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
    tempo,
)
from tracktiond.analysis.decode import Decoder

# -- settings -------------------------------------------------------------------------------------


def test_fingerprint_is_stable_and_sensitive() -> None:
    base = AnalysisSettings()
    assert base.fingerprint() == AnalysisSettings().fingerprint()
    assert len(base.fingerprint()) == 16
    assert AnalysisSettings(bpm_min=70).fingerprint() == base.fingerprint()  # int == float
    changed = {
        AnalysisSettings(bpm_min=60.0).fingerprint(),
        AnalysisSettings(bpm_max=200.0).fingerprint(),
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
        acc.feed(signal[start : start + window].astype(np.float64))  # type: ignore[arg-type]
    whole_m, whole_s = meter(signal)
    assert np.array_equal(acc.momentary(), whole_m)
    assert np.array_equal(acc.short_term(), whole_s)


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


def _window(start: float, bpm: float | None, clarity: float = 0.8) -> tempo.WindowTempo:
    return tempo.WindowTempo(start, 30.0, bpm, clarity, 4.0, False)


def test_combine_short_and_long() -> None:
    windows = [_window(30.0 * i, b) for i, b in enumerate([128.0, 128.2, 64.1, 127.9, 256.0])]
    short = tempo.combine(windows, 70.0, 180.0, long_recording=False)
    assert short.bpm == pytest.approx(128.0, abs=0.3)
    assert not short.beatless and short.curve == []
    assert short.confidence == pytest.approx(1.0)
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


def test_combine_beatless() -> None:
    assert tempo.combine([], 70, 180, long_recording=False).beatless
    mostly_pads = [_window(0.0, 120.0)] + [_window(30.0 * i, None) for i in range(1, 8)]
    result = tempo.combine(mostly_pads, 70, 180, long_recording=False)
    assert result.beatless and result.bpm is None


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
