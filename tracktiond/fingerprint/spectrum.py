"""A stream of mono sample blocks into a log-frequency magnitude spectrogram, block by block.

The frequency axis is log-spaced (``bins_per_octave`` per octave from ``fmin``), so a pitch
shift or a resampling moves every peak by the same number of bins: that is what makes the
frequency terms of the triplet hashes invariant. It is built from a short-time Fourier transform
whose linear bins are folded into log-spaced triangular bands (a constant-Q-like axis at a
fraction of a constant-Q transform's cost); at the low end, where a band is narrower than an FFT
bin, the band interpolates between bins, so the axis stays log-spaced even there.

Memory is bounded: only the last ``n_fft - hop`` samples are carried from block to block.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import numpy as np
import scipy.fft

F32 = np.ndarray[Any, np.dtype[np.float32]]

RATE = 8000  # Hz: enough for the 110-3,500 Hz the peaks are taken from, and cheap


@dataclass(frozen=True)
class SpectrumSettings:
    rate: int = RATE
    n_fft: int = 1024  # 128 ms at 8 kHz: resolves semitones from ~250 Hz up
    hop: int = 128  # 16 ms frames: the time unit of peaks and hashes
    fmin: float = 110.0
    octaves: int = 5
    bins_per_octave: int = 24  # quarter tones: a semitone shift is two bins

    @property
    def n_bins(self) -> int:
        return self.octaves * self.bins_per_octave

    @property
    def frame_seconds(self) -> float:
        return self.hop / self.rate

    @cached_property
    def centres(self) -> np.ndarray[Any, np.dtype[np.float64]]:
        return self.fmin * 2.0 ** (np.arange(self.n_bins) / self.bins_per_octave)

    @cached_property
    def bands(self) -> F32:
        """The (n_bins, n_fft // 2 + 1) matrix folding linear bins into log-spaced bands."""
        lin = np.fft.rfftfreq(self.n_fft, 1.0 / self.rate)
        df = lin[1]
        step = 2.0 ** (1.0 / self.bins_per_octave)
        out = np.zeros((self.n_bins, lin.size), dtype=np.float64)
        for k, centre in enumerate(self.centres):
            # A triangle reaching the neighbouring centres, never narrower than one FFT bin
            # either side (else a low band would fall between bins and see nothing).
            lo = max(centre - centre / step, df)
            hi = max(centre * step - centre, df)
            w = np.where(lin <= centre, 1.0 - (centre - lin) / lo, 1.0 - (lin - centre) / hi)
            w = np.clip(w, 0.0, None)
            out[k] = w / w.sum()
        return out.astype(np.float32)


class LogSpectrogram:
    """Feed sample blocks, get the frames they complete (dB, shape (frames, n_bins))."""

    def __init__(self, settings: SpectrumSettings | None = None) -> None:
        self.settings = s = settings or SpectrumSettings()
        window = np.hanning(s.n_fft).astype(np.float32)
        # Scaled so that a full-scale sine reads about 0 dB, whatever n_fft is.
        self._window = window * (2.0 / float(window.sum()))
        self._pending = np.zeros(0, dtype=np.float32)
        self.frames_out = 0

    def feed(self, block: F32) -> F32:
        s = self.settings
        data = np.concatenate([self._pending, np.asarray(block, dtype=np.float32).ravel()])
        count = 0 if data.size < s.n_fft else 1 + (data.size - s.n_fft) // s.hop
        if count == 0:
            self._pending = data
            return np.zeros((0, s.n_bins), dtype=np.float32)
        view = np.lib.stride_tricks.sliding_window_view(data, s.n_fft)[:: s.hop][:count]
        # SciPy's FFT, not NumPy's: the same transform (peaks identical but for 3e-5 of a bin
        # in their sub-bin frequency, on 6 minutes of a generated set), and a whole
        # fingerprint_file 12 % cheaper (median of 5 alternating runs: 3.06 -> 2.70 CPU s).
        mags = np.abs(scipy.fft.rfft(view * self._window, axis=1)).astype(np.float32)
        self._pending = data[count * s.hop :]
        self.frames_out += count
        folded = mags @ s.bands.T
        return np.asarray(20.0 * np.log10(folded + 1e-5), dtype=np.float32)


def spectrogram_blocks(
    blocks: Iterable[F32], settings: SpectrumSettings | None = None
) -> Iterator[F32]:
    """The spectrogram of a stream of blocks, one chunk of frames per block that completes any."""
    spec = LogSpectrogram(settings)
    for block in blocks:
        frames = spec.feed(block)
        if frames.shape[0]:
            yield frames
