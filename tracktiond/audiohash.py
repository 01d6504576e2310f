"""Where the audio is inside a file, so the audio stream can be identified apart from its tags.

Editing tags changes the whole-file hash but not the audio; re-analysing after every tag edit
(including tracktiond's own tag writes) would be wasteful and would loop. So each format's audio
payload is located by parsing only its container structure:

* byte-range formats (MP3/AAC between ID3v2 and trailing ID3v1/APEv2; FLAC after its metadata
  blocks; WAV ``data`` / AIFF ``SSND`` chunks; MP4 ``mdat`` atoms; ASF data object; WavPack, APE,
  Musepack before trailing tags) — hashed during the same streamed read that computes the file
  hashes (tracktiond.hashing), using a few small reads of headers and the tail to plan;
* Ogg — tags live in a header packet whose size shifts the page layout, so the audio is hashed as
  the concatenated bodies of the pages after the headers (a separate pass over the file).

Formats not understood here fall back to the whole-file hash: correct, only less thrifty.
"""

from __future__ import annotations

import os
import struct

import xxhash

from tracktiond.formats import AudioFormat, id3v2_end

Ranges = list[tuple[int, int]]

_OGG = {
    AudioFormat.OGG_VORBIS,
    AudioFormat.OGG_OPUS,
    AudioFormat.OGG_FLAC,
    AudioFormat.OGG_SPEEX,
}
_ASF_DATA = bytes.fromhex("3626b2758e66cf11a6d900aa0062ce6c")


def is_ogg(fmt: AudioFormat) -> bool:
    return fmt in _OGG


def audio_ranges(fd: int, fmt: AudioFormat, head: bytes, size: int) -> Ranges | None:
    """Byte ranges holding the audio payload, or None when this format is not planned here."""
    try:
        planner = _PLANNERS.get(fmt)
        if planner is None:
            return None
        ranges = planner(fd, head, size)
    except (OSError, struct.error, IndexError, ValueError):
        return None  # malformed structure: fall back to the whole file
    if not ranges:
        return None
    clipped = [(max(0, a), min(size, b)) for a, b in ranges if b > a]
    return clipped or None


def _pread(fd: int, n: int, offset: int) -> bytes:
    return os.pread(fd, n, offset)


def _trailing_tags_start(fd: int, size: int) -> int:
    """Where ID3v1, APEv2 and Lyrics3 tags at the end of the file begin."""
    end = size
    if end >= 128 and _pread(fd, 3, end - 128) == b"TAG":
        end -= 128
    if end >= 32:
        footer = _pread(fd, 32, end - 32)
        if footer.startswith(b"APETAGEX"):
            tag_size, _items, flags = struct.unpack("<III", footer[12:24])
            has_header = bool(flags & 0x80000000)
            end -= tag_size + (32 if has_header else 0)
    if end >= 15 and _pread(fd, 9, end - 9) == b"LYRICS200":
        length = int(_pread(fd, 6, end - 15))
        end -= length + 15
    return max(0, end)


def _mpeg(fd: int, head: bytes, size: int) -> Ranges:
    return [(id3v2_end(head), _trailing_tags_start(fd, size))]


def _apev2_tagged(fd: int, head: bytes, size: int) -> Ranges:
    return [(id3v2_end(head), _trailing_tags_start(fd, size))]


def _flac(fd: int, head: bytes, size: int) -> Ranges:
    pos = id3v2_end(head)
    if _pread(fd, 4, pos) != b"fLaC":
        return []
    pos += 4
    while True:
        header = _pread(fd, 4, pos)
        if len(header) < 4:
            return []
        last = header[0] & 0x80
        length = int.from_bytes(header[1:4], "big")
        pos += 4 + length
        if last:
            break
    end = size - 128 if size >= 128 and _pread(fd, 3, size - 128) == b"TAG" else size
    return [(pos, end)]


def iff_chunks(fd: int, size: int, big_endian: bool) -> list[tuple[bytes, int, int, int]]:
    """The chunks of a RIFF (WAV) or FORM (AIFF) file after its 12-byte header:
    (id, declared length, body start, body end clipped to the file)."""
    fmt = ">I" if big_endian else "<I"
    out = []
    pos = 12
    while pos + 8 <= size:
        header = _pread(fd, 8, pos)
        if len(header) < 8:
            break
        (length,) = struct.unpack(fmt, header[4:8])
        out.append((header[:4], length, pos + 8, min(size, pos + 8 + length)))
        pos += 8 + length + (length & 1)  # chunks are padded to an even length
    return out


def _wav(fd: int, head: bytes, size: int) -> Ranges:
    return [(a, b) for cid, _, a, b in iff_chunks(fd, size, False) if cid == b"data"]


def _aiff(fd: int, head: bytes, size: int) -> Ranges:
    return [(a, b) for cid, _, a, b in iff_chunks(fd, size, True) if cid == b"SSND"]


def _mp4(fd: int, head: bytes, size: int) -> Ranges:
    ranges = []
    pos = 0
    while pos + 8 <= size:
        header = _pread(fd, 16, pos)
        (length,) = struct.unpack(">I", header[:4])
        kind = header[4:8]
        body = pos + 8
        if length == 1:
            (length,) = struct.unpack(">Q", header[8:16])
            body = pos + 16
        elif length == 0:
            length = size - pos
        if length < 8:
            return []
        if kind == b"mdat":
            ranges.append((body, min(size, pos + length)))
        pos += length
    return ranges


def _asf(fd: int, head: bytes, size: int) -> Ranges:
    pos = 0
    while pos + 24 <= size:
        header = _pread(fd, 24, pos)
        (length,) = struct.unpack("<Q", header[16:24])
        if length < 24:
            return []
        if header[:16] == _ASF_DATA:
            return [(pos + 24, min(size, pos + length))]
        pos += length
    return []


_PLANNERS = {
    AudioFormat.MP3: _mpeg,
    AudioFormat.AAC: _mpeg,
    AudioFormat.FLAC: _flac,
    AudioFormat.WAV: _wav,
    AudioFormat.AIFF: _aiff,
    AudioFormat.MP4: _mp4,
    AudioFormat.ASF: _asf,
    AudioFormat.WAVPACK: _apev2_tagged,
    AudioFormat.APE: _apev2_tagged,
    AudioFormat.MUSEPACK: _apev2_tagged,
}


def ogg_header_packets(first_packet: bytes) -> int:
    """How many header packets precede the audio, from the identification packet."""
    if first_packet.startswith(b"\x7fFLAC") and len(first_packet) >= 9:
        return 1 + int.from_bytes(first_packet[7:9], "big")  # mapping header + metadata blocks
    if first_packet.startswith(b"Speex   ") and len(first_packet) >= 72:
        return 2 + int.from_bytes(first_packet[68:72], "little")  # + extra headers
    if first_packet.startswith(b"OpusHead"):
        return 2
    return 3  # Vorbis: identification, comment, setup


def ogg_audio_hash(path: str) -> str | None:
    """xxh3-128 of the bodies of the Ogg pages after the codec's header packets.

    Header packets are counted, not recognised by granule position: a comment packet with
    cover art spans several pages, and continuation pages carry granule -1 like audio does.
    Codec headers end a page (the specifications require it), so the audio starts on a page
    of its own and its page bodies are unaffected by a change of the comment packet.
    """
    h = xxhash.xxh3_128()
    needed: int | None = None
    packets = 0
    first = bytearray()
    try:
        with open(path, "rb") as fh:
            while True:
                header = fh.read(27)
                if len(header) < 27:
                    break
                if not header.startswith(b"OggS"):
                    return None
                lacing = fh.read(header[26])
                body = fh.read(sum(lacing))
                if needed is None or packets < needed:
                    offset = 0
                    for seg in lacing:
                        if packets == 0 and len(first) < 128:
                            first += body[offset : offset + seg]
                        offset += seg
                        if seg < 255:
                            packets += 1
                            if packets == 1:
                                needed = ogg_header_packets(bytes(first))
                    continue
                h.update(body)
    except OSError:
        return None
    return h.hexdigest() if needed is not None and packets >= needed else None
