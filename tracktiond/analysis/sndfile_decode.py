"""The second decoder: libsndfile (through ``soundfile``), for files FFmpeg will not open.

Real Vorbis files exist that FFmpeg rejects ("Invalid data found when processing input") while
libvorbis-based players, sox and essentia's loader play them (DESIGN "facts learned the hard
way"); libsndfile reads WAV (PCM, ADPCM, GSM, MP3), RF64, AIFF, FLAC, Ogg Vorbis/Opus and MP3.
It reads in fixed chunks, so memory stays bounded as with FFmpeg. Frames are handed over as
PyAV frames so that :mod:`tracktiond.analysis.decode` resamples and checks them exactly as it
does FFmpeg's.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import av
import numpy as np
import soundfile

from tracktiond.analysis.decode import SourceInfo, SourceStats
from tracktiond.errors import BadInput
from tracktiond.media.integrity import implausible_duration

CHUNK_FRAMES = 16384
# FFmpeg's names for the usual layout of each channel count (libsndfile keeps WAVE order,
# which is FFmpeg's default order too); other counts get an unordered layout.
_LAYOUTS = {1: "mono", 2: "stereo", 3: "3.0", 4: "quad", 5: "5.0", 6: "5.1", 7: "6.1", 8: "7.1"}


def _reason(exc: BaseException) -> str:
    text = str(getattr(exc, "error_string", "") or exc).strip()
    return text or type(exc).__name__


class SndfileSource:
    name = "libsndfile"

    def __init__(self, path: str, size: int) -> None:
        self.stats = SourceStats()
        self.warnings: list[str] = []
        try:
            self._file: Any = soundfile.SoundFile(path)
        except (soundfile.LibsndfileError, RuntimeError, TypeError, ValueError) as exc:
            raise BadInput(f"libsndfile cannot open it either: {_reason(exc)}") from exc
        try:
            rate, channels = int(self._file.samplerate), int(self._file.channels)
            if rate <= 0 or channels <= 0:
                raise BadInput(f"libsndfile reads {channels} channel(s) at {rate} Hz: no audio")
            declared: float | None = float(self._file.frames) / rate
            if not declared or declared <= 0:
                declared = None
            elif doubt := implausible_duration(declared, size):
                self.warnings.append(f"{doubt}; the decoded length is used")
                declared = None
            self.info = SourceInfo(
                codec=str(self._file.subtype or self._file.format).lower(),
                sample_rate=rate,
                channels=channels,
                declared_duration=declared,
            )
            self._layout = _LAYOUTS.get(channels, f"{channels}c")
        except BaseException:
            self._file.close()
            raise

    def close(self) -> None:
        self._file.close()

    def frames(self) -> Iterator[av.AudioFrame]:
        stats = self.stats
        reader = self._file.blocks(blocksize=CHUNK_FRAMES, dtype="float32", always_2d=True)
        while True:
            try:
                chunk = next(reader)
            except StopIteration:
                break
            except (soundfile.LibsndfileError, RuntimeError, ValueError) as exc:
                stats.read_error = _reason(exc)
                break
            stats.packets += 1
            if not len(chunk):
                continue
            # Interleaved float32, one plane: PyAV's packed "flt" format.
            packed = np.ascontiguousarray(chunk, dtype=np.float32).reshape(1, -1)
            frame = av.AudioFrame.from_ndarray(packed, format="flt", layout=self._layout)
            frame.sample_rate = self.info.sample_rate
            yield frame
