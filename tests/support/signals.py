"""Test signals with known ground truth for the analysis tests and the analysis benchmark.

Everything is synthesised here with numpy, so the truth is known by construction:

* :func:`drum_pattern`: a drum loop (kick, snare/clap, hats) at a given tempo, in one of several
  kits that differ in pattern *and* in timbre, with swing, timing/velocity humanisation and
  background noise.  The tempo is the rate of the kick/snare quarter notes.
* :func:`chord_progression`: a cadential chord progression with a bass line and a melody in a
  given key, in one of several timbres (a band-limited sawtooth pad, a piano-like tone of
  decaying, slightly inharmonic partials, and an organ-like tone).
* :func:`sine` / :func:`sine_sequence` / :func:`pink_noise`: signals of known level.  For a
  997 Hz sine the ITU-R BS.1770 loudness follows from its level alone (the standard's -0.691 dB
  constant cancels the K-filter's gain there), so ``expected_sine_lufs`` needs no filter at all;
  for anything else :func:`bs1770_loudness` computes the ungated loudness from the standard's
  filter definition in the frequency domain (an independent reference for the analyser).

Writing: :func:`write_audio` encodes an in-memory signal with FFmpeg (through PyAV);
:func:`write_stream` encodes from an iterator of blocks, so a multi-hour file for the benchmark
is generated without ever holding it in memory.  Signals are ``float32`` arrays shaped
``(samples, channels)``.  Like ``audiogen``, this module imports nothing from ``tracktiond``.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import numpy as np
from av.audio.stream import AudioStream

__all__ = [
    "CODEC_EXTENSIONS",
    "KEYS",
    "KITS",
    "PITCH_CLASSES",
    "TIMBRES",
    "TRAP_KITS",
    "Signal",
    "bs1770_loudness",
    "chord_progression",
    "drifting_drums",
    "drum_pattern",
    "expected_sine_lufs",
    "held_chord",
    "pink_noise",
    "sine",
    "sine_sequence",
    "write_audio",
    "write_stream",
]

Signal = np.ndarray[Any, np.dtype[np.float32]]
_F64 = np.ndarray[Any, np.dtype[np.float64]]

RATE = 44100

PITCH_CLASSES: tuple[str, ...] = ("C", "C#", "D", "Eb", "E", "F", "F#", "G", "Ab", "A", "Bb", "B")
KEYS: tuple[tuple[str, str], ...] = tuple(
    (tonic, mode) for mode in ("major", "minor") for tonic in PITCH_CLASSES
)
KITS: tuple[str, ...] = ("house", "breakbeat", "hiphop")
# Patterns that trap metrical-level choice (issue 15): hats on the off-beats only, a half-time
# backbeat, a triplet shuffle, a waltz. Apart from KITS, so the established sets keep their size.
TRAP_KITS: tuple[str, ...] = ("offbeat", "halftime", "shuffle", "waltz")
TIMBRES: tuple[str, ...] = ("saw", "piano", "organ")


# ---------------------------------------------------------------------------------------------
# Drums
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Kit:
    """One drum kit: the sounds' parameters and a one-bar pattern in 16th-note steps."""

    kick_start_hz: float
    kick_end_hz: float
    kick_decay_s: float
    snare_tone_hz: float
    snare_decay_s: float
    clap: bool  # a clap (three quick noise bursts) instead of a snare
    hat_decay_s: float
    # step -> velocity, over one bar of beats_per_bar x steps_per_beat steps (16 16th notes in 4/4)
    kick: dict[int, float]
    snare: dict[int, float]
    hat: dict[int, float]
    open_hat: dict[int, float]
    beats_per_bar: int = 4
    steps_per_beat: int = 4  # 3: the grid is triplet eighths (a shuffle)


_KITS: dict[str, _Kit] = {
    # Four on the floor, clap on 2 and 4, open hat on the off-beats: the tempo is unambiguous.
    "house": _Kit(
        kick_start_hz=140.0,
        kick_end_hz=48.0,
        kick_decay_s=0.28,
        snare_tone_hz=0.0,
        snare_decay_s=0.12,
        clap=True,
        hat_decay_s=0.03,
        kick={0: 1.0, 4: 1.0, 8: 1.0, 12: 1.0},
        snare={4: 0.8, 12: 0.8},
        hat={s: 0.25 for s in range(0, 16, 2)},
        open_hat={2: 0.45, 6: 0.45, 10: 0.45, 14: 0.45},
    ),
    # Rock/breakbeat: kick on 1 and 3 (plus a push), snare on 2 and 4, eighth-note hats.
    "breakbeat": _Kit(
        kick_start_hz=110.0,
        kick_end_hz=55.0,
        kick_decay_s=0.18,
        snare_tone_hz=190.0,
        snare_decay_s=0.16,
        clap=False,
        hat_decay_s=0.05,
        kick={0: 1.0, 7: 0.6, 8: 0.9, 10: 0.7},
        snare={4: 1.0, 12: 1.0},
        hat={s: 0.35 if s % 4 == 0 else 0.25 for s in range(0, 16, 2)},
        open_hat={},
    ),
    # Hip-hop: a boomy long kick, tight snare on 2 and 4, swung 16th hats.
    "hiphop": _Kit(
        kick_start_hz=90.0,
        kick_end_hz=42.0,
        kick_decay_s=0.45,
        snare_tone_hz=230.0,
        snare_decay_s=0.10,
        clap=False,
        hat_decay_s=0.02,
        kick={0: 1.0, 3: 0.5, 8: 0.9, 11: 0.4},
        snare={4: 0.95, 12: 0.95},
        hat={s: 0.3 if s % 2 == 0 else 0.15 for s in range(16)},
        open_hat={},
    ),
    # A kick on every beat and an open hat on every off-beat, nothing else: the hats recur twice
    # per beat, which pulls trackers to double time (87 BPM read as 174).
    "offbeat": _Kit(
        kick_start_hz=130.0,
        kick_end_hz=50.0,
        kick_decay_s=0.25,
        snare_tone_hz=0.0,
        snare_decay_s=0.12,
        clap=True,
        hat_decay_s=0.03,
        kick={0: 1.0, 4: 1.0, 8: 1.0, 12: 1.0},
        snare={},
        hat={},
        open_hat={2: 0.6, 6: 0.6, 10: 0.6, 14: 0.6},
    ),
    # Half-time (dubstep, trap): kick on 1, snare on 3, hats on every beat with ghost eighths.
    # The tempo is the hats' quarter-note rate, as DJs count it; kick and snare alone say half.
    "halftime": _Kit(
        kick_start_hz=100.0,
        kick_end_hz=45.0,
        kick_decay_s=0.35,
        snare_tone_hz=200.0,
        snare_decay_s=0.14,
        clap=False,
        hat_decay_s=0.03,
        kick={0: 1.0, 14: 0.5},
        snare={8: 1.0},
        hat={s: 0.4 if s % 4 == 0 else 0.15 for s in range(0, 16, 2)},
        open_hat={},
    ),
    # 12/8 shuffle: kick on 1 and 3, snare on 2 and 4, hats on every triplet eighth (three per
    # beat), so a 3/2 reading is always on offer.
    "shuffle": _Kit(
        kick_start_hz=110.0,
        kick_end_hz=52.0,
        kick_decay_s=0.2,
        snare_tone_hz=210.0,
        snare_decay_s=0.12,
        clap=False,
        hat_decay_s=0.04,
        kick={0: 1.0, 6: 0.9, 11: 0.4},
        snare={3: 1.0, 9: 1.0},
        hat={s: 0.35 if s % 3 == 0 else 0.2 for s in range(12)},
        open_hat={},
        steps_per_beat=3,
    ),
    # 3/4: kick on 1, snare on 2 and 3, hats on the eighths.
    "waltz": _Kit(
        kick_start_hz=120.0,
        kick_end_hz=55.0,
        kick_decay_s=0.22,
        snare_tone_hz=220.0,
        snare_decay_s=0.1,
        clap=False,
        hat_decay_s=0.03,
        kick={0: 1.0},
        snare={4: 0.6, 8: 0.6},
        hat={s: 0.25 for s in range(0, 12, 2)},
        open_hat={},
        beats_per_bar=3,
    ),
}


def _kick(kit: _Kit, rng: np.random.Generator) -> _F64:
    n = int(kit.kick_decay_s * 3 * RATE)
    t = np.arange(n) / RATE
    # An exponential pitch sweep is what makes a synthesised kick sound like one.
    freq = kit.kick_end_hz + (kit.kick_start_hz - kit.kick_end_hz) * np.exp(-t / 0.04)
    phase = 2 * np.pi * np.cumsum(freq) / RATE
    body = np.sin(phase) * np.exp(-t / kit.kick_decay_s)
    click = rng.standard_normal(n) * np.exp(-t / 0.003) * 0.3
    return body + click


def _snare(kit: _Kit, rng: np.random.Generator) -> _F64:
    n = int(kit.snare_decay_s * 4 * RATE)
    t = np.arange(n) / RATE
    noise = np.diff(rng.standard_normal(n + 1))  # differentiated noise: brighter, like wires
    if kit.clap:
        env = np.zeros(n)
        for offset in (0.0, 0.011, 0.023):
            shifted = np.clip(t - offset, 0.0, None)
            env += np.where(t >= offset, np.exp(-shifted / 0.008), 0.0)
        env += np.exp(-t / kit.snare_decay_s) * 0.6
        return noise * env * 0.5
    tone = np.sin(2 * np.pi * kit.snare_tone_hz * t) * np.exp(-t / 0.05)
    return (0.6 * noise * np.exp(-t / kit.snare_decay_s) + 0.6 * tone) * 0.8


def _hat(decay_s: float, rng: np.random.Generator) -> _F64:
    n = int(decay_s * 5 * RATE)
    t = np.arange(n) / RATE
    # Second difference of white noise: a crude high-pass that leaves mostly >5 kHz energy.
    noise = np.diff(rng.standard_normal(n + 2), n=2) * 0.5
    return noise * np.exp(-t / decay_s) * 0.5


def _add(out: _F64, sound: _F64, at: float, gain: float) -> None:
    start = round(at * RATE)
    if start >= out.shape[0] or start < 0:
        return
    end = min(out.shape[0], start + sound.shape[0])
    out[start:end] += gain * sound[: end - start]


def _render_bars(
    kit_name: str,
    beat_times: _F64,
    total_samples: int,
    rng: np.random.Generator,
    swing: float,
    jitter_s: float,
) -> _F64:
    """Render the kit's pattern on a grid of beat onsets (seconds); returns mono float64."""
    kit = _KITS[kit_name]
    sounds = {
        "kick": _kick(kit, rng),
        "snare": _snare(kit, rng),
        "hat": _hat(kit.hat_decay_s, rng),
        "open_hat": _hat(kit.hat_decay_s * 6, rng),
    }
    lanes = {"kick": kit.kick, "snare": kit.snare, "hat": kit.hat, "open_hat": kit.open_hat}
    out = np.zeros(total_samples)
    for beat_index in range(len(beat_times) - 1):
        t0 = beat_times[beat_index]
        beat_len = beat_times[beat_index + 1] - t0
        for lane, steps in lanes.items():
            for step, velocity in steps.items():
                if step // kit.steps_per_beat != beat_index % kit.beats_per_bar:
                    continue
                sub = step % kit.steps_per_beat
                pos = sub / kit.steps_per_beat
                if kit.steps_per_beat == 4 and sub % 2 == 1:
                    # Swing delays the off-beat 16ths towards the triplet position.
                    pos += swing * 0.25
                at = t0 + pos * beat_len + rng.normal(0.0, jitter_s)
                gain = velocity * rng.uniform(0.85, 1.15)
                _add(out, sounds[lane], at, gain)
    return out


def _finish(mono: _F64, rng: np.random.Generator, noise_db: float, channels: int) -> Signal:
    noise = pink_noise(mono.shape[0] / RATE, seed=int(rng.integers(1 << 30)), channels=1)[:, 0]
    peak = float(np.max(np.abs(mono))) or 1.0
    mixed = mono / peak * 0.8 + noise.astype(np.float64) * 10 ** (noise_db / 20)
    mixed /= max(1.0, float(np.max(np.abs(mixed))) / 0.95)
    # Slightly different channels (a small delay on the right) so the file is real stereo.
    stereo = np.stack([mixed, np.roll(mixed, 7)], axis=1)[:, :channels]
    return stereo.astype(np.float32)


def drum_pattern(
    bpm: float,
    kit: str = "house",
    *,
    seconds: float = 20.0,
    seed: int = 0,
    swing: float = 0.0,
    noise_db: float = -30.0,
    jitter_s: float = 0.004,
    channels: int = 2,
) -> Signal:
    """A drum loop at ``bpm`` (quarter notes per minute) with the given kit.

    ``swing`` in [0, 1/3] delays off-beat 16ths (1/3 is full triplet swing); ``jitter_s`` is the
    standard deviation of the humanised timing; ``noise_db`` the level of a pink noise bed
    relative to the normalised drums.
    """
    if kit not in _KITS:
        raise ValueError(f"unknown kit {kit!r}; known: {KITS + TRAP_KITS}")
    rng = np.random.default_rng(seed)
    total = round(seconds * RATE)
    beats = np.arange(0.0, seconds + 60.0 / bpm, 60.0 / bpm)
    mono = _render_bars(kit, beats, total, rng, swing, jitter_s)
    return _finish(mono, rng, noise_db, channels)


def drifting_drums(
    seconds: float,
    *,
    bpm_start: float = 118.0,
    bpm_end: float = 132.0,
    block_seconds: float = 30.0,
    seed: int = 0,
) -> Iterator[Signal]:
    """A DJ-set-like stereo drum recording whose tempo drifts linearly, in blocks.

    Yields ``(samples, 2)`` float32 blocks of ``block_seconds`` (the last may be shorter), so a
    multi-hour recording can be streamed to an encoder in bounded memory.  The kit changes every
    few minutes, as tracks change in a set.  Each block is rendered on its own beat grid, which
    keeps the tempo continuous within a block.
    """
    rng = np.random.default_rng(seed)
    t = 0.0
    block_index = 0
    while t < seconds:
        length = min(block_seconds, seconds - t)
        mid = t + length / 2
        bpm = bpm_start + (bpm_end - bpm_start) * mid / seconds
        kit = KITS[(block_index // 8) % len(KITS)]
        beats = np.arange(0.0, length + 60.0 / bpm, 60.0 / bpm)
        mono = _render_bars(kit, beats, round(length * RATE), rng, 0.0, 0.003)
        yield _finish(mono, rng, -30.0, 2)
        t += length
        block_index += 1


# ---------------------------------------------------------------------------------------------
# Harmony
# ---------------------------------------------------------------------------------------------


def _midi_hz(note: float, cents: float = 0.0) -> float:
    """Equal temperament on A4 = 440 Hz, moved by ``cents`` (a band tuned to 432 Hz: -31.8)."""
    return 440.0 * 2 ** ((note - 69 + cents / 100) / 12)


def _wavetable(hz: float, t: _F64, partials: Iterable[tuple[int, float]], phase: float) -> _F64:
    """A harmonic tone read from a one-period table: far cheaper than summing sines per sample."""
    size = 4096
    x = np.arange(size) / size
    table = np.zeros(size + 1)
    for k, level in partials:
        table[:size] += level * np.sin(2 * np.pi * k * x + k * phase)
    table[size] = table[0]
    pos = (hz * t * size) % size
    i = pos.astype(np.int64)
    frac = pos - i
    return np.asarray(table[i] * (1 - frac) + table[i + 1] * frac, dtype=np.float64)


@functools.lru_cache(maxsize=256)
def _tone(hz: float, seconds: float, timbre: str) -> _F64:
    """One note; cached, as progressions repeat their notes (callers must not modify it)."""
    n = round(seconds * RATE)
    t = np.arange(n) / RATE
    if timbre == "saw":
        # Band-limited sawtooth (partials 1/k up to 10 kHz), two voices detuned by a few cents,
        # with a soft attack and release: a pad.
        out = np.zeros(n)
        for detune, phase in ((-0.004, 0.0), (0.004, 1.0)):
            f0 = hz * (1 + detune)
            partials = [(k, 1 / k) for k in range(1, int(10_000 / f0) + 1)]
            out += _wavetable(f0, t, partials, phase)
        env = np.minimum(1.0, t / 0.06) * np.minimum(1.0, (seconds - t) / 0.08).clip(0.0)
        return np.asarray(out * env * 0.5, dtype=np.float64)
    if timbre == "piano":
        # Struck string: partials decay faster the higher they are, and are slightly sharp
        # (stiffness inharmonicity f_k = k f0 sqrt(1 + B k^2)).  Each partial is only computed
        # until it has decayed by ~50 dB, which is most of the cost saved.
        out = np.zeros(n)
        inharmonicity = 2e-4
        for k in range(1, 16):
            fk = k * hz * math.sqrt(1 + inharmonicity * k * k)
            if fk > 12_000:
                break
            decay = 1.2 / (1 + 0.6 * (k - 1))
            m = min(n, int(decay * 6 * RATE))
            out[:m] += np.sin(2 * np.pi * fk * t[:m]) * np.exp(-t[:m] / decay) / k**1.1
        env = np.minimum(1.0, t / 0.004) * np.minimum(1.0, (seconds - t) / 0.05).clip(0.0)
        return np.asarray(out * env, dtype=np.float64)
    if timbre == "organ":
        # Drawbar organ: a few octave/fifth partials at fixed levels, no decay.
        partials = [(1, 1.0), (2, 0.6), (3, 0.35), (4, 0.3), (6, 0.15), (8, 0.1)]
        out = _wavetable(hz, t, partials, 0.0)
        env = np.minimum(1.0, t / 0.01) * np.minimum(1.0, (seconds - t) / 0.02).clip(0.0)
        return np.asarray(out * env * 0.6, dtype=np.float64)
    raise ValueError(f"unknown timbre {timbre!r}; known: {TIMBRES}")


# Triads as semitone offsets from the key's tonic; minor keys use the harmonic-minor V (major,
# with the raised leading tone) as real cadences do.
_MAJOR_PROGRESSION = ((0, 4, 7), (5, 9, 12), (7, 11, 14), (0, 4, 7))  # I IV V I
_MINOR_PROGRESSION = ((0, 3, 7), (5, 8, 12), (7, 11, 14), (0, 3, 7))  # i iv V i
_MAJOR_SCALE = (0, 2, 4, 5, 7, 9, 11)
_MINOR_SCALE = (0, 2, 3, 5, 7, 8, 11)  # harmonic minor


def chord_progression(
    tonic: str,
    mode: str,
    timbre: str = "saw",
    *,
    seconds: float = 16.0,
    seed: int = 0,
    chord_seconds: float = 2.0,
    channels: int = 2,
    cents: float = 0.0,
) -> Signal:
    """A cadential progression (I-IV-V-I or i-iv-V-i) with bass and melody in ``tonic mode``.

    ``cents`` detunes the whole recording from A4 = 440 Hz (every note by the same amount), as
    a band tuned by ear or a record played slightly fast or slow would be.
    """
    if tonic not in PITCH_CLASSES:
        raise ValueError(f"unknown tonic {tonic!r}; known: {PITCH_CLASSES}")
    if mode not in ("major", "minor"):
        raise ValueError(f"mode must be 'major' or 'minor', got {mode!r}")
    rng = np.random.default_rng(seed)
    root = 48 + PITCH_CLASSES.index(tonic)  # C3..B3
    progression = _MAJOR_PROGRESSION if mode == "major" else _MINOR_PROGRESSION
    scale = _MAJOR_SCALE if mode == "major" else _MINOR_SCALE
    total = round(seconds * RATE)
    out = np.zeros(total)
    n_chords = math.ceil(seconds / chord_seconds)
    for i in range(n_chords):
        at = i * chord_seconds
        length = min(chord_seconds, seconds - at)
        chord = progression[i % len(progression)]
        for offset in chord:
            _add(out, _tone(_midi_hz(root + offset, cents), length, timbre), at, 0.3)
        _add(out, _tone(_midi_hz(root - 12 + chord[0], cents), length, timbre), at, 0.35)
        # Melody: four notes per chord, chord tones on the strong beats, scale tones between.
        step = length / 4
        for j in range(4):
            if j % 2 == 0:
                degree = chord[int(rng.integers(len(chord)))]
            else:
                degree = scale[int(rng.integers(len(scale)))]
            note = root + 12 + degree % 12
            _add(out, _tone(_midi_hz(note, cents), step, timbre), at + j * step, 0.25)
    peak = float(np.max(np.abs(out))) or 1.0
    mono = out / peak * 0.7
    return np.stack([mono] * channels, axis=1).astype(np.float32)


def held_chord(seconds: float = 20.0, timbre: str = "organ", channels: int = 2) -> Signal:
    """One sustained A minor chord: no rhythm at all, so no tempo."""
    out = np.zeros(round(seconds * RATE))
    for note in (57, 60, 64, 69):
        _add(out, _tone(_midi_hz(note), seconds, timbre), 0.0, 0.25)
    mono = out / (float(np.max(np.abs(out))) or 1.0) * 0.5
    return np.stack([mono] * channels, axis=1).astype(np.float32)


# ---------------------------------------------------------------------------------------------
# Known levels
# ---------------------------------------------------------------------------------------------


def sine(
    seconds: float, dbfs: float, *, freq: float = 997.0, channels: int = 2, rate: int = RATE
) -> Signal:
    """A sine whose peak is ``dbfs`` dB below full scale in every channel."""
    t = np.arange(round(seconds * rate)) / rate
    mono = 10 ** (dbfs / 20) * np.sin(2 * np.pi * freq * t)
    return np.stack([mono] * channels, axis=1).astype(np.float32)


def sine_sequence(parts: Iterable[tuple[float, float]], *, channels: int = 2) -> Signal:
    """997 Hz sine segments of (seconds, dBFS), as in EBU Tech 3341/3342's test signals."""
    return np.concatenate([sine(s, level, channels=channels) for s, level in parts])


def expected_sine_lufs(dbfs: float, channels: int = 2) -> float:
    """BS.1770 loudness of a 997 Hz sine at ``dbfs`` peak in each of ``channels`` (L/R/C).

    Mean square of a sine is A^2/2 per channel; the channel weights are 1 for L, R and C; the
    K-filter's gain at 997 Hz is what the standard's -0.691 dB constant cancels.
    """
    amplitude = 10 ** (dbfs / 20)
    return 10 * math.log10(channels * amplitude**2 / 2)


def pink_noise(
    seconds: float, *, seed: int = 0, channels: int = 2, rms_dbfs: float = -20.0
) -> Signal:
    """Pink (1/f power) noise, shaped in the frequency domain, scaled to ``rms_dbfs`` RMS."""
    n = round(seconds * RATE)
    rng = np.random.default_rng(seed)
    out = np.empty((n, channels), dtype=np.float32)
    freqs = np.fft.rfftfreq(n, 1 / RATE)
    shape = np.zeros_like(freqs)
    shape[1:] = 1 / np.sqrt(freqs[1:])
    for ch in range(channels):
        spectrum = np.fft.rfft(rng.standard_normal(n)) * shape
        x = np.fft.irfft(spectrum, n)
        x *= 10 ** (rms_dbfs / 20) / math.sqrt(float(np.mean(x * x)))
        out[:, ch] = x
    return out


def _biquad_response(b: tuple[float, ...], a: tuple[float, ...], freqs: _F64, rate: int) -> _F64:
    z = np.exp(-2j * np.pi * freqs / rate)
    num = b[0] + b[1] * z + b[2] * z * z
    den = a[0] + a[1] * z + a[2] * z * z
    return np.asarray(np.abs(num / den) ** 2, dtype=np.float64)


def _k_filter(rate: int) -> tuple[tuple[float, ...], ...]:
    """The two BS.1770 K-weighting biquads, derived for ``rate`` from their analogue design.

    The standard tabulates coefficients for 48 kHz only; these are the well-known parameters
    (shelf: f0 1681.97 Hz, G +4 dB, Q 0.7072; high-pass: f0 38.14 Hz, Q 0.5003) that reproduce
    that table exactly at 48 kHz, put through the bilinear transform for any other rate.
    """
    f0, gain_db, q = 1681.974450955533, 3.999843853973347, 0.7071752369554196
    k = math.tan(math.pi * f0 / rate)
    vh = 10 ** (gain_db / 20)
    vb = vh**0.4996667741545416
    a0 = 1 + k / q + k * k
    shelf_b = (
        (vh + vb * k / q + k * k) / a0,
        2 * (k * k - vh) / a0,
        (vh - vb * k / q + k * k) / a0,
    )
    shelf_a = (1.0, 2 * (k * k - 1) / a0, (1 - k / q + k * k) / a0)
    f0, q = 38.13547087602444, 0.5003270373238773
    k = math.tan(math.pi * f0 / rate)
    hp_b = (1.0, -2.0, 1.0)
    d = 1 + k / q + k * k
    hp_a = (1.0, 2 * (k * k - 1) / d, (1 - k / q + k * k) / d)
    return shelf_b, shelf_a, hp_b, hp_a


def bs1770_loudness(signal: Signal, rate: int = RATE) -> float:
    """Ungated BS.1770 loudness of ``signal`` (L/R/C channels), computed in the frequency domain.

    For a stationary signal long enough that no 400 ms block falls under a gate this equals the
    gated integrated loudness: it is the independent reference the analyser is checked against.
    """
    shelf_b, shelf_a, hp_b, hp_a = _k_filter(rate)
    n = signal.shape[0]
    freqs: _F64 = np.asarray(np.fft.rfftfreq(n, 1 / rate), dtype=np.float64)
    weight = _biquad_response(shelf_b, shelf_a, freqs, rate) * _biquad_response(
        hp_b, hp_a, freqs, rate
    )
    total = 0.0
    for ch in range(signal.shape[1]):
        spectrum = np.abs(np.fft.rfft(signal[:, ch].astype(np.float64))) ** 2
        # One-sided spectrum: every bin but DC and Nyquist stands for two.
        spectrum[1:-1] *= 2
        total += float(np.sum(spectrum * weight)) / (n * n)
    return -0.691 + 10 * math.log10(total)


# ---------------------------------------------------------------------------------------------
# Writing
# ---------------------------------------------------------------------------------------------

_ENCODERS: dict[str, tuple[str, str, str, int | None, int | None]] = {
    # extension: (muxer, codec, sample format, bit rate, forced sample rate)
    "wav": ("wav", "pcm_s16le", "s16", None, None),
    "flac": ("flac", "flac", "s16", None, None),
    "mp3": ("mp3", "libmp3lame", "fltp", 192_000, None),
    "ogg": ("ogg", "vorbis", "fltp", 160_000, None),
    "opus": ("ogg", "libopus", "flt", 128_000, 48000),  # Opus only runs at 48 kHz (or below)
    "m4a": ("ipod", "aac", "fltp", 192_000, None),
}
CODEC_EXTENSIONS: tuple[str, ...] = tuple(_ENCODERS)


def write_stream(
    path: Path | str, blocks: Iterable[Signal], *, channels: int, rate: int = RATE
) -> Path:
    """Encode ``(samples, channels)`` float blocks to ``path``, the format by extension
    (:data:`CODEC_EXTENSIONS`).

    FFmpeg's resampler converts each block to the encoder's sample format and rate and cuts it
    into the frame size that fixed-frame codecs (AAC, Opus, Vorbis) insist on.
    """
    target = Path(path)
    ext = target.suffix.lower().lstrip(".")
    if ext not in _ENCODERS:
        raise ValueError(f"cannot write {ext!r}; known: {sorted(_ENCODERS)}")
    muxer, codec, sample_format, bit_rate, forced_rate = _ENCODERS[ext]
    out_rate = forced_rate or rate
    layout = {1: "mono", 2: "stereo"}[channels]
    target.parent.mkdir(parents=True, exist_ok=True)
    container = av.open(str(target), "w", format=muxer)
    try:
        stream = container.add_stream(codec, rate=out_rate)
        if not isinstance(stream, AudioStream):
            raise TypeError(f"{codec} did not give an audio stream")
        ctx = stream.codec_context
        ctx.layout = layout
        ctx.format = sample_format
        ctx.time_base = Fraction(1, out_rate)
        if bit_rate is not None:
            ctx.bit_rate = bit_rate
        # FFmpeg's own Vorbis encoder counts as experimental; the Debian build has no libvorbis.
        ctx.options = {"strict": "experimental"}
        ctx.open()
        resampler = av.AudioResampler(
            format=sample_format, layout=layout, rate=out_rate, frame_size=ctx.frame_size or None
        )
        pts = 0

        def mux(frames: list[Any]) -> None:
            nonlocal pts
            for out in frames:
                out.pts = pts
                out.time_base = Fraction(1, out_rate)
                pts += out.samples
                for packet in stream.encode(out):
                    container.mux(packet)

        in_pts = 0
        for block in blocks:
            for start in range(0, block.shape[0], 8192):
                chunk = np.clip(block[start : start + 8192], -1.0, 1.0)
                data = np.ascontiguousarray(chunk.T.astype(np.float32))
                frame = av.AudioFrame.from_ndarray(data, format="fltp", layout=layout)
                frame.sample_rate = rate
                frame.pts = in_pts
                frame.time_base = Fraction(1, rate)
                in_pts += chunk.shape[0]
                mux(resampler.resample(frame))
        mux(resampler.resample(None))
        for packet in stream.encode(None):
            container.mux(packet)
    finally:
        container.close()
    return target


def write_audio(path: Path | str, signal: Signal, rate: int = RATE) -> Path:
    """Encode an in-memory ``(samples, channels)`` signal to ``path``."""
    return write_stream(path, [signal], channels=signal.shape[1], rate=rate)
