"""The chunk layout of RIFF WAVE, RF64/BW64 and FORM AIFF/AIFC files, read the way players read it.

Real files are looser than the specifications, and every player plays them: a RIFF/FORM size a
few bytes off (essentia's and tinytag's test files, some editors), a ``data`` chunk of size 0 or
0xFFFFFFFF followed by the audio (streaming writers that never went back to fix the header),
RF64/BW64 (WAV past 4 GiB: broadcast and field recorders), whose 64-bit sizes live in a ``ds64``
chunk. So the layout is found by walking the chunks, and where the audio chunk ends is what
matters, not the outer size. Pure Python: a few small reads per file.
"""

from __future__ import annotations

import os
import struct
from dataclasses import dataclass

# WAVE format tags whose samples are plain PCM or float: their length follows from the data size
# and the frame size, which is what tag readers compute for every WAV (and get wrong for the
# compressed ones: MS ADPCM, GSM 6.10, MP3-in-WAV).
PCM_TAGS = frozenset({0x0001, 0x0003, 0x0006, 0x0007})  # PCM, IEEE float, A-law, mu-law
EXTENSIBLE = 0xFFFE

# What we call the codec of each WAVE format tag we know by name (the rest: "wave_0xNNNN").
WAVE_CODECS: dict[int, str] = {
    0x0001: "pcm",
    0x0003: "pcm",
    0x0006: "alaw",
    0x0007: "mulaw",
    0x0002: "adpcm_ms",
    0x0011: "adpcm_ima",
    0x0031: "gsm_ms",
    0x0050: "mp2",
    0x0055: "mp3",
    0x566F: "vorbis",
    # The Vorbis ACM codec's modes (1, 2, 3 and their "+" variants): lmms writes these.
    0x674F: "vorbis",
    0x6750: "vorbis",
    0x6751: "vorbis",
    0x676F: "vorbis",
    0x6770: "vorbis",
    0x6771: "vorbis",
}

_UNKNOWN_32 = (0, 0xFFFFFFFF)  # sizes a writer leaves when it streams and never seeks back


@dataclass(frozen=True, slots=True)
class WaveFormat:
    """What a WAVE ``fmt `` chunk (or an AIFF ``COMM`` chunk) says about the samples."""

    tag: int  # WAVE format tag; for WAVE_FORMAT_EXTENSIBLE the sub-format's; 1 for AIFF PCM
    channels: int
    sample_rate: int
    byte_rate: int  # average bytes per second; 0 when the header does not say (it happens)
    block_align: int
    bits: int

    @property
    def is_pcm(self) -> bool:
        return self.tag in PCM_TAGS

    @property
    def codec(self) -> str:
        return WAVE_CODECS.get(self.tag, f"wave_0x{self.tag:04x}")


@dataclass(frozen=True, slots=True)
class IffLayout:
    """Where a RIFF/RF64/FORM file's audio chunk is and what its header chunks say."""

    root: bytes  # b"RIFF", b"RF64", b"BW64" or b"FORM"
    size: int  # of the file
    root_end: int | None  # where the root chunk says the file ends; None when it does not say
    audio_start: int | None  # first byte of the data/SSND body; None: no audio chunk found
    audio_end: int  # where the audio chunk says it ends (may lie beyond the end of the file)
    fmt: WaveFormat | None
    frames: int | None  # sample frames declared by a fact/ds64/COMM chunk, if any
    tag_chunk: tuple[int, int] | None  # body (start, end) of an "id3 "/"ID3 " chunk

    @property
    def audio_bytes_declared(self) -> int:
        return 0 if self.audio_start is None else self.audio_end - self.audio_start

    @property
    def audio_bytes_present(self) -> int:
        """Bytes of audio in the file (the declared ones that are there)."""
        if self.audio_start is None:
            return 0
        return max(0, min(self.audio_end, self.size) - self.audio_start)

    @property
    def audio_bytes_missing(self) -> int:
        """Bytes of audio the header declares beyond the end of the file (0 when complete)."""
        return max(0, self.audio_end - self.size) if self.audio_start is not None else 0

    def duration(self) -> float | None:
        """Seconds of audio, from the header: exact for PCM, from the sample count or the byte
        rate for compressed WAV; None when the header cannot tell (decoding will)."""
        fmt = self.fmt
        if fmt is None or fmt.sample_rate <= 0 or self.audio_start is None:
            return None
        if self.frames:
            return self.frames / fmt.sample_rate
        present = self.audio_bytes_present
        if fmt.is_pcm and fmt.block_align > 0:
            return present // fmt.block_align / fmt.sample_rate
        if fmt.byte_rate > 0:
            return present / fmt.byte_rate
        return None


def read_layout(path: str, size: int) -> IffLayout | None:
    """The layout of ``path`` (``size`` bytes), or None when it is not a RIFF/RF64/FORM file."""
    with open(path, "rb") as fh:
        return _walk(fh.fileno(), size)


def _pread(fd: int, n: int, offset: int) -> bytes:
    return os.pread(fd, n, offset)


def _walk(fd: int, size: int) -> IffLayout | None:
    head = _pread(fd, 12, 0)
    root = head[:4]
    if len(head) < 12 or root not in (b"RIFF", b"RF64", b"BW64", b"FORM"):
        return None
    big = root == b"FORM"
    u32 = ">I" if big else "<I"
    (declared,) = struct.unpack(u32, head[4:8])
    root_end: int | None = None if declared in _UNKNOWN_32 else declared + 8
    ds64_data: int | None = None
    frames: int | None = None
    fmt: WaveFormat | None = None
    audio_start: int | None = None
    audio_end = 0
    tag_chunk: tuple[int, int] | None = None
    pos = 12
    while pos + 8 <= size:
        header = _pread(fd, 8, pos)
        if len(header) < 8:
            break
        cid = header[:4]
        (length,) = struct.unpack(u32, header[4:8])
        body = pos + 8
        if cid == b"ds64" and length >= 24:
            riff64, data64, count64 = struct.unpack("<QQQ", _pread(fd, 24, body))
            root_end = riff64 + 8 if riff64 else root_end
            ds64_data = data64 or None
            frames = count64 or frames
        elif cid == b"fmt " and length >= 16:
            fmt = _wave_format(_pread(fd, min(length, 40), body))
        elif cid == b"COMM" and length >= 18:
            fmt, frames = _aiff_format(_pread(fd, min(length, 64), body), root)
        elif cid == b"fact" and length >= 4 and fmt is not None and not fmt.is_pcm:
            # The sample count compressed WAV must carry (PCM files' fact chunks are ignored,
            # as players ignore them: the data size is the truth there).
            (count,) = struct.unpack("<I", _pread(fd, 4, body))
            frames = count or frames
        elif cid in (b"id3 ", b"ID3 "):
            tag_chunk = (body, min(size, body + length))
        elif cid in (b"data", b"SSND"):
            if cid == b"SSND":
                # The SSND body starts with an offset and a block size before the samples.
                (offset,) = struct.unpack(">I", _pread(fd, 4, body))
                audio_start = body + 8 + offset
            else:
                audio_start = body
            if cid == b"data" and length == 0xFFFFFFFF and ds64_data is not None:
                audio_end = body + ds64_data
            elif length in _UNKNOWN_32 and body < size:
                # Streamed: the audio runs to the end of the file (what FFmpeg assumes too).
                audio_end = size
            else:
                audio_end = body + length
            if audio_end >= size:
                break  # nothing after the audio chunk: stop before reading past the end
            length = audio_end - body
        pos = body + length + (length & 1)  # chunks are padded to an even length
    return IffLayout(
        root=root,
        size=size,
        root_end=root_end,
        audio_start=audio_start,
        audio_end=audio_end,
        fmt=fmt,
        frames=frames,
        tag_chunk=tag_chunk,
    )


def _wave_format(raw: bytes) -> WaveFormat | None:
    if len(raw) < 16:
        return None
    tag, channels, rate, byte_rate, align, bits = struct.unpack("<HHIIHH", raw[:16])
    if tag == EXTENSIBLE and len(raw) >= 26:
        # The sub-format GUID's first two bytes are the real format tag.
        (tag,) = struct.unpack("<H", raw[24:26])
    return WaveFormat(tag, channels, rate, byte_rate, align, bits)


def _aiff_format(raw: bytes, root: bytes) -> tuple[WaveFormat | None, int | None]:
    channels, frames, bits = struct.unpack(">hIh", raw[:8])
    rate = _extended(raw[8:18])
    compression = raw[18:22] if len(raw) >= 22 else b"NONE"
    # AIFC "sowt" is little-endian PCM, "fl32"/"fl64" float; anything else is compressed.
    pcm = compression in (b"NONE", b"sowt", b"twos", b"fl32", b"fl64", b"FL32", b"FL64")
    if channels <= 0 or rate <= 0:
        return None, frames or None
    frame_bytes = channels * ((bits + 7) // 8) if pcm else 0
    fmt = WaveFormat(
        tag=0x0001 if pcm else 0,
        channels=channels,
        sample_rate=int(rate),
        byte_rate=frame_bytes * int(rate),
        block_align=frame_bytes,
        bits=bits,
    )
    return fmt, frames or None


def _extended(raw: bytes) -> float:
    """An 80-bit IEEE 754 extended float (AIFF's sample rate)."""
    if len(raw) < 10:
        return 0.0
    exponent = ((raw[0] & 0x7F) << 8) | raw[1]
    mantissa = int.from_bytes(raw[2:10], "big")
    if exponent == 0 and mantissa == 0:
        return 0.0
    value = mantissa * 2.0 ** (exponent - 16383 - 63)
    return -value if raw[0] & 0x80 else value
