"""The analysis engine: one file in, one :class:`AnalysisResult` out. Runs inside a worker.

This is the only module that uses essentia. It is imported lazily (on the first analysis), so
importing this module has no side effects: no essentia log lines, no 160 MB of native code in a
process that only wants :class:`AnalysisResult`.

The file is decoded in fixed windows (``settings.curve_window_seconds``, 30 s by default) and
every measurement is made per window and combined at the end, so memory does not grow with the
recording's length (DESIGN invariant 4):

* tempo: PercivalBpmEstimator per window, metrical level from the onset envelopes by
  :mod:`tracktiond.analysis.metre`, combined by :mod:`tracktiond.analysis.tempo`;
* key: fine (108-bin) HPCP frames summed over the file (and per segment), the tuning estimated
  and corrected by :mod:`tracktiond.analysis.tuning`, then essentia's Key on the result;
* loudness: LoudnessEBUR128 per window, gated over the file by
  :mod:`tracktiond.analysis.loudness`;
* danceability (essentia Danceability) and dynamic complexity: duration-weighted means;
* mood: :mod:`tracktiond.analysis.mood` from the combined descriptors.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from tracktiond.analysis import loudness, metre, mood, tempo, tuning
from tracktiond.analysis.decode import RATE, Decoder
from tracktiond.analysis.result import AnalysisResult, finite
from tracktiond.analysis.settings import ANALYSIS_VERSION, AnalysisSettings
from tracktiond.errors import BadInput
from tracktiond.media.keys import Key

__all__ = ["AnalysisResult", "analyze_file"]

KEY_FRAME = 4096
KEY_HOP = 4096
HPCP_SIZE = tuning.FINE_BINS  # accumulated fine, pooled to tuning.KEY_BINS for the key profile
# Pitch content below 100 Hz is left out of the key estimate: kick drums put strong, pitched (and
# usually out-of-key) energy at 40-100 Hz. On drums + chords in all 24 keys, 40 Hz (essentia's
# KeyExtractor) found 46 % of the keys, 100 Hz 98 %; without drums both are >= 92 %. Bass lines
# keep their harmonics above 100 Hz.
KEY_MIN_HZ = 100.0
KEY_SEGMENT_SECONDS = 120.0  # long recordings: one key estimate per ~2 minutes
MIN_TEMPO_SECONDS = 5.0  # shorter windows hold too few beats for the tracker
SILENT_PEAK = 10 ** (-80 / 20)  # a window whose peak is below -80 dBFS is silence
FRAME_FLOOR = 1e-4  # key frames quieter than -80 dBFS RMS carry no pitch information
BRIGHT_HZ = 1500.0
DANCEABILITY_TOP = 3.0  # essentia documents 0..~3, but steady loops reach 4-6 and tones far more
# Far beyond anything music gives (steady loops stay below ~6): a pure tone or a drone, whose
# fluctuation analysis degenerates; such audio does not invite dancing, so it counts as 0.
DANCEABILITY_DEGENERATE = 10.0


def soft_limit(dance: float) -> float:
    """essentia's danceability mapped onto 0..3 without a ceiling: 3 tanh(x / 3).

    Clipping at 3 made every drum loop (and 72 of 601 real files) read exactly 3.0; the tanh
    keeps the order of all values, is nearly the identity below 1.5 and never saturates.
    """
    if not 0.0 < dance < DANCEABILITY_DEGENERATE:
        return 0.0
    return DANCEABILITY_TOP * math.tanh(dance / DANCEABILITY_TOP)


@functools.cache
def _essentia() -> Any:
    """essentia.standard, imported on first use."""
    import essentia.standard as es

    return es


class _Algorithms:
    """essentia algorithm instances, built once per process and key profile.

    Several of essentia's standard-mode algorithms wrap a streaming network and keep state
    between calls (OnsetRate, for one, returns nothing on a second call), so every stateful
    algorithm is reset() before use.
    """

    def __init__(self, es: Any, key_profile: str) -> None:
        # Percival's estimator, not a beat tracker: only the beat period is used (the level is
        # decided by metre), and it is as fast as RhythmExtractor2013's degara method and right
        # more often on real music (docs/analysis.md, "Tempo").
        self.bpm = es.PercivalBpmEstimator(sampleRate=RATE)
        self.loudness = es.LoudnessEBUR128(sampleRate=RATE, hopSize=0.1, startAtZero=False)
        self.danceability = es.Danceability(sampleRate=RATE)
        self.dynamic = es.DynamicComplexity(sampleRate=RATE)
        self.window = es.Windowing(type="blackmanharris62", size=KEY_FRAME)
        self.spectrum = es.Spectrum(size=KEY_FRAME)
        self.peaks = es.SpectralPeaks(
            orderBy="magnitude",
            magnitudeThreshold=1e-5,
            minFrequency=KEY_MIN_HZ,
            maxFrequency=5000,
            maxPeaks=60,
            sampleRate=RATE,
        )
        self.hpcp = es.HPCP(
            size=HPCP_SIZE,
            referenceFrequency=440,
            bandPreset=False,
            minFrequency=KEY_MIN_HZ,
            maxFrequency=5000,
            weightType="squaredCosine",
            nonLinear=False,
            windowSize=4 / 3,
            sampleRate=RATE,
        )
        self.key = es.Key(
            profileType=key_profile,
            pcpSize=tuning.KEY_BINS,
            numHarmonics=4,
            slope=0.6,
            usePolyphony=True,
            useThreeChords=True,
        )
        self.frames = es.FrameGenerator

    def meter(self, stereo: np.ndarray[Any, Any]) -> tuple[Any, Any]:
        if stereo.shape[0] < loudness.MOMENTARY:
            return np.zeros(0), np.zeros(0)
        self.loudness.reset()
        momentary, short_term, _integrated, _range = self.loudness(stereo)
        return momentary, short_term


@functools.cache
def _algorithms(key_profile: str) -> _Algorithms:
    return _Algorithms(_essentia(), key_profile)


@dataclass
class _Accumulators:
    """Everything carried from window to window: a few hundred bytes per window of audio."""

    windows: list[tempo.WindowTempo] = field(default_factory=list)
    hpcp: np.ndarray[Any, Any] = field(default_factory=lambda: np.zeros(HPCP_SIZE))
    segments: dict[int, np.ndarray[Any, Any]] = field(default_factory=dict)
    tonal_frames: int = 0
    spectral_energy: float = 0.0
    centroid_sum: float = 0.0
    bright_energy: float = 0.0
    danceability: float = 0.0
    dynamic: float = 0.0
    onsets: float = 0.0
    sounding: float = 0.0


class _Engine:
    def __init__(self, settings: AnalysisSettings, mono_source: bool) -> None:
        self.settings = settings
        self.algo = _algorithms(settings.key_profile)
        self.loud = loudness.LoudnessAccumulator(self.algo.meter, mono_source=mono_source)
        self.acc = _Accumulators()
        self.freqs = np.fft.rfftfreq(KEY_FRAME, 1 / RATE).astype(np.float64)
        self.tf: mood.TensorflowMood | None = None
        self.mood_error: str | None = None
        if settings.models_dir:
            try:
                self.tf = mood.TensorflowMood(_essentia(), settings.models_dir)
            except mood.ModelsUnavailable as exc:
                self.mood_error = str(exc)

    def window(self, block: np.ndarray[Any, Any], start: float) -> None:
        seconds = block.shape[1] / RATE
        stereo = np.ascontiguousarray(block.T)
        mono = np.ascontiguousarray(block.mean(axis=0), dtype=np.float32)
        self.loud.feed(stereo)
        silent = float(np.max(np.abs(block))) < SILENT_PEAK if block.size else True
        a = self.acc
        if silent:
            a.windows.append(tempo.WindowTempo(start, seconds, None, 0.0, 0.0, True))
            return
        a.sounding += seconds
        a.windows.append(self._tempo(mono, start, seconds))
        a.onsets += a.windows[-1].onset_rate * seconds
        self._tonal(mono, start)
        self.algo.danceability.reset()
        dance = float(self.algo.danceability(mono)[0])
        a.danceability += seconds * soft_limit(finite(dance))
        self.algo.dynamic.reset()
        a.dynamic += seconds * finite(float(self.algo.dynamic(mono)[0]))
        if self.tf is not None:
            self.tf.feed(mono, seconds)

    def _tempo(self, mono: np.ndarray[Any, Any], start: float, seconds: float) -> tempo.WindowTempo:
        envelopes = tempo.onset_envelopes(mono)
        rate = max(tempo.onset_rate(envelopes.main), tempo.onset_rate(envelopes.high))
        beatless = tempo.WindowTempo(start, seconds, None, 0.0, rate, False)
        if seconds < MIN_TEMPO_SECONDS or rate < tempo.MIN_ONSET_RATE:
            return beatless
        self.algo.bpm.reset()
        bpm = float(self.algo.bpm(mono))
        if not 20.0 < bpm < 400.0:
            return beatless
        bass = envelopes.bass()
        level = metre.decide(
            bpm, tempo.autocorrelation(bass), tempo.autocorrelation(envelopes.full()), bass
        )
        if level.clarity < tempo.MIN_CLARITY:
            return beatless
        return tempo.WindowTempo(
            start,
            seconds,
            level.bpm,
            level.clarity,
            rate,
            False,
            level.evidenced,
            level.agrees,
            level.moved,
        )

    def _tonal(self, mono: np.ndarray[Any, Any], start: float) -> None:
        a, algo = self.acc, self.algo
        segment = int(start // KEY_SEGMENT_SECONDS)
        seg_sum = a.segments.setdefault(segment, np.zeros(HPCP_SIZE))
        bright_mask = self.freqs >= BRIGHT_HZ
        for frame in algo.frames(mono, frameSize=KEY_FRAME, hopSize=KEY_HOP, startFromZero=True):
            if float(np.sqrt(np.mean(frame * frame))) < FRAME_FLOOR:
                continue
            spectrum = algo.spectrum(algo.window(frame))
            # Magnitude-weighted, as spectral centroids usually are: power weighting lets the
            # bass decide alone (a techno loop's power centroid is ~160 Hz), so brightness was
            # near zero on almost all music and valence followed the mode alone.
            magnitude = np.asarray(spectrum, dtype=np.float64)
            total = float(magnitude.sum())
            if total > 0:
                a.spectral_energy += total
                a.centroid_sum += float(np.dot(self.freqs, magnitude))
                a.bright_energy += float(magnitude[bright_mask].sum())
            freqs, mags = algo.peaks(spectrum)
            if len(freqs) == 0:
                continue
            hpcp = np.asarray(algo.hpcp(freqs, mags), dtype=np.float64)
            if hpcp.max() > 0:
                a.hpcp += hpcp
                seg_sum += hpcp
                a.tonal_frames += 1

    def _key(self, fine: np.ndarray[Any, Any], cents: float) -> tuple[str, str, float] | None:
        if not fine.max() > 0:
            return None
        pcp = tuning.retune(fine, cents)
        self.algo.key.reset()
        tonic, scale, strength, _ = self.algo.key((pcp / pcp.max()).astype(np.float32))
        if scale not in ("major", "minor"):
            return None
        return Key.of(tonic, scale).tonic_name, scale, finite(float(strength))

    def finish(self, decoder: Decoder) -> AnalysisResult:
        s, a = self.settings, self.acc
        duration = decoder.decoded_seconds
        long_recording = duration >= s.long_recording_seconds
        t = tempo.combine(a.windows, s.bpm_min, s.bpm_max, long_recording=long_recording)

        # One tuning for the whole recording: segments are too short to estimate their own as
        # reliably, and a recording rarely changes its tuning.
        cents = tuning.estimate_cents(a.hpcp) if a.tonal_frames else 0.0
        key = self._key(a.hpcp, cents) if a.tonal_frames else None
        segments: list[tuple[float, str, float]] = []
        if long_recording:
            for index in sorted(a.segments):
                found = self._key(a.segments[index], cents)
                if found is None:
                    continue
                name = Key.of(found[0], found[1]).name
                if segments and segments[-1][1] == name:
                    continue  # merge: a segment list records key *changes*
                segments.append((index * KEY_SEGMENT_SECONDS, name, round(found[2], 3)))

        integrated = self.loud.integrated()
        peak = self.loud.peak
        sounding = a.sounding or 1.0
        descriptors = mood.Descriptors(
            loudness=integrated,
            bpm=t.bpm,
            onset_rate=a.onsets / sounding,
            dynamic_complexity=a.dynamic / sounding,
            mode=key[1] if key else None,
            key_strength=key[2] if key else 0.0,
            centroid_hz=a.centroid_sum / a.spectral_energy if a.spectral_energy else 0.0,
            brightness=a.bright_energy / a.spectral_energy if a.spectral_energy else 0.0,
        )
        estimate = mood.from_descriptors(descriptors)
        if self.tf is not None:
            estimate = self.tf.result(estimate.energy, estimate.valence)

        return AnalysisResult(
            version=ANALYSIS_VERSION,
            settings_fingerprint=s.fingerprint(),
            duration=round(duration, 3),
            sample_rate=decoder.info.sample_rate,
            channels=decoder.source_channels or decoder.info.channels,
            bpm=t.bpm,
            bpm_confidence=round(t.confidence, 3),
            bpm_uncertain=t.uncertain,
            beatless=t.beatless,
            tempo_curve=t.curve,
            bpm_start=t.bpm_start,
            bpm_end=t.bpm_end,
            tempo_stability=t.stability,
            variable_tempo=t.variable,
            key_tonic=key[0] if key else None,
            key_mode=key[1] if key else None,
            key_strength=round(key[2], 3) if key else 0.0,
            tuning_frequency=round(tuning.frequency(cents), 1),
            key_segments=segments,
            loudness_integrated=round(integrated, 2),
            loudness_range=round(finite(self.loud.loudness_range()), 2),
            sample_peak=round(peak, 6),
            replaygain_track_gain=round(-18.0 - integrated, 2),
            replaygain_track_peak=round(peak, 6),
            danceability=round(a.danceability / sounding, 3),
            energy=estimate.energy,
            valence=estimate.valence,
            mood=estimate.label,
            mood_features={k: round(finite(v), 4) for k, v in estimate.features.items()},
            mood_source=estimate.source,
            mood_error=self.mood_error,
            warnings=list(decoder.warnings),
        )


def block_samples(settings: AnalysisSettings) -> int:
    """The processing window in samples: the curve window, on the 100 ms loudness grid."""
    return max(1, round(settings.curve_window_seconds * 10)) * loudness.HOP


def analyze_file(path: str, settings: AnalysisSettings) -> AnalysisResult:
    """Analyse one audio file. Raises BadInput (or FileVanished) when the file is the problem."""
    with Decoder(path, block_samples(settings)) as decoder:
        engine: _Engine | None = None
        start = 0
        for block in decoder.blocks():
            if engine is None:
                engine = _Engine(settings, mono_source=decoder.source_channels == 1)
            engine.window(block, start / RATE)
            start += block.shape[1]
        if engine is None:  # pragma: no cover - Decoder raises before yielding nothing
            raise BadInput("no audio could be decoded")
        result = engine.finish(decoder)
    if not math.isfinite(result.duration) or result.duration <= 0:
        raise BadInput("no audio could be decoded")
    return result
