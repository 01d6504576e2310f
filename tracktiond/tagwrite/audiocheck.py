"""What must not change when tags are written: the audio payload (hashed) and what a decoder
needs besides it (FLAC blocks, Ogg codec headers, WAV/AIFF chunks, MP4 track tables), read
straight from the file's container structure."""

from __future__ import annotations

import bisect
import os
import struct
from typing import Any

import xxhash

from tracktiond.media.audiohash import audio_hash_of, iff_chunks, is_ogg
from tracktiond.media.formats import AudioFormat, id3v2_end
from tracktiond.media.hashing import CHUNK_BYTES
from tracktiond.tagwrite.model import _Failure, _os_reason


def _pread_exact(fd: int, n: int, offset: int) -> bytes:
    data = os.pread(fd, n, offset)
    if len(data) != n:
        raise _Failure("unexpected end of file while verifying")
    return data


def _hash_range(h: Any, fd: int, start: int, end: int) -> None:
    pos = start
    while pos < end:
        chunk = _pread_exact(fd, min(CHUNK_BYTES, end - pos), pos)
        h.update(chunk)
        pos += len(chunk)


def _catalog_audio_hash(fd: int, fmt: AudioFormat) -> str | None:
    """The audio identity exactly as media.probe computes it (None: format not located)."""
    digest = audio_hash_of(fd, fmt)
    return None if digest is None else "a:" + digest


def _xxh(data: bytes) -> str:
    return str(xxhash.xxh3_128_hexdigest(data))


def _flac_blocks(fd: int) -> list[tuple[int, str]]:
    """Every metadata block but the comments and padding: STREAMINFO, seek table, pictures..."""
    pos = id3v2_end(os.pread(fd, 10, 0))
    if os.pread(fd, 4, pos) != b"fLaC":
        raise _Failure("no FLAC stream marker")
    pos += 4
    blocks = []
    while True:
        header = _pread_exact(fd, 4, pos)
        kind, length = header[0] & 0x7F, int.from_bytes(header[1:4], "big")
        if kind not in (1, 4):
            blocks.append((kind, _xxh(_pread_exact(fd, length, pos + 4))))
        pos += 4 + length
        if header[0] & 0x80:
            return blocks


def _ogg_layout(fd: int, fmt: AudioFormat) -> tuple[list[str], str]:
    """(hashes of the codec header packets except the comments, hash of all pages after them).

    Audio pages are hashed with everything a decoder reads (flags, granule position, serial,
    lacing, body) and without what a tag write legitimately changes (sequence number, CRC).
    The header count is the codec's (Vorbis 3, Opus 2), so a comment packet spanning several
    pages (cover art) is handled. Stricter than the catalog's media.audiohash.OggBodyHasher
    (which hashes page bodies only), so a write that disturbed page flags or granules fails.
    """
    needed = 3 if fmt is AudioFormat.OGG_VORBIS else 2
    size = os.fstat(fd).st_size
    packets: list[str] = []
    current = bytearray()
    serial: bytes | None = None
    audio = xxhash.xxh3_128()
    pos = 0
    while pos < size:
        header = _pread_exact(fd, 27, pos)
        if not header.startswith(b"OggS"):
            raise _Failure("Ogg page structure broken")
        lacing = _pread_exact(fd, header[26], pos + 27)
        body_at = pos + 27 + len(lacing)
        body_len = sum(lacing)
        serial = header[14:18] if serial is None else serial
        if len(packets) < needed and header[14:18] == serial:
            body = _pread_exact(fd, body_len, body_at)
            offset = 0
            for i, seg in enumerate(lacing):
                current += body[offset : offset + seg]
                offset += seg
                if seg < 255:
                    packets.append(_xxh(bytes(current)))
                    current.clear()
                    if len(packets) == needed and i != len(lacing) - 1:
                        raise _Failure("audio shares a page with the Ogg headers")
        else:
            audio.update(header[4:18])
            audio.update(lacing)
            _hash_range(audio, fd, body_at, body_at + body_len)
        pos = body_at + body_len
    if len(packets) < needed:
        raise _Failure("incomplete Ogg headers")
    return [p for i, p in enumerate(packets) if i != 1], audio.hexdigest()


def _iff_chunks(fd: int, big_endian: bool) -> list[tuple[bytes, int, str]]:
    """Every chunk but the ID3 one; the audio chunk by size only (its bytes are hashed apart)."""
    form = _pread_exact(fd, 12, 0)
    out: list[tuple[bytes, int, str]] = [(form[8:12], 0, "")]
    for kind, length, start, end in iff_chunks(fd, os.fstat(fd).st_size, big_endian):
        if kind.lower() != b"id3 ":
            content = (
                "" if kind in (b"data", b"SSND") else _xxh(_pread_exact(fd, end - start, start))
            )
            out.append((kind, length, content))
    return out


_MP4_CONTAINERS = {b"trak", b"mdia", b"minf", b"stbl", b"dinf", b"edts"}


def _mp4_atoms(fd: int, start: int, end: int) -> list[tuple[bytes, int, int]]:
    atoms = []
    pos = start
    while pos + 8 <= end:
        header = _pread_exact(fd, 8, pos)
        (length,) = struct.unpack(">I", header[:4])
        body = pos + 8
        if length == 1:
            (length,) = struct.unpack(">Q", _pread_exact(fd, 8, pos + 8))
            body = pos + 16
        elif length == 0:
            length = end - pos
        if length < body - pos or pos + length > end:
            raise _Failure("MP4 atom structure broken")
        atoms.append((header[4:8], body, pos + length))
        pos += length
    return atoms


def _mp4_check_plain(target: str) -> None:
    try:
        fd = os.open(target, os.O_RDONLY | os.O_CLOEXEC)
    except OSError as exc:
        raise _os_reason(exc, "reading it") from None
    try:
        kinds = [kind for kind, _, _ in _mp4_atoms(fd, 0, os.fstat(fd).st_size)]
    except OSError as exc:
        raise _os_reason(exc, "reading it") from None
    finally:
        os.close(fd)
    if b"moof" in kinds:
        raise _Failure("fragmented MP4: its audio cannot be verified after a write", skip=True)


def _mp4_tracks(fd: int) -> list[Any]:
    """Each track's sample tables, with chunk offsets made relative to their ``mdat``.

    A tag write may move the audio (when ``moov`` precedes ``mdat``) and must then shift every
    chunk offset by exactly as much: relative offsets and everything else stay identical.
    """
    top = _mp4_atoms(fd, 0, os.fstat(fd).st_size)
    mdats = [(body, end) for kind, body, end in top if kind == b"mdat"]
    starts = [body for body, _ in mdats]

    def relative(offset: int) -> tuple[int, int]:
        i = bisect.bisect_right(starts, offset) - 1
        if i < 0 or offset >= mdats[i][1]:
            return (-1, offset)
        return (i, offset - starts[i])

    def canon(start: int, end: int) -> list[Any]:
        out: list[Any] = []
        for kind, body, atom_end in _mp4_atoms(fd, start, end):
            if kind in _MP4_CONTAINERS:
                out.append((kind, canon(body, atom_end)))
            elif kind in (b"stco", b"co64"):
                width = 4 if kind == b"stco" else 8
                data = _pread_exact(fd, atom_end - body, body)
                (count,) = struct.unpack(">I", data[4:8])
                raw = struct.unpack(
                    f">{count}{'I' if width == 4 else 'Q'}", data[8 : 8 + count * width]
                )
                out.append((kind, [relative(o) for o in raw]))
            else:
                out.append((kind, _xxh(_pread_exact(fd, atom_end - body, body))))
        return out

    tracks: list[Any] = [len(mdats)]
    for kind, body, end in top:
        if kind != b"moov":
            continue
        for child, child_body, child_end in _mp4_atoms(fd, body, end):
            # moov's udta/meta hold the tags and free atoms the padding: both may change.
            if child == b"trak":
                tracks.append(canon(child_body, child_end))
            elif child == b"mvhd":
                tracks.append(_xxh(_pread_exact(fd, child_end - child_body, child_body)))
    return tracks


def _audio_fingerprint(fd: int, fmt: AudioFormat) -> tuple[str, Any]:
    """(hash of the audio payload, what a decoder needs from the headers): both must be equal
    before and after a write."""
    if is_ogg(fmt):
        headers, pages = _ogg_layout(fd, fmt)  # not the catalog's hash: see _ogg_layout
        return pages, headers
    payload = _catalog_audio_hash(fd, fmt)
    if payload is None:
        raise _Failure("its audio payload cannot be located")
    if fmt is AudioFormat.FLAC:
        return payload, _flac_blocks(fd)
    if fmt is AudioFormat.WAV:
        return payload, _iff_chunks(fd, big_endian=False)
    if fmt is AudioFormat.AIFF:
        return payload, _iff_chunks(fd, big_endian=True)
    if fmt is AudioFormat.MP4:
        return payload, _mp4_tracks(fd)
    return payload, None  # MP3: the payload covers every frame, the Xing/LAME header included
