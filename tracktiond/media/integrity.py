"""Cheap structural checks that catch truncated files without decoding them.

Tag readers parse headers only, so a file cut in half (an interrupted copy or download) often
"parses" fine. Each check here compares what the container declares with what is on disk,
reading only the file's last few KiB: pure Python, no native decoder in the scanning process
(DESIGN invariant 4). Decoding problems beyond this are found by the analysis stage.

A check fails a file only for what no player plays around: audio that ends well before the
header says (beyond the allowance the decoder makes too, :func:`tolerated_shortfall`). Header
sizes that are merely a few bytes off, and header durations that cannot be true
(:func:`implausible_duration`), are not failures: the decoder decides (DESIGN invariant 5).
"""

from __future__ import annotations

import struct
from collections.abc import Callable

from tracktiond.errors import BadInput
from tracktiond.media.formats import AudioFormat, id3v2_end
from tracktiond.media.riff import read_layout

TAIL_BYTES = 64 * 1024
# A file may decode this much short of what its header declares and still be complete: the
# larger of half a second and 3 % (real files have a few bytes missing from their last frame).
TRUNCATION_SECONDS = 0.5
TRUNCATION_SHARE = 0.03
# No real audio encoding needs fewer bytes per second than this (Opus and Speex at their lowest
# rates need over 100, digital silence in FLAC or Monkey's Audio some tens): a header claiming a
# longer duration for the file's size is wrong (a 14 kB APE file claiming 472 days, a 80 kB M4B
# claiming 47 hours).
MIN_BYTES_PER_SECOND = 4.0
# A header's bit rate and duration may together claim up to this much more than the file holds
# before both are doubted (truncation is checked separately, and more precisely).
BITRATE_SLACK = 2.0


def check_complete(path: str, fmt: AudioFormat, head: bytes, size: int) -> None:
    """Raise BadInput("truncated: ...") when the container declares more than the file holds."""
    walker = _WALKS.get(fmt)
    if walker is not None:
        problem = walker(path, head, size)
        if problem:
            raise BadInput(f"truncated or damaged {fmt.value} file: {problem}")
        return
    check = _CHECKS.get(fmt)
    if check is None:
        return
    tail = _read_tail(path, size)
    problem = check(head, tail, size)
    if problem:
        raise BadInput(f"truncated or damaged {fmt.value} file: {problem}")


def implausible_duration(seconds: float, size: int, bitrate: int = 0) -> str | None:
    """Why a header's ``seconds`` cannot be true for a file of ``size`` bytes, or None.

    Checked against the size (no encoding is that small) and, when the header states one,
    against the bit rate (duration x bit rate must roughly fit in the file).
    """
    if seconds <= 0:
        return None
    if seconds * MIN_BYTES_PER_SECOND > size:
        return f"the header claims {seconds:.0f} s of audio, more than {size} bytes can hold"
    needed = seconds * bitrate / 8
    if bitrate > 0 and needed > BITRATE_SLACK * size + TAIL_BYTES:
        return (
            f"the header claims {seconds:.0f} s at {bitrate // 1000} kbit/s ({needed:.0f} bytes), "
            f"the file has {size} bytes"
        )
    return None


def longest_plausible(size: int) -> float:
    """The most seconds of audio a file of ``size`` bytes can hold (see MIN_BYTES_PER_SECOND)."""
    return size / MIN_BYTES_PER_SECOND


def _read_tail(path: str, size: int) -> bytes:
    with open(path, "rb") as fh:
        fh.seek(max(0, size - TAIL_BYTES))
        return fh.read(TAIL_BYTES)


def tolerated_shortfall(declared_seconds: float) -> float:
    """Seconds of audio a file may lack against its header and still count as complete.

    The same allowance as the decoder's (tracktiond.analysis.decode imports it): a file whose
    last frames are a few bytes short plays in every player, and ingest must not fail what
    analysis accepts.
    """
    return max(TRUNCATION_SECONDS, TRUNCATION_SHARE * declared_seconds)


def _riff_walk(path: str, head: bytes, size: int) -> str | None:
    # Where the audio chunk ends decides, not the outer RIFF/FORM size: files whose outer size is
    # a few bytes off while the data chunk ends at the end of the file play everywhere.
    layout = read_layout(path, size)
    if layout is None:
        return "not a RIFF or FORM file"
    if layout.audio_start is None:
        return "no audio (data) chunk"
    missing = layout.audio_bytes_missing
    if missing == 0:
        return None
    fmt = layout.fmt
    declared = layout.audio_bytes_declared
    if fmt is not None and fmt.byte_rate > 0:
        declared_s, missing_s = declared / fmt.byte_rate, missing / fmt.byte_rate
        if missing_s <= tolerated_shortfall(declared_s):
            return None
        return f"audio ends {missing_s:.1f} s short of the {declared_s:.1f} s its header declares"
    if missing <= TRUNCATION_SHARE * declared:
        return None
    return f"the audio chunk declares {declared} bytes, the file holds {declared - missing}"


def _mp4_walk(path: str, head: bytes, size: int) -> str | None:
    # Top-level atoms (ftyp, moov, mdat, ...) each declare their length; follow the chain.
    offset = 0
    with open(path, "rb") as fh:
        while offset + 8 <= size:
            fh.seek(offset)
            header = fh.read(16)
            (length,) = struct.unpack(">I", header[:4])
            if length == 1 and len(header) >= 16:
                (length,) = struct.unpack(">Q", header[8:16])
            elif length == 0:
                return None
            if length < 8:
                return f"invalid atom size {length} at offset {offset}"
            offset += length
    if offset > size:
        return f"last atom declares {offset - size} bytes beyond the end of the file"
    return None


def _ogg(head: bytes, tail: bytes, size: int) -> str | None:
    # A complete Ogg stream ends with a whole page flagged end-of-stream.
    idx = tail.rfind(b"OggS")
    while idx >= 0:
        page = tail[idx:]
        if len(page) >= 27 and page[4] == 0:  # version 0: a real page header
            nsegs = page[26]
            if len(page) < 27 + nsegs:
                return "the last page is cut off"
            length = 27 + nsegs + sum(page[27 : 27 + nsegs])
            if length > len(page):
                return f"the last page is cut off ({len(page)} of {length} bytes)"
            if not page[5] & 0x04:
                return "the stream has no end-of-stream page"
            return None
        idx = tail.rfind(b"OggS", 0, idx)
    return "no Ogg page found at the end of the file"


def _flac(head: bytes, tail: bytes, size: int) -> str | None:
    # STREAMINFO declares the total sample count; the last frame header in the tail says where
    # the audio really ends. Only fixed-blocksize streams (what every encoder writes) are checked.
    if not head.startswith(b"fLaC") or len(head) < 42 or head[4] & 0x7F != 0:
        return None  # ID3-prefixed or unusual layout: leave it to the decoder
    info = head[8:42]
    min_block, max_block = struct.unpack(">HH", info[:4])
    packed = int.from_bytes(info[10:18], "big")
    total_samples = packed & ((1 << 36) - 1)
    if total_samples == 0 or min_block != max_block:
        return None
    last_frame = _last_flac_frame_number(tail)
    if last_frame is None:
        return "no audio frame found at the end of the file"
    covered = (last_frame + 1) * max_block
    if covered < total_samples:
        return f"audio ends after {covered} of {total_samples} samples"
    return None


def _last_flac_frame_number(tail: bytes) -> int | None:
    # Search backwards for a fixed-blocksize frame sync whose header CRC-8 checks out: the sync
    # pattern alone also occurs inside compressed audio.
    end = len(tail)
    while True:
        idx = tail.rfind(b"\xff\xf8", 0, end)
        if idx < 0:
            return None
        header = _flac_frame_header(tail, idx)
        if header is not None:
            return header
        end = idx + 1


def _flac_frame_header(data: bytes, idx: int) -> int | None:
    if idx + 6 > len(data):
        return None
    block_code, rate_code = data[idx + 2] >> 4, data[idx + 2] & 0x0F
    if block_code == 0 or rate_code == 0x0F or data[idx + 3] & 0x01:
        return None
    number = _utf8_number(data, idx + 4)
    if number is None:
        return None
    pos = idx + 4 + _utf8_length(data[idx + 4])
    pos += {6: 1, 7: 2}.get(block_code, 0) + {12: 1, 13: 2, 14: 2}.get(rate_code, 0)
    if pos >= len(data) or _crc8(data[idx:pos]) != data[pos]:
        return None
    return number


def _utf8_length(first: int) -> int:
    for length, lowest in ((6, 0xFC), (5, 0xF8), (4, 0xF0), (3, 0xE0), (2, 0xC0)):
        if first >= lowest:
            return length
    return 1


def _crc8(data: bytes) -> int:
    crc = 0
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = ((crc << 1) ^ 0x07) & 0xFF if crc & 0x80 else (crc << 1) & 0xFF
    return crc


def _utf8_number(data: bytes, pos: int) -> int | None:
    # FLAC codes frame numbers like UTF-8 (up to 6 bytes for fixed-blocksize streams).
    if pos >= len(data) or 0x80 <= data[pos] < 0xC0 or data[pos] >= 0xFE:
        return None
    length = _utf8_length(data[pos])
    if length == 1:
        return data[pos]
    value = data[pos] & (0x7F >> length)
    for i in range(1, length):
        if pos + i >= len(data) or data[pos + i] & 0xC0 != 0x80:
            return None
        value = (value << 6) | (data[pos + i] & 0x3F)
    return value


def _wavpack_walk(path: str, head: bytes, size: int) -> str | None:
    # Blocks chain from the start ("wvpk", ckSize, version, index/total high bytes,
    # total_samples, block_index, block_samples); blocks can exceed any fixed tail, so follow
    # the chain with one small read per block (the file is in the page cache after hashing).
    if len(head) < 24 or not head.startswith(b"wvpk"):
        return None
    (total,) = struct.unpack("<I", head[12:16])
    if total == 0xFFFFFFFF:
        return None  # unknown length (streamed encode)
    offset = 0
    reached = 0
    with open(path, "rb") as fh:
        while offset + 32 <= size:
            fh.seek(offset)
            header = fh.read(32)
            if not header.startswith(b"wvpk"):
                break  # trailing APEv2 / ID3v1 tags
            ck_size, _version, _hi, _ht, _total, index, samples = struct.unpack(
                "<IHBBIII", header[4:24]
            )
            if offset + 8 + ck_size > size:
                return "the last block is cut off"
            reached = max(reached, index + samples)
            offset += 8 + ck_size
    if reached < total:
        return f"audio ends after {reached} of {total} samples"
    return None


_CHECKS: dict[AudioFormat, Callable[[bytes, bytes, int], str | None]] = {
    AudioFormat.OGG_VORBIS: _ogg,
    AudioFormat.OGG_OPUS: _ogg,
    AudioFormat.OGG_FLAC: _ogg,
    AudioFormat.OGG_SPEEX: _ogg,
    AudioFormat.FLAC: _flac,
}


def _asf_walk(path: str, head: bytes, size: int) -> str | None:
    # ASF top-level objects (Header, Data, Index) are a 16-byte GUID plus a 64-bit length.
    offset = 0
    with open(path, "rb") as fh:
        while offset + 24 <= size:
            fh.seek(offset)
            header = fh.read(24)
            (length,) = struct.unpack("<Q", header[16:24])
            if length < 24:
                return f"invalid object size {length} at offset {offset}"
            offset += length
    if offset > size:
        return f"the last object declares {offset - size} bytes beyond the end of the file"
    return None


def _mp3_walk(path: str, head: bytes, size: int) -> str | None:
    # LAME and FFmpeg write a Xing/Info header into the first frame that records the stream's
    # byte count; a cut file has fewer bytes than it declares. Files without it are not checked.
    start = id3v2_end(head)
    with open(path, "rb") as fh:
        fh.seek(start)
        frame = fh.read(512)
    for tag in (b"Xing", b"Info"):
        idx = frame.find(tag, 4, 200)
        if idx < 0:
            continue
        (flags,) = struct.unpack(">I", frame[idx + 4 : idx + 8])
        if not flags & 0x2:
            return None
        pos = idx + 8 + (4 if flags & 0x1 else 0)
        (declared,) = struct.unpack(">I", frame[pos : pos + 4])
        # Some writers count from the Xing frame, some include the ID3 tag: accept either.
        if declared > size - start + 1024 and declared > size:
            return f"header declares {declared} bytes of audio, file has {size - start}"
        return None
    return None


_WALKS: dict[AudioFormat, Callable[[str, bytes, int], str | None]] = {
    AudioFormat.ASF: _asf_walk,
    AudioFormat.MP3: _mp3_walk,
    AudioFormat.MP4: _mp4_walk,
    AudioFormat.WAVPACK: _wavpack_walk,
    AudioFormat.WAV: _riff_walk,
    AudioFormat.AIFF: _riff_walk,
}
