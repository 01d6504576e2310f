"""Generated DJ mixes with known truth, for the fingerprint tests and bench/identify.py.

A *track* is a drum pattern (tests.support.signals) with chords, a bass line and a lead
line of random notes and timbres, each from its own tempo, kit and seed: no two share their
music. Tracks are rendered at 44.1 kHz and brought down to ``RATE`` mono, the rate the
fingerprinter reads.

A *mix* plays tracks one after the other with linear crossfades (one length for all, or one per
transition), each changed by one of:

* ``resample``: played faster or slower, tempo and pitch together (a turntable's pitch fader);
* ``stretch``: tempo changed, pitch kept (a CDJ's key lock), by a phase vocoder below;
* ``pitch``: pitch shifted, tempo kept (a stretch then a resampling back to the length).

With ``sweeps``, each crossfade is mixed the way DJs do it: the outgoing track is low-passed
(its cutoff swept down from 4 kHz to 150 Hz over the fade) while the incoming one comes in
high-passed (its cutoff swept down from 2 kHz to 30 Hz): for a while one is only treble, the
other only bass.

The truth records where each track starts and ends in the mix, its speed factor and its fades.
Like the rest of tests.support, this imports nothing from tracktiond.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
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
    fade_in: float = 0.0  # seconds of crossfade with the track before (0 for the first)
    fade_out: float = 0.0  # and with the one after (0 for the last)


def track(
    number: int, seconds: float = 30.0, *, noise: bool = False, kit: str | None = None
) -> F32:
    """Generated track ``number``: distinct music for every number.

    A drum loop (``signals``), and a chord part, a bass line and a lead line of random notes,
    lengths and timbres drawn here. ``signals.chord_progression`` is not used: it is one cadence
    in 24 keys and three timbres, so two tracks built on it are in part pitch-shifted copies of
    each other, which a pitch-robust fingerprint rightly matches; real tracks are not that alike.
    """
    rng = np.random.default_rng(1000 + number)
    bpm = float(rng.uniform(96, 140))
    kits = (*signals.KITS, *signals.TRAP_KITS)
    drawn = kits[int(rng.integers(len(kits)))]  # drawn even if forced: the rest stays the same
    kit = kit or drawn
    drums = signals.drum_pattern(bpm, kit, seconds=seconds, seed=number, channels=1)[:, 0]
    beat = 60.0 / bpm
    chords = _notes(rng, seconds, beat * float(rng.choice([2.0, 4.0, 8.0])), (48, 72), 3, (0.8,))
    bass = _notes(rng, seconds, beat * float(rng.choice([0.5, 1.0, 2.0])), (33, 50), 1, (1.0,))
    lead = _notes(rng, seconds, beat, (60, 88), 1, (0.25, 0.5, 0.75, 1.0, 1.5))
    mixed = 0.35 * drums + 0.35 * chords + 0.35 * bass + 0.5 * lead
    if noise:
        mixed = mixed + 0.2 * _swells(rng, seconds, beat * 16)
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


def _swells(
    rng: np.random.Generator, seconds: float, unit: float
) -> np.ndarray[Any, np.dtype[np.float64]]:
    """Noise swells ``unit`` seconds long, each band-passed around a centre that glides."""
    rate = signals.RATE
    out = np.zeros(round(seconds * rate))
    at = float(rng.uniform(0, unit))
    while at < seconds:
        start = round(at * rate)
        n = min(round(unit * rate), out.size - start)
        if n > rate // 10:
            lo, hi = sorted(float(x) for x in rng.uniform(200, 6000, size=2))
            noise = rng.standard_normal(n)
            sos = sps.butter(2, [lo, max(hi, lo * 1.5)], btype="bandpass", fs=rate, output="sos")
            env = np.linspace(0.0, 1.0, n) ** 2  # a riser: up, then cut
            out[start : start + n] += sps.sosfilt(sos, noise) * env
        at += unit * float(rng.choice([1.0, 2.0]))
    return out / max(1e-9, float(np.max(np.abs(out))))


def sweep(x: F32, kind: str, start_hz: float, end_hz: float, block: int = 400) -> F32:
    """``x`` through a 2nd-order low-pass or high-pass whose cutoff glides (log-linearly) from
    ``start_hz`` to ``end_hz``, updated every ``block`` samples (50 ms at 8 kHz)."""
    out = np.empty(len(x), dtype=np.float64)
    blocks = max(1, math.ceil(len(x) / block))
    cutoffs = np.geomspace(start_hz, end_hz, blocks)
    zi = np.zeros((1, 2))
    nyquist = RATE / 2
    for i, hz in enumerate(cutoffs):
        sos = sps.butter(2, min(float(hz), 0.95 * nyquist), btype=kind, fs=RATE, output="sos")
        seg = x[i * block : (i + 1) * block].astype(np.float64)
        # The state carries over as the coefficients change: a smooth sweep, no clicks.
        out[i * block : i * block + seg.size], zi = sps.sosfilt(sos, seg, zi=zi)
    return out.astype(np.float32)


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
    crossfade: float | Sequence[float] = 8.0,
    *,
    noise_db: float | None = None,
    seed: int = 0,
    sweeps: bool = False,
) -> tuple[F32, list[Played]]:
    """A mix of ``(number, audio, change, amount)`` tracks, crossfaded over ``crossfade`` s (or
    ``crossfade[i]`` s between track ``i`` and ``i + 1``), EQ-swept in the fades if ``sweeps``."""
    if isinstance(crossfade, int | float):
        fades = [float(crossfade)] * max(0, len(tracks) - 1)
    else:
        fades = [float(x) for x in crossfade]
        if len(fades) != max(0, len(tracks) - 1):
            raise ValueError(f"{len(tracks)} tracks need {len(tracks) - 1} crossfades")
    changed = [change(audio, kind, amount)[0] for _, audio, kind, amount in tracks]
    # A fade is at most half of either track it joins: the track is heard alone somewhere.
    lengths = [
        min(round(f * RATE), len(changed[i]) // 2, len(changed[i + 1]) // 2)
        for i, f in enumerate(fades)
    ]
    pieces: list[tuple[int, F32]] = []
    played: list[Played] = []
    at = 0
    for i, ((number, _, kind, amount), audio) in enumerate(zip(tracks, changed, strict=True)):
        fade_in = lengths[i - 1] if i > 0 else 0
        fade_out = lengths[i] if i < len(lengths) else 0
        start = max(0, at - fade_in)
        pieces.append((start, audio))
        played.append(
            Played(
                number,
                start / RATE,
                (start + len(audio)) / RATE,
                kind,
                amount,
                fade_in / RATE,
                fade_out / RATE,
            )
        )
        at = start + len(audio)
    out = np.zeros(at, dtype=np.float64)
    for i, (start, audio) in enumerate(pieces):
        audio = audio.copy()
        gain = np.ones(len(audio))
        n_in = lengths[i - 1] if i > 0 else 0
        n_out = lengths[i] if i < len(lengths) else 0
        if n_in:
            gain[:n_in] = np.linspace(0.0, 1.0, n_in)
            if sweeps:
                audio[:n_in] = sweep(audio[:n_in], "highpass", 2000.0, 30.0)
        if n_out:
            gain[len(audio) - n_out :] = np.linspace(1.0, 0.0, n_out)
            if sweeps:
                audio[len(audio) - n_out :] = sweep(
                    audio[len(audio) - n_out :], "lowpass", 4000.0, 150.0
                )
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
