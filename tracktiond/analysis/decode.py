"""Streaming decode of any audio file to fixed-size 44.1 kHz stereo float blocks.

Not essentia's loaders: they fail on Opus and Speex (and the process often crashes afterwards),
refuse more than two channels, and load the whole file, which for a 3-hour recording is
gigabytes (docs/analysis.md, DESIGN "facts learned the hard way"). FFmpeg through PyAV decodes
every format the catalog accepts, packet by packet; its resampler converts to one layout and
rate, so the analysis code sees a single signal type whatever the source.

A file is bad input only when no decoder we ship plays it (DESIGN invariant 5), so when FFmpeg
cannot open a file, has no decoder for its codec, or decodes nothing of it, the next source is
tried before the file is given up: the Ogg stream inside a RIFF WAVE file with a Vorbis format
tag (what the Vorbis ACM codec writes, lmms' samples), then libsndfile
(:mod:`tracktiond.analysis.sndfile_decode`), which opens some real Vorbis files FFmpeg rejects.
A source that has produced audio is never swapped mid-file.

Memory is bounded by the block size: at most about two blocks of stereo float32 are alive
(the block being assembled and the one held back so a short final remainder can be merged into
it), e.g. 2 x 30 s x 44100 x 2 x 4 B = 21 MB.

Integrity: an unreadable, empty, mostly corrupt or truncated stream raises
:class:`~tracktiond.errors.BadInput` with a reason a user can act on; a few undecodable packets
in an otherwise good stream are tolerated and reported in :attr:`Decoder.warnings`. A duration
the header declares that the file's size rules out is not held against the file (the decoded
length is the truth).
"""

from __future__ import annotations

import errno
import io
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, Protocol

import av
import av.error
import numpy as np

from tracktiond.errors import BadInput, FileVanished
from tracktiond.media.integrity import (
    TRUNCATION_SECONDS,
    TRUNCATION_SHARE,
    implausible_duration,
    tolerated_shortfall,
)
from tracktiond.media.riff import read_layout

__all__ = [
    "MAX_BAD_PACKET_SHARE",
    "MIN_BAD_PACKETS_TOLERATED",
    "RATE",
    "TRUNCATION_SECONDS",
    "TRUNCATION_SHARE",
    "Block",
    "Decoder",
    "SourceInfo",
]

RATE = 44100
# ≤ this share of packets (and at least a few) may fail to decode before a file counts as corrupt:
# real files have the odd damaged frame, and losing a few ms of a set is better than losing its
# whole analysis.
MAX_BAD_PACKET_SHARE = 0.01
MIN_BAD_PACKETS_TOLERATED = 3

Block = np.ndarray[Any, np.dtype[np.float32]]


@dataclass(frozen=True)
class SourceInfo:
    codec: str
    sample_rate: int
    channels: int
    declared_duration: float | None  # what the container says, before decoding


@dataclass
class SourceStats:
    """What a source met while decoding, for the integrity verdict at the end."""

    packets: int = 0
    bad: int = 0
    first_error: str = ""
    read_error: str = ""


class Source(Protocol):
    """One decoder's view of a file: decoded frames in the source's own format."""

    name: str
    info: SourceInfo
    stats: SourceStats
    warnings: list[str]

    def frames(self) -> Iterator[av.AudioFrame]: ...

    def close(self) -> None: ...


def ffmpeg_message(exc: BaseException) -> str:
    """FFmpeg's reason, fit for users: never empty, and an errno-style message (FFmpeg decoders
    return EPERM or EINVAL for bad data) said to come from the decoder, not the system."""
    text = str(getattr(exc, "strerror", None) or exc).strip()
    code = getattr(exc, "errno", None)
    if text == "End of file":
        return "the file ends before any audio was found"
    if isinstance(code, int) and code in errno.errorcode and text == os.strerror(code):
        return f"the decoder rejected the data (FFmpeg returned {errno.errorcode[code]}: {text})"
    return text or type(exc).__name__


_FFMPEG_ERRORS = (av.error.FFmpegError, OSError, ValueError, EOFError)


class _PyAVSource:
    """FFmpeg, through PyAV: the first choice for every file."""

    def __init__(self, target: str | io.RawIOBase, size: int, what: str = "") -> None:
        self.name = f"FFmpeg{what}"
        self.stats = SourceStats()
        self.warnings: list[str] = []
        try:
            container: Any = av.open(target, metadata_errors="ignore")
        except FileNotFoundError as exc:
            raise FileVanished("file not found") from exc
        except PermissionError as exc:
            raise BadInput("permission denied") from exc
        except _FFMPEG_ERRORS as exc:
            raise BadInput(f"not a decodable audio file{what}: {ffmpeg_message(exc)}") from exc
        self._container = container
        try:
            streams = self._container.streams.audio
            if not streams:
                raise BadInput(f"the file contains no audio stream{what}")
            self._stream: Any = streams[0]
            ctx = self._stream.codec_context
            if ctx is None:  # FFmpeg knows the container but has no decoder for this codec
                raise BadInput(f"unsupported codec{what}: FFmpeg has no decoder for it")
            declared = None
            if self._stream.duration is not None and self._stream.time_base is not None:
                declared = float(self._stream.duration * self._stream.time_base)
            elif self._container.duration is not None:
                declared = self._container.duration / 1_000_000
            if declared is not None and declared > 0:
                doubt = implausible_duration(declared, size)
                if doubt:
                    self.warnings.append(f"{doubt}; the decoded length is used")
                    declared = None
            self.info = SourceInfo(
                codec=str(ctx.name),
                sample_rate=int(ctx.sample_rate or 0),
                channels=int(ctx.channels or 0),
                declared_duration=declared if declared and declared > 0 else None,
            )
        except BaseException:
            self._container.close()
            raise

    def close(self) -> None:
        self._container.close()

    def frames(self) -> Iterator[av.AudioFrame]:
        stats = self.stats
        demux = self._container.demux(self._stream)
        while True:
            try:
                packet = next(demux)
            except StopIteration:
                break
            except _FFMPEG_ERRORS as exc:
                # A read error before the end: the rest of the file is unreachable.
                stats.read_error = ffmpeg_message(exc)
                break
            stats.packets += 1
            try:
                frames = packet.decode()
            except (av.error.FFmpegError, ValueError) as exc:
                stats.bad += 1
                stats.first_error = stats.first_error or ffmpeg_message(exc)
                continue
            yield from frames


class _Window(io.RawIOBase):
    """A read-only view of bytes [start, end) of a file, for a stream embedded in another."""

    def __init__(self, path: str, start: int, end: int) -> None:
        self._fh = open(path, "rb")  # noqa: SIM115 - closed with the view
        self._start, self._end, self._pos = start, end, 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")
        n = max(0, min(len(view), self._end - self._start - self._pos))
        self._fh.seek(self._start + self._pos)
        got = self._fh.readinto(view[:n]) or 0
        self._pos += got
        return got

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._pos, io.SEEK_END: self._end - self._start}
        self._pos = max(0, base[whence] + offset)
        return self._pos

    def tell(self) -> int:
        return self._pos

    def close(self) -> None:
        self._fh.close()
        super().close()


def _embedded_ogg(path: str, size: int) -> _PyAVSource | None:
    """The Ogg stream stored whole in the data chunk of a RIFF WAVE file, if there is one."""
    try:
        layout = read_layout(path, size)
    except OSError:
        return None
    if layout is None or layout.audio_start is None:
        return None
    start, end = layout.audio_start, min(layout.audio_end, size)
    with open(path, "rb") as fh:
        fh.seek(start)
        if fh.read(4) != b"OggS":
            return None
    window = _Window(path, start, end)
    try:
        return _PyAVSource(window, end - start, " (the Ogg stream in its data chunk)")
    except BaseException:
        window.close()
        raise


def _sndfile(path: str, size: int) -> Source:
    from tracktiond.analysis.sndfile_decode import SndfileSource

    return SndfileSource(path, size)


def _unsupported_codec(path: str, size: int, reason: str) -> str:
    """Name a WAVE file's format tag when FFmpeg has no decoder for it."""
    if not reason.startswith("unsupported codec"):
        return reason
    try:
        layout = read_layout(path, size)
    except OSError:
        return reason
    if layout is None or layout.fmt is None:
        return reason
    fmt = layout.fmt
    codec = f"WAVE format 0x{fmt.tag:04X} ({fmt.codec})"
    return f"unsupported codec: {codec}, which no decoder we ship can play"


@dataclass
class _Attempts:
    """The sources still to try, and why the ones tried so far gave up."""

    path: str
    size: int
    reasons: list[str] = field(default_factory=list)
    pending: list[Callable[[str, int], Source | None]] = field(
        default_factory=lambda: [_embedded_ogg, _sndfile]
    )

    def next(self) -> Source | None:
        while self.pending:
            opener = self.pending.pop(0)
            try:
                source = opener(self.path, self.size)
            except BadInput as exc:
                self.reasons.append(exc.reason)
                continue
            if source is not None:
                return source
        return None

    def failure(self) -> BadInput:
        first, *others = self.reasons or ["no audio could be decoded"]
        first = _unsupported_codec(self.path, self.size, first)
        return BadInput("; ".join([first, *others]))


class Decoder:
    """``with Decoder(path, block_seconds) as dec: for block in dec.blocks(): ...``.

    Blocks are ``(2, n)`` float32 arrays (planar stereo) at ``rate`` (44.1 kHz unless asked
    otherwise); every block but the last
    has exactly ``block_samples`` samples; a final remainder shorter than a third of a block is
    appended to the block before it, so no analysis window is uselessly short.
    """

    def __init__(self, path: str, block_samples: int, *, rate: int = RATE) -> None:
        self.path = path
        self.block_samples = block_samples
        self.rate = rate  # the fingerprinter asks for 8 kHz; the analysis for RATE
        self.decoded_samples = 0
        self.source_channels = 0  # of the first decoded frame (streams may change mid-way)
        self.warnings: list[str] = []
        try:
            size = os.stat(path).st_size
        except FileNotFoundError as exc:
            raise FileVanished("file not found") from exc
        except PermissionError as exc:
            raise BadInput("permission denied") from exc
        except OSError as exc:
            raise BadInput(f"cannot read: {exc.strerror or exc}") from exc
        if size == 0:
            raise BadInput("empty file (0 bytes)")
        self._attempts = _Attempts(path, size)
        try:
            source: Source | None = _PyAVSource(path, size)
        except BadInput as exc:
            self._attempts.reasons.append(exc.reason)
            source = self._attempts.next()
        if source is None:
            raise self._attempts.failure()
        self._use(source)

    def _use(self, source: Source) -> None:
        self._source = source
        self.info = source.info

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
        self._source.close()

    @property
    def decoded_seconds(self) -> float:
        return self.decoded_samples / self.rate

    @property
    def source_name(self) -> str:
        """Which decoder is playing the file ("FFmpeg", "libsndfile")."""
        return self._source.name

    # -- decoding ------------------------------------------------------------------------------

    def _frames(self) -> Iterator[Block]:
        """Resampled (2, n) float32 arrays, in order, from the first source that plays."""
        while True:
            produced = False
            try:
                for array in self._resampled(self._source):
                    produced = True
                    yield array
                self._check(self._source)
            except BadInput as exc:
                if produced:
                    raise
                self._attempts.reasons.append(exc.reason)
                fallback = self._attempts.next()
                if fallback is None:
                    raise self._attempts.failure() from exc
                self._source.close()
                self._use(fallback)
                continue
            if self._attempts.reasons:  # not the first choice: say why
                self.warnings.append(
                    f"decoded by {self._source.name}: {'; '.join(self._attempts.reasons)}"
                )
            self.warnings.extend(self._source.warnings)
            return

    def _resampled(self, source: Source) -> Iterator[Block]:
        resampler: Any = None
        mono = False
        setup: tuple[str, str, int] | None = None
        for frame in source.frames():
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
                resampler = av.AudioResampler(format="fltp", layout=layout, rate=self.rate)
                setup = this
                if not self.source_channels:
                    self.source_channels = len(frame.layout.channels)
            yield from self._convert(resampler.resample(frame), mono)
        if resampler is not None:
            yield from self._convert(resampler.resample(None), mono)

    def _convert(self, frames: list[Any], mono: bool) -> Iterator[Block]:
        for out in frames:
            array = np.asarray(out.to_ndarray(), dtype=np.float32)
            if array.shape[1]:
                yield np.repeat(array, 2, axis=0) if mono else array

    def _check(self, source: Source) -> None:
        stats = source.stats
        packets, bad, first_error, read_error = (
            stats.packets,
            stats.bad,
            stats.first_error,
            stats.read_error,
        )
        decoded = self.decoded_seconds
        if self.decoded_samples == 0:
            why = read_error or first_error
            raise BadInput("no audio could be decoded" + (f": {why}" if why else ""))
        if bad > max(MIN_BAD_PACKETS_TOLERATED, MAX_BAD_PACKET_SHARE * packets):
            raise BadInput(
                f"corrupt audio data: {bad} of {packets} packets could not be decoded "
                f"({first_error})"
            )
        declared = source.info.declared_duration
        if declared is not None:
            missing = declared - decoded
            if missing > tolerated_shortfall(declared):
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
