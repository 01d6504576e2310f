"""Mood: a transparent estimate from signal descriptors, and the optional TensorFlow path.

Pretrained mood models cannot be downloaded on the machines tracktiond targets, and essentia's
are licensed for non-commercial use only, so the default is a documented formula on a
two-dimensional (arousal/valence) model of mood; docs/analysis.md explains each term.

    energy  = 0.35 loudness + 0.25 tempo + 0.25 onset density + 0.15 (1 - dynamic complexity)
    valence = 0.40 mode + 0.35 brightness + 0.25 tempo

Every input is scaled to 0..1 first (the ranges below); the label is the quadrant:

    energy >= 0.5, valence >= 0.5  -> "energetic"      energy >= 0.5, valence < 0.5 -> "tense"
    energy <  0.5, valence >= 0.5  -> "calm"           energy <  0.5, valence < 0.5 -> "melancholic"

TensorFlow: when ``models_dir`` is set and this essentia build has TensorFlow support, the
``mood_*.pb`` models there (essentia's MusiCNN-based classifiers: mood_happy, mood_sad,
mood_aggressive, mood_relaxed, ...) are run on 16 kHz audio, window by window, and their mean
activations become the mood features. If the build or the models are missing the descriptor
estimate is used and the reason is recorded in ``mood_error``.
"""

from __future__ import annotations

import glob
import os
from dataclasses import dataclass, field
from typing import Any

LABELS = ("energetic", "tense", "calm", "melancholic")

# TensorFlow mood classifiers and the quadrant each one votes for.
TF_MOODS: dict[str, str] = {
    "happy": "energetic",
    "party": "energetic",
    "aggressive": "tense",
    "relaxed": "calm",
    "sad": "melancholic",
}
TF_ALGORITHM = "TensorflowPredictMusiCNN"
TF_RATE = 16000


# How far a clear major (minor) key moves the mode term from neutral: 0.15..0.85, so that a
# bright, fast minor track can still read positive (with 0.5, mode alone decided valence).
MODE_SWING = 0.35


def _scale(value: float, low: float, high: float) -> float:
    return min(1.0, max(0.0, (value - low) / (high - low)))


@dataclass
class Descriptors:
    """Whole-recording inputs, already averaged by the engine."""

    loudness: float  # integrated LUFS
    bpm: float | None
    onset_rate: float  # onsets per second
    dynamic_complexity: float  # essentia DynamicComplexity, dB of loudness fluctuation
    mode: str | None  # "major" / "minor"
    key_strength: float
    centroid_hz: float  # energy-weighted spectral centroid
    brightness: float  # share of spectral energy above 1.5 kHz


@dataclass
class Mood:
    energy: float
    valence: float
    label: str
    features: dict[str, float] = field(default_factory=dict)
    source: str = "descriptors"


def label_for(energy: float, valence: float) -> str:
    if energy >= 0.5:
        return "energetic" if valence >= 0.5 else "tense"
    return "calm" if valence >= 0.5 else "melancholic"


def from_descriptors(d: Descriptors) -> Mood:
    loud = _scale(d.loudness, -30.0, -6.0)
    tempo = _scale(d.bpm, 60.0, 180.0) if d.bpm is not None else 0.0
    density = _scale(d.onset_rate, 0.0, 8.0)
    dynamics = _scale(d.dynamic_complexity, 0.0, 10.0)
    # Major reads as positive, minor as negative, in proportion to how clear the key is; no key
    # at all (noise, drums only) is neutral.
    if d.mode is None:
        mode = 0.5
    else:
        sign = 1.0 if d.mode == "major" else -1.0
        mode = 0.5 + MODE_SWING * sign * _scale(d.key_strength, 0.0, 0.8)
    bright = 0.5 * _scale(d.centroid_hz, 500.0, 3000.0) + 0.5 * _scale(d.brightness, 0.1, 0.6)
    energy = 0.35 * loud + 0.25 * tempo + 0.25 * density + 0.15 * (1.0 - dynamics)
    valence = 0.4 * mode + 0.35 * bright + 0.25 * tempo
    features = {
        "loudness": loud,
        "tempo": tempo,
        "onset_density": density,
        "dynamic_complexity": dynamics,
        "mode": mode,
        "brightness": bright,
        "onset_rate_per_s": d.onset_rate,
        "dynamic_complexity_db": d.dynamic_complexity,
        "spectral_centroid_hz": d.centroid_hz,
    }
    return Mood(round(energy, 4), round(valence, 4), label_for(energy, valence), features)


# -- TensorFlow ----------------------------------------------------------------------------------


class ModelsUnavailable(Exception):
    """The TensorFlow mood path was asked for but cannot run; the message says what is missing."""


def find_models(models_dir: str) -> dict[str, str]:
    """``{"happy": "/path/mood_happy-msd-musicnn-1.pb", ...}`` for the known moods present."""
    if not os.path.isdir(models_dir):
        raise ModelsUnavailable(f"models_dir {models_dir} is not a directory")
    found: dict[str, str] = {}
    for name in TF_MOODS:
        matches = sorted(glob.glob(os.path.join(glob.escape(models_dir), f"mood_{name}*.pb")))
        if matches:
            found[name] = matches[0]
    if not found:
        wanted = ", ".join(f"mood_{n}*.pb" for n in TF_MOODS)
        raise ModelsUnavailable(f"no TensorFlow mood models in {models_dir} (looked for {wanted})")
    return found


class TensorflowMood:
    """Runs the models window by window (16 kHz mono) and averages their activations."""

    def __init__(self, es: Any, models_dir: str) -> None:
        # Models first: a wrong directory is the likelier mistake, and the cheaper to fix.
        found = find_models(models_dir)
        if not hasattr(es, TF_ALGORITHM):
            raise ModelsUnavailable(
                f"this essentia build has no TensorFlow support ({TF_ALGORITHM} is missing); "
                "install essentia-tensorflow to use models_dir"
            )
        try:
            self._models = {
                name: getattr(es, TF_ALGORITHM)(graphFilename=path, output="model/Sigmoid")
                for name, path in found.items()
            }
        except RuntimeError as exc:  # essentia reports unreadable or incompatible graphs so
            raise ModelsUnavailable(f"cannot load the mood models in {models_dir}: {exc}") from exc
        self._resample = es.Resample(inputSampleRate=44100, outputSampleRate=TF_RATE)
        self._sums = dict.fromkeys(self._models, 0.0)
        self._weight = 0.0

    def feed(self, mono: Any, seconds: float) -> None:
        self._resample.reset()
        audio = self._resample(mono)
        for name, model in self._models.items():
            model.reset()
            activations = model(audio)
            if len(activations):
                # Column 0 is the positive class ("happy", not "non happy") in these models.
                self._sums[name] += float(activations[:, 0].mean()) * seconds
        self._weight += seconds

    def result(self, energy: float, valence: float) -> Mood:
        weight = self._weight or 1.0
        features = {name: total / weight for name, total in self._sums.items()}
        votes = dict.fromkeys(LABELS, 0.0)
        for name, value in features.items():
            votes[TF_MOODS[name]] = max(votes[TF_MOODS[name]], value)
        label = max(votes, key=lambda k: votes[k])
        return Mood(energy, valence, label, features, "tensorflow")
