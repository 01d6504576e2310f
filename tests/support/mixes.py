"""Generated DJ mixes with known truth, for the fingerprint tests and bench/identify.py.

A *track* is a drum pattern (tests.support.signals) with chords, a bass line and a lead
line of random notes and timbres, each from its own tempo, kit and seed: no two share their
music. Tracks are rendered at 44.1 kHz and brought down to ``RATE`` mono, the rate the
fingerprinter reads.

A *mix* plays tracks one after the other with linear crossfades, each changed by one of:

* ``resample``: played faster or slower, tempo and pitch together (a turntable's pitch fader);
* ``stretch``: tempo changed, pitch kept (a CDJ's key lock), by a phase vocoder below;
* ``pitch``: pitch shifted, tempo kept (a stretch then a resampling back to the length).

The truth records where each track starts and ends in the mix and its speed factor. Like the rest
of tests.support, this imports nothing from tracktiond.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

import numpy as np
from scipy import signal as sps

from tests.support import signals

F32 = np.ndarray[Any, np.dtype[np.float32]]
RATE = 8000


@dataclass(frozen=True)
class Played:
    track: int
    start: float  # seconds in the mix where the track begins (its fade-in starts)
    end: float
    change: str  # "none", "resample", "stretch" or "pitch"
    amount: (
        float  # relative speed change for resample/stretch (+0.04: 4 % faster), semitones for pitch
    )


def track(number: int, seconds: float = 30.0) -> F32:
    """Generated track ``number``: distinct music for every number.

    A drum loop (``signals``), and a chord part, a bass line and a lead line of random notes,
    lengths and timbres drawn here. ``signals.chord_progression`` is not used: it is one cadence
    in 24 keys and three timbres, so two tracks built on it are in part pitch-shifted copies of
    each other, which a pitch-robust fingerprint rightly matches; real tracks are not that alike.
    """
    rng = np.random.default_rng(1000 + number)
    bpm = float(rng.uniform(96, 140))
    kits = (*signals.KITS, *signals.TRAP_KITS)
    kit = kits[int(rng.integers(len(kits)))]
    drums = signals.drum_pattern(bpm, kit, seconds=seconds, seed=number, channels=1)[:, 0]
    beat = 60.0 / bpm
    chords = _notes(rng, seconds, beat * float(rng.choice([2.0, 4.0, 8.0])), (48, 72), 3, (0.8,))
    bass = _notes(rng, seconds, beat * float(rng.choice([0.5, 1.0, 2.0])), (33, 50), 1, (1.0,))
    lead = _notes(rng, seconds, beat, (60, 88), 1, (0.25, 0.5, 0.75, 1.0, 1.5))
    mixed = 0.35 * drums + 0.35 * chords + 0.35 * bass + 0.5 * lead
    low = np.asarray(sps.resample_poly(mixed.astype(np.float64), RATE // 100, signals.RATE // 100))
    return np.asarray(low / max(1e-9, float(np.max(np.abs(low)))) * 0.8, dtype=np.float32)


def _notes(
    rng: np.random.Generator,
    seconds: float,
    unit: float,
    midi: tuple[int, int],
    voices: int,
    lengths: tuple[float, ...],
) -> np.ndarray[Any, np.dtype[np.float64]]:
    """Random notes (``voices`` at once) of ``lengths`` × ``unit`` seconds, in a random timbre."""
    rate = signals.RATE
    out = np.zeros(round(seconds * rate))
    count = int(rng.integers(2, 7))
    partials = [(k, float(rng.uniform(0.1, 1.0)) / k) for k in range(1, count)]
    decay = float(rng.uniform(0.1, 2.0)) * unit
    at = 0.0
    while at < seconds:
        length = unit * float(rng.choice(lengths))
        start = round(at * rate)
        n = min(round(length * rate), out.size - start)
        if rng.random() < 0.85 and n > 0:
            t = np.arange(n) / rate
            env = np.exp(-t / decay) * np.minimum(1.0, t / 0.005)
            for note in rng.choice(np.arange(*midi), size=voices, replace=False):
                hz = 440.0 * 2 ** ((int(note) - 69) / 12)
                tone = sum(level * np.sin(2 * np.pi * k * hz * t) for k, level in partials)
                out[start : start + n] += tone * env / voices
        at += length
    return out / max(1e-9, float(np.max(np.abs(out))))


def resample(x: F32, speed: float) -> F32:
    """Play ``x`` ``speed`` times as fast: shorter, and pitched up, together."""
    ratio = Fraction(1 / speed).limit_denominator(200)
    out = sps.resample_poly(x.astype(np.float64), ratio.numerator, ratio.denominator)
    return np.asarray(out, dtype=np.float32)


def stretch(x: F32, speed: float, n_fft: int = 1024, hop: int = 128) -> F32:
    """Play ``x`` ``speed`` times as fast with its pitch kept: a plain phase vocoder."""
    window = np.hanning(n_fft)
    frames = 1 + (len(x) - n_fft) // hop
    spec = np.fft.rfft(
        np.lib.stride_tricks.sliding_window_view(x.astype(np.float64), n_fft)[::hop][:frames]
        * window,
        axis=1,
    )
    steps = np.arange(0, frames - 1, speed)
    expected = 2 * np.pi * hop * np.arange(spec.shape[1]) / n_fft
    phase = np.angle(spec[0])
    out = np.zeros(len(steps) * hop + n_fft)
    norm = np.zeros_like(out)
    for i, pos in enumerate(steps):
        k = int(pos)
        frac = pos - k
        mag = (1 - frac) * np.abs(spec[k]) + frac * np.abs(spec[k + 1])
        frame = np.fft.irfft(mag * np.exp(1j * phase), n_fft) * window
        out[i * hop : i * hop + n_fft] += frame
        norm[i * hop : i * hop + n_fft] += window**2
        # Advance each bin by its measured frequency, wrapped around the bin's own advance.
        delta = np.angle(spec[k + 1]) - np.angle(spec[k]) - expected
        delta -= 2 * np.pi * np.round(delta / (2 * np.pi))
        phase = phase + expected + delta
    out /= np.maximum(norm, 1e-3)
    return out.astype(np.float32)


def pitch_shift(x: F32, semitones: float) -> F32:
    """Shift ``x`` by ``semitones`` keeping its tempo: stretched, then resampled back."""
    factor = 2 ** (semitones / 12)
    return resample(stretch(x, 1 / factor), factor)


def change(x: F32, kind: str, amount: float) -> tuple[F32, float]:
    """``x`` changed; and the resulting speed factor (how much faster it plays)."""
    if kind == "none":
        return x, 1.0
    if kind == "resample":
        return resample(x, 1 + amount), 1 + amount
    if kind == "stretch":
        return stretch(x, 1 + amount), 1 + amount
    if kind == "pitch":
        return pitch_shift(x, amount), 1.0
    raise ValueError(f"unknown change {kind!r}")


def mix(
    tracks: list[tuple[int, F32, str, float]],
    crossfade: float = 8.0,
    *,
    noise_db: float | None = None,
    seed: int = 0,
) -> tuple[F32, list[Played]]:
    """A mix of ``(number, audio, change, amount)`` tracks, crossfaded over ``crossfade`` s."""
    fade = round(crossfade * RATE)
    pieces: list[tuple[int, F32]] = []
    played: list[Played] = []
    at = 0
    for number, audio, kind, amount in tracks:
        changed, _ = change(audio, kind, amount)
        start = max(0, at - fade) if pieces else 0
        pieces.append((start, changed))
        played.append(Played(number, start / RATE, (start + len(changed)) / RATE, kind, amount))
        at = start + len(changed)
    out = np.zeros(at, dtype=np.float64)
    for i, (start, audio) in enumerate(pieces):
        gain = np.ones(len(audio))
        n = min(fade, len(audio) // 2)
        if i > 0:
            gain[:n] = np.linspace(0.0, 1.0, n)
        if i < len(pieces) - 1:
            gain[len(audio) - n :] = np.linspace(1.0, 0.0, n)
        out[start : start + len(audio)] += audio * gain
    if noise_db is not None:
        rng = np.random.default_rng(seed)
        out += rng.standard_normal(out.size) * 10 ** (noise_db / 20)
    return out.astype(np.float32), played


def blocks(x: F32, seconds: float = 1.0) -> list[F32]:
    """``x`` cut into blocks, as a streaming decoder would hand it over."""
    size = max(1, round(seconds * RATE))
    return [x[i : i + size] for i in range(0, len(x), size)]


def speed_of(played: Played) -> float:
    if played.change in ("resample", "stretch"):
        return 1 + played.amount
    return 1.0


def semitones_of(played: Played) -> float:
    if played.change == "resample":
        return 12 * math.log2(1 + played.amount)
    if played.change == "pitch":
        return played.amount
    return 0.0
