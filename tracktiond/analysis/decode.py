"""Streaming decode of any audio file to fixed-size 44.1 kHz stereo float blocks, with PyAV.

Not essentia's loaders: they fail on Opus and Speex (and the process often crashes afterwards),
refuse more than two channels, and load the whole file, which for a 3-hour recording is
gigabytes (docs/analysis.md, DESIGN "facts learned the hard way"). FFmpeg through PyAV decodes
every format the catalog accepts, packet by packet; its resampler converts to one layout and
rate, so the analysis code sees a single signal type whatever the source.

Memory is bounded by the block size: at most about two blocks of stereo float32 are alive
(the block being assembled and the one held back so a short final remainder can be merged into
it), e.g. 2 x 30 s x 44100 x 2 x 4 B = 21 MB.

Integrity: an unreadable, empty, mostly corrupt or truncated stream raises
:class:`~tracktiond.errors.BadInput` with a reason a user can act on; a few undecodable packets
in an otherwise good stream are tolerated and reported in :attr:`Decoder.warnings`.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from types import TracebackType
from typing import Any

import av
import av.error
import numpy as np

from tracktiond.errors import BadInput, FileVanished

RATE = 44100
# ≤ this share of packets (and at least a few) may fail to decode before a file counts as corrupt:
# real files have the odd damaged frame, and losing a few ms of a set is better than losing its
# whole analysis.
MAX_BAD_PACKET_SHARE = 0.01
MIN_BAD_PACKETS_TOLERATED = 3
# Decoding this much less than the container declares means the file was cut short.
TRUNCATION_SECONDS = 0.5
TRUNCATION_SHARE = 0.03

Block = np.ndarray[Any, np.dtype[np.float32]]


@dataclass(frozen=True)
class SourceInfo:
    codec: str
    sample_rate: int
    channels: int
    declared_duration: float | None  # what the container says, before decoding


def _ffmpeg_message(exc: BaseException) -> str:
    # PyAV appends the file name to its messages; the caller already knows the path.
    text = getattr(exc, "strerror", None) or str(exc)
    return str(text).strip() or type(exc).__name__


class Decoder:
    """``with Decoder(path, block_seconds) as dec: for block in dec.blocks(): ...``.

    Blocks are ``(2, n)`` float32 arrays (planar stereo) at 44.1 kHz; every block but the last
    has exactly ``block_samples`` samples; a final remainder shorter than a third of a block is
    appended to the block before it, so no analysis window is uselessly short.
    """

    def __init__(self, path: str, block_samples: int) -> None:
        self.path = path
        self.block_samples = block_samples
        self.decoded_samples = 0
        self.source_channels = 0  # of the first decoded frame (streams may change mid-way)
        self.warnings: list[str] = []
        try:
            self._container: Any = av.open(path, metadata_errors="ignore")
        except FileNotFoundError as exc:
            raise FileVanished(f"file not found: {path}") from exc
        except PermissionError as exc:
            raise BadInput(f"permission denied reading {path}") from exc
        except (av.error.FFmpegError, OSError, ValueError, EOFError) as exc:
            raise BadInput(f"not a decodable audio file: {_ffmpeg_message(exc)}") from exc
        try:
            streams = self._container.streams.audio
            if not streams:
                raise BadInput("the file contains no audio stream")
            self._stream: Any = streams[0]
            ctx = self._stream.codec_context
            declared = None
            if self._stream.duration is not None and self._stream.time_base is not None:
                declared = float(self._stream.duration * self._stream.time_base)
            elif self._container.duration is not None:
                declared = self._container.duration / 1_000_000
            self.info = SourceInfo(
                codec=str(ctx.name),
                sample_rate=int(ctx.sample_rate or 0),
                channels=int(ctx.channels or 0),
                declared_duration=declared if declared and declared > 0 else None,
            )
        except BaseException:
            self._container.close()
            raise

    def __enter__(self) -> Decoder:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        self._container.close()

    @property
    def decoded_seconds(self) -> float:
        return self.decoded_samples / RATE

    # -- decoding ------------------------------------------------------------------------------

    def _frames(self) -> Iterator[Block]:
        """Resampled (2, n) float32 arrays, in order, with error accounting."""
        resampler: Any = None
        mono = False
        setup: tuple[str, str, int] | None = None
        packets = bad = 0
        first_error = ""
        read_error = ""
        demux = self._container.demux(self._stream)
        while True:
            try:
                packet = next(demux)
            except StopIteration:
                break
            except (av.error.FFmpegError, OSError, ValueError, EOFError) as exc:
                # A read error before the end: the rest of the file is unreachable.
                read_error = _ffmpeg_message(exc)
                break
            packets += 1
            try:
                frames = packet.decode()
            except (av.error.FFmpegError, ValueError) as exc:
                bad += 1
                first_error = first_error or _ffmpeg_message(exc)
                continue
            for frame in frames:
                # Some streams change layout or rate mid-way (radio rips, joined files); the
                # resampler is bound to its first input format, so start a new one on change.
                this = (frame.format.name, frame.layout.name, frame.sample_rate)
                if this != setup:
                    if resampler is not None:
                        yield from self._convert(resampler.resample(None), mono)
                    # FFmpeg upmixes mono to stereo at -3 dB per channel; keeping mono and
                    # duplicating it here keeps the samples (and so the sample peak) exact.
                    mono = len(frame.layout.channels) == 1
                    layout = "mono" if mono else "stereo"
                    resampler = av.AudioResampler(format="fltp", layout=layout, rate=RATE)
                    setup = this
                    if not self.source_channels:
                        self.source_channels = len(frame.layout.channels)
                yield from self._convert(resampler.resample(frame), mono)
        if resampler is not None:
            yield from self._convert(resampler.resample(None), mono)
        self._check(packets, bad, first_error, read_error)

    def _convert(self, frames: list[Any], mono: bool) -> Iterator[Block]:
        for out in frames:
            array = np.asarray(out.to_ndarray(), dtype=np.float32)
            if array.shape[1]:
                yield np.repeat(array, 2, axis=0) if mono else array

    def _check(self, packets: int, bad: int, first_error: str, read_error: str) -> None:
        decoded = self.decoded_seconds
        if self.decoded_samples == 0:
            why = read_error or first_error
            raise BadInput("no audio could be decoded" + (f": {why}" if why else ""))
        if bad > max(MIN_BAD_PACKETS_TOLERATED, MAX_BAD_PACKET_SHARE * packets):
            raise BadInput(
                f"corrupt audio data: {bad} of {packets} packets could not be decoded "
                f"({first_error})"
            )
        declared = self.info.declared_duration
        if declared is not None:
            missing = declared - decoded
            if missing > max(TRUNCATION_SECONDS, TRUNCATION_SHARE * declared):
                raise BadInput(
                    f"truncated or corrupt: decoded {decoded:.1f} s of the {declared:.1f} s the "
                    f"file declares"
                    + (f" ({read_error or first_error})" if bad or read_error else "")
                )
        elif read_error:
            raise BadInput(f"read error after {decoded:.1f} s of audio: {read_error}")
        if bad:
            self.warnings.append(f"{bad} undecodable packet(s) skipped: {first_error}")
        if read_error:
            self.warnings.append(f"read error near the end ignored: {read_error}")

    def blocks(self) -> Iterator[Block]:
        pending: list[Block] = []
        pending_samples = 0
        held: Block | None = None
        size = self.block_samples
        for array in self._frames():
            self.decoded_samples += array.shape[1]
            pending.append(array)
            pending_samples += array.shape[1]
            while pending_samples >= size:
                joined = np.concatenate(pending, axis=1)
                block, rest = joined[:, :size], joined[:, size:]
                pending = [rest] if rest.shape[1] else []
                pending_samples = rest.shape[1]
                if held is not None:
                    yield held
                held = np.ascontiguousarray(block)
        tail = np.concatenate(pending, axis=1) if pending else None
        if held is not None and tail is not None and tail.shape[1] < size // 3:
            yield np.concatenate([held, tail], axis=1)
            return
        if held is not None:
            yield held
        if tail is not None and tail.shape[1]:
            yield tail
