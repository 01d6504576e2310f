"""Where the audio is inside a file, so the audio stream can be identified apart from its tags.

Editing tags changes the whole-file hash but not the audio; re-analysing after every tag edit
(including tracktiond's own tag writes) would be wasteful and would loop. So each format's audio
payload is located by parsing only its container structure:

* byte-range formats (MP3/AAC between ID3v2 and trailing ID3v1/APEv2; FLAC after its metadata
  blocks; WAV ``data`` / AIFF ``SSND`` chunks; MP4 ``mdat`` atoms; ASF data object; WavPack, APE,
  Musepack before trailing tags) — hashed during the same streamed read that computes the file
  hashes (tracktiond.media.hashing), using a few small reads of headers and the tail to plan;
* Ogg — tags live in a header packet whose size shifts the page layout (and with it every later
  page's sequence number and checksum), so the audio is hashed as the concatenated bodies of the
  pages after the headers: OggBodyHasher parses the pages as the same streamed read passes by.

audio_hasher() picks the hasher for a file; ingest feeds it during its one read, and
audio_hash_of() feeds it from a read of its own (the tag writer's check), so both agree.

Formats not understood here fall back to the whole-file hash: correct, only less thrifty.
"""

from __future__ import annotations

import os
import struct

import xxhash

from tracktiond.media.formats import SNIFF_BYTES, AudioFormat, id3v2_end
from tracktiond.media.hashing import CHUNK_BYTES, AudioHasher

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


def audio_hasher(fd: int, fmt: AudioFormat, head: bytes, size: int) -> AudioHasher | None:
    """The hasher of this file's audio payload (the catalog's audio identity), to be fed the
    whole file in order; None when the payload cannot be located (whole-file hash instead)."""
    if is_ogg(fmt):
        return OggBodyHasher.from_head(head)
    ranges = audio_ranges(fd, fmt, head, size)
    return RangeHasher(ranges) if ranges else None


def audio_hash_of(fd: int, fmt: AudioFormat) -> str | None:
    """The audio identity of an open file, read on its own (the tag writer's check); the same
    digest tracktiond.media.probe gets during its one streamed read."""
    size = os.fstat(fd).st_size
    hasher = audio_hasher(fd, fmt, os.pread(fd, SNIFF_BYTES, 0), size)
    if hasher is None:
        return None
    buf = bytearray(CHUNK_BYTES)
    view = memoryview(buf)
    offset = 0
    while n := os.preadv(fd, [buf], offset):
        hasher.update(view[:n], offset)
        offset += n
    return hasher.hexdigest()


class RangeHasher:
    """xxh3-128 of the bytes inside fixed byte ranges (the payload of most formats)."""

    def __init__(self, ranges: Ranges) -> None:
        self.ranges = ranges
        self._h = xxhash.xxh3_128()

    def update(self, chunk: memoryview, offset: int) -> None:
        end = offset + len(chunk)
        for start, stop in self.ranges:
            lo, hi = max(start, offset), min(stop, end)
            if lo < hi:
                self._h.update(chunk[lo - offset : hi - offset])

    def hexdigest(self) -> str | None:
        return self._h.hexdigest()


class OggBodyHasher:
    """xxh3-128 of the bodies of the Ogg pages after the codec's header packets, from the
    file's bytes as they stream past in order.

    Header packets are counted, not recognised by granule position: a comment packet with
    cover art spans several pages, and continuation pages carry granule -1 like audio does.
    Codec headers end a page (the specifications require it), so the audio starts on a page
    of its own and its page bodies are unaffected by a change of the comment packet.
    Pages are parsed incrementally (a page header may straddle two chunks); page bodies are
    hashed as memoryview slices of the caller's buffer, so nothing is copied or read twice.
    """

    def __init__(self, needed: int) -> None:
        self._needed = needed  # header packets before the audio
        self._packets = 0
        self._h = xxhash.xxh3_128()
        self._header = bytearray()  # the page header being assembled
        self._body_left = 0  # bytes of the current page's body still to come
        self._hashing = False
        self._bad = False

    @classmethod
    def from_head(cls, head: bytes) -> OggBodyHasher | None:
        """From the file's first bytes: the first page holds just the identification packet."""
        if len(head) < 27 or not head.startswith(b"OggS"):
            return None
        lacing = head[27 : 27 + head[26]]
        first_len = 0
        for seg in lacing:
            first_len += seg
            if seg < 255:
                break
        else:
            return None  # the identification packet does not end on the first page
        start = 27 + len(lacing)
        if len(lacing) < head[26] or start + min(first_len, 128) > len(head):
            return None
        return cls(ogg_header_packets(head[start : start + min(first_len, 128)]))

    def update(self, chunk: memoryview, offset: int) -> None:
        i, n = 0, len(chunk)
        while i < n and not self._bad:
            if self._body_left:
                take = min(self._body_left, n - i)
                if self._hashing:
                    self._h.update(chunk[i : i + take])
                self._body_left -= take
                i += take
                continue
            have = len(self._header)
            need = 27 if have < 27 else 27 + self._header[26]
            take = min(need - have, n - i)
            self._header += chunk[i : i + take]
            i += take
            if len(self._header) == 27 and not self._header.startswith(b"OggS"):
                self._bad = True
            elif len(self._header) >= 27 and len(self._header) == 27 + self._header[26]:
                self._start_body(self._header[27:])
                self._header = bytearray()

    def _start_body(self, lacing: bytearray) -> None:
        self._body_left = sum(lacing)
        # Decided at the start of each page: headers end a page.
        self._hashing = self._packets >= self._needed
        if not self._hashing:
            self._packets += sum(1 for seg in lacing if seg < 255)

    def hexdigest(self) -> str | None:
        if self._bad or self._packets < self._needed:
            return None
        return self._h.hexdigest()
