"""Accuracy of the analysis on generated audio with known ground truth (tests/support/signals.py).

Tolerances are the field's usual ones: tempo Accuracy1 (within 4 %) on at least 95 % of the
tempo set, the exact key on at least 90 % of the 24-key set, integrated loudness within 0.5 LU
(EBU Tech 3341 itself asks ±0.1 LU of its test signals, which is asserted too), loudness range
within ±1 LU of EBU Tech 3342's cases.

Everything is generated and analysed once per module through a pool of two workers (the CI
machine has two cores); generation runs in a thread while the workers analyse earlier files.
"""

from __future__ import annotations

import math
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path

import anyio
import numpy as np
import pytest

from tests.support import signals
from tracktiond.analysis import AnalysisPool, AnalysisResult, AnalysisSettings
from tracktiond.media.keys import pitch_class

pytestmark = pytest.mark.anyio

TEMPI: tuple[float, ...] = tuple(round(float(b), 1) for b in np.geomspace(62.0, 196.0, 20))
# The tempo set spans 62-196 BPM, so the preferred range is configured to cover it: a tempo
# exactly on the range's lower edge would fold up an octave on a 0.1 BPM underestimate.
TEMPO_SETTINGS = AnalysisSettings(bpm_min=60.0, bpm_max=200.0)
DEFAULT = AnalysisSettings()
KEY_TIMBRES = ("saw", "piano")
SWING = {"house": 0.0, "breakbeat": 0.1, "hiphop": 0.2}
DRUM_TEMPI = (122.0, 95.0, 140.0, 174.0)


@dataclass(frozen=True)
class Case:
    name: str
    make: Callable[[], signals.Signal]
    settings: AnalysisSettings = DEFAULT
    ext: str = "wav"  # cheapest to write; test_analysis_pool decodes every format
    rate: int = signals.RATE


def _cases() -> list[Case]:
    cases: list[Case] = []
    for k, kit in enumerate(signals.KITS):
        for i, bpm in enumerate(TEMPI):
            cases.append(
                Case(
                    f"tempo/{kit}/{bpm}",
                    lambda b=bpm, kt=kit, s=100 * k + i: signals.drum_pattern(
                        b, kt, seconds=20.0, seed=s, swing=SWING[kt]
                    ),
                    TEMPO_SETTINGS,
                )
            )
    for timbre in KEY_TIMBRES:
        for i, (tonic, mode) in enumerate(signals.KEYS):
            cases.append(
                Case(
                    f"key/{timbre}/{tonic}/{mode}",
                    lambda t=tonic, m=mode, tb=timbre, s=i: signals.chord_progression(
                        t, m, tb, seconds=16.0, seed=s
                    ),
                )
            )
    for i, (tonic, mode) in enumerate(signals.KEYS):
        # The same progressions under a drum loop, as dance music has them: kick drums put
        # pitched energy where bass notes are, which a key estimate must not follow.
        cases.append(
            Case(
                f"keydrums/{KEY_TIMBRES[i % 2]}/{tonic}/{mode}",
                lambda t=tonic, m=mode, s=i: (
                    0.6
                    * signals.drum_pattern(
                        DRUM_TEMPI[s % 4], signals.KITS[s % 3], seconds=16.0, seed=200 + s
                    )
                    + 0.4
                    * signals.chord_progression(
                        t,
                        m,
                        KEY_TIMBRES[s % 2],
                        seconds=16.0,
                        seed=s,
                        chord_seconds=240.0 / DRUM_TEMPI[s % 4],
                    )
                ).astype(np.float32),
            )
        )
    loudness: dict[str, Callable[[], signals.Signal]] = {
        "ebu1": lambda: signals.sine(20.0, -23.0),
        "ebu2": lambda: signals.sine(20.0, -33.0),
        "ebu3": lambda: signals.sine_sequence([(10, -36), (60, -23), (10, -36)]),
        "ebu4": lambda: signals.sine_sequence(
            [(10, -72), (10, -36), (60, -23), (10, -36), (10, -72)]
        ),
        "ebu5": lambda: signals.sine_sequence([(20, -26), (20.1, -20), (20, -26)]),
        "lra1": lambda: signals.sine_sequence([(20, -20), (20, -30)]),
        "lra2": lambda: signals.sine_sequence([(20, -20), (20, -15)]),
        "lra3": lambda: signals.sine_sequence([(20, -40), (20, -20)]),
        "mono": lambda: signals.sine(20.0, -20.0, channels=1),
        "pink": lambda: signals.pink_noise(30.0, seed=3, rms_dbfs=-24.0),
        "pink-mp3": lambda: signals.pink_noise(30.0, seed=4, rms_dbfs=-16.0),
    }
    for name, make in loudness.items():
        cases.append(Case(f"loud/{name}", make, ext="mp3" if name.endswith("mp3") else "wav"))
    cases.append(Case("loud/sine48k", lambda: signals.sine(20.0, -23.0, rate=48000), rate=48000))
    for timbre in ("piano", "organ"):
        for i, bpm in enumerate((84.0, 128.0, 150.0)):
            # Drums with chords and a melody in time (a chord per bar, melody on the beats).
            cases.append(
                Case(
                    f"mix/{timbre}/{bpm}",
                    lambda b=bpm, tb=timbre, s=i: (
                        0.6 * signals.drum_pattern(b, signals.KITS[s], seconds=20.0, seed=50 + s)
                        + 0.4
                        * signals.chord_progression(
                            "D", "major", tb, seconds=20.0, seed=s, chord_seconds=240.0 / b
                        )
                    ).astype(np.float32),
                    TEMPO_SETTINGS,
                )
            )
    cases.append(Case("fold/65", lambda: signals.drum_pattern(65.0, "breakbeat", seed=7)))
    cases.append(Case("fold/190", lambda: signals.drum_pattern(190.0, "house", seed=8)))
    cases.append(Case("beatless/held", lambda: signals.held_chord(20.0)))
    cases.append(Case("beatless/sine", lambda: signals.sine(20.0, -12.0, freq=440.0)))
    cases.append(Case("beatless/silence", lambda: np.zeros((20 * signals.RATE, 2), np.float32)))
    cases.append(
        Case(
            "long/drift",
            lambda: np.concatenate(
                list(signals.drifting_drums(150.0, bpm_start=110.0, bpm_end=130.0))
            ),
            AnalysisSettings(long_recording_seconds=60.0),
        )
    )
    return cases


@pytest.fixture(scope="module")
async def analysed(
    tmp_path_factory: pytest.TempPathFactory,
) -> AsyncIterator[dict[str, AnalysisResult]]:
    root = tmp_path_factory.mktemp("accuracy")
    results: dict[str, AnalysisResult] = {}

    def write(case: Case) -> Path:
        path = root / f"{case.name.replace('/', '_')}.{case.ext}"
        return signals.write_audio(path, case.make(), rate=case.rate)

    async with AnalysisPool(2) as pool:

        async def analyse(case: Case, path: Path) -> None:
            results[case.name] = await pool.analyze(str(path), case.settings)

        async with anyio.create_task_group() as tg:
            for case in _cases():
                # Generate in a thread (numpy releases the GIL) while the workers analyse.
                path = await anyio.to_thread.run_sync(write, case)
                tg.start_soon(analyse, case, path)
    yield results


def _within(measured: float | None, truth: float, tolerance: float = 0.04) -> bool:
    return measured is not None and abs(measured - truth) <= tolerance * truth


async def test_tempo_accuracy1_on_the_tempo_set(analysed: dict[str, AnalysisResult]) -> None:
    tempo = {k: v for k, v in analysed.items() if k.startswith("tempo/")}
    assert len(tempo) == len(TEMPI) * len(signals.KITS) == 60
    misses = {
        name: result.bpm
        for name, result in tempo.items()
        if not _within(result.bpm, float(name.rsplit("/", 1)[1]))
    }
    accuracy = 1 - len(misses) / len(tempo)
    print(f"tempo Accuracy1: {accuracy:.1%} of {len(tempo)}; misses: {misses}")
    assert accuracy >= 0.95, misses
    for result in tempo.values():
        assert not result.beatless
        assert 0.0 <= result.bpm_confidence <= 1.0


async def test_tempo_of_drums_with_harmony(analysed: dict[str, AnalysisResult]) -> None:
    mix = {k: v for k, v in analysed.items() if k.startswith("mix/")}
    assert len(mix) == 6
    misses = {n: r.bpm for n, r in mix.items() if not _within(r.bpm, float(n.rsplit("/", 1)[1]))}
    assert len(misses) <= 1, misses


async def test_key_accuracy_on_all_24_keys_in_two_timbres(
    analysed: dict[str, AnalysisResult],
) -> None:
    key = {k: v for k, v in analysed.items() if k.startswith("key/")}
    assert len(key) == 24 * len(KEY_TIMBRES)
    wrong: dict[str, str | None] = {}
    for name, result in key.items():
        _, timbre, tonic, mode = name.split("/")
        right = (
            result.key_tonic is not None
            and pitch_class(result.key_tonic) == pitch_class(tonic)
            and result.key_mode == mode
        )
        if not right:
            wrong[name] = result.key
    accuracy = 1 - len(wrong) / len(key)
    print(f"key accuracy: {accuracy:.1%} of {len(key)}; wrong: {wrong}")
    assert accuracy >= 0.90, wrong
    for timbre in KEY_TIMBRES:
        per_timbre = [n for n in wrong if n.startswith(f"key/{timbre}/")]
        assert len(per_timbre) <= 0.15 * 24, (timbre, per_timbre)


async def test_key_accuracy_under_drums(analysed: dict[str, AnalysisResult]) -> None:
    key = {k: v for k, v in analysed.items() if k.startswith("keydrums/")}
    assert len(key) == 24
    wrong = {
        name: result.key
        for name, result in key.items()
        if not (
            result.key_tonic is not None
            and pitch_class(result.key_tonic) == pitch_class(name.split("/")[2])
            and result.key_mode == name.split("/")[3]
        )
    }
    print(f"key accuracy under drums: {1 - len(wrong) / len(key):.1%}; wrong: {wrong}")
    assert len(wrong) <= 0.1 * len(key), wrong


@pytest.mark.parametrize(
    ("case", "expected"),
    [("ebu1", -23.0), ("ebu2", -33.0), ("ebu3", -23.0), ("ebu4", -23.0), ("ebu5", -23.0)],
)
async def test_ebu_tech_3341_cases(
    analysed: dict[str, AnalysisResult], case: str, expected: float
) -> None:
    result = analysed[f"loud/{case}"]
    assert result.loudness_integrated == pytest.approx(expected, abs=0.1)
    assert result.replaygain_track_gain == pytest.approx(-18.0 - result.loudness_integrated)


@pytest.mark.parametrize(("case", "expected"), [("lra1", 10.0), ("lra2", 5.0), ("lra3", 20.0)])
async def test_ebu_tech_3342_loudness_range(
    analysed: dict[str, AnalysisResult], case: str, expected: float
) -> None:
    assert analysed[f"loud/{case}"].loudness_range == pytest.approx(expected, abs=1.0)


async def test_loudness_against_the_bs1770_reference(analysed: dict[str, AnalysisResult]) -> None:
    # Stationary signals: the ungated BS.1770 loudness computed from the standard's filter
    # is what the gated measurement must give.
    pink = analysed["loud/pink"].loudness_integrated
    assert pink == pytest.approx(
        signals.bs1770_loudness(signals.pink_noise(30.0, seed=3, rms_dbfs=-24.0)), abs=0.5
    )
    lossy = analysed["loud/pink-mp3"].loudness_integrated
    assert lossy == pytest.approx(
        signals.bs1770_loudness(signals.pink_noise(30.0, seed=4, rms_dbfs=-16.0)), abs=0.5
    )
    # A mono file is measured as mono (one channel, weight 1), not as two copies of it.
    mono = analysed["loud/mono"]
    assert mono.channels == 1
    assert mono.loudness_integrated == pytest.approx(signals.expected_sine_lufs(-20.0, 1), abs=0.5)
    assert mono.sample_peak == pytest.approx(0.1, abs=0.001)
    # 48 kHz sources are resampled to 44.1 kHz for analysis without changing their loudness.
    sine48 = analysed["loud/sine48k"]
    assert sine48.sample_rate == 48000
    assert sine48.loudness_integrated == pytest.approx(-23.0, abs=0.5)


async def test_sample_peak_and_replaygain(analysed: dict[str, AnalysisResult]) -> None:
    result = analysed["loud/ebu1"]
    assert result.sample_peak == pytest.approx(10 ** (-23 / 20), abs=0.001)
    assert result.replaygain_track_peak == result.sample_peak
    assert result.replaygain_track_gain == pytest.approx(5.0, abs=0.1)
    assert result.to_metadata()["analysis.replaygain_track_gain"] == "5.00 dB"


async def test_default_range_folds_half_and_double_time(
    analysed: dict[str, AnalysisResult],
) -> None:
    assert _within(analysed["fold/65"].bpm, 130.0)
    assert _within(analysed["fold/190"].bpm, 95.0)


@pytest.mark.parametrize(
    "case", ["beatless/held", "beatless/sine", "beatless/silence", "loud/pink"]
)
async def test_beatless_audio_has_no_bpm(analysed: dict[str, AnalysisResult], case: str) -> None:
    result = analysed[case]
    assert result.bpm is None
    assert result.beatless
    assert result.bpm_confidence == 0.0
    assert "analysis.bpm" not in result.to_metadata()
    assert result.to_metadata()["analysis.beatless"] == "true"


async def test_silence(analysed: dict[str, AnalysisResult]) -> None:
    result = analysed["beatless/silence"]
    assert result.loudness_integrated == -70.0
    assert result.sample_peak == 0.0
    assert result.key is None


async def test_long_recording_tempo_curve(analysed: dict[str, AnalysisResult]) -> None:
    result = analysed["long/drift"]
    assert result.duration == pytest.approx(150.0, abs=0.1)
    assert [t for t, _ in result.tempo_curve] == [0.0, 30.0, 60.0, 90.0, 120.0]
    # Each 30 s block of the generator has the tempo of its midpoint.
    for start, bpm in result.tempo_curve:
        truth = 110.0 + 20.0 * (start + 15.0) / 150.0
        assert _within(bpm, truth), (start, bpm, truth)
    assert result.bpm_start is not None and result.bpm_end is not None
    assert result.bpm_start < result.bpm_end
    assert result.variable_tempo
    assert result.tempo_stability is not None and result.tempo_stability < 0.5
    metadata = result.to_metadata()
    assert metadata["analysis.variable_tempo"] == "true"
    assert metadata["analysis.tempo_curve"].startswith("[[0.0,")


async def test_short_recordings_have_no_curve(analysed: dict[str, AnalysisResult]) -> None:
    result = analysed["fold/65"]
    assert result.tempo_curve == []
    assert result.bpm_start is None and result.tempo_stability is None
    assert not result.variable_tempo


async def test_results_are_complete_and_json_safe(analysed: dict[str, AnalysisResult]) -> None:
    for name, result in analysed.items():
        assert result.settings_fingerprint, name
        for key, value in result.to_metadata().items():
            assert key.startswith("analysis."), key
            assert value and "nan" not in value.lower() and "inf" not in value.lower(), (name, key)
        for value in (result.loudness_integrated, result.danceability, result.energy):
            assert math.isfinite(value), name
        assert 0.0 <= result.energy <= 1.0 and 0.0 <= result.valence <= 1.0
        assert result.mood in ("energetic", "tense", "calm", "melancholic")
        assert result.mood_source == "descriptors"
        assert AnalysisResult.from_dict(result.to_dict()) == result


async def test_mood_orders_energy_sensibly(analysed: dict[str, AnalysisResult]) -> None:
    # A loud, fast drum loop is more energetic than a quiet held chord.
    assert analysed[f"tempo/house/{TEMPI[-2]}"].energy > analysed["beatless/held"].energy
    # Major progressions read as more positive than minor ones in the same timbre.
    major = np.mean(
        [
            r.valence
            for n, r in analysed.items()
            if n.startswith("key/piano/") and n.endswith("/major")
        ]
    )
    minor = np.mean(
        [
            r.valence
            for n, r in analysed.items()
            if n.startswith("key/piano/") and n.endswith("/minor")
        ]
    )
    assert major > minor
