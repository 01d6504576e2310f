"""The per-file ingest stage: hash, identify by content, check completeness, read tags.

Runs on a worker thread (blocking I/O and pure-Python parsing only: no native decoder is
touched here). Every failure leaves as a FileJobError subclass with a reason fit for users;
anything else escaping is a bug and is classified as such by the caller.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field

from tracktiond.errors import BadInput, FileStillArriving
from tracktiond.media.audiohash import audio_hasher
from tracktiond.media.embeddedcue import embedded_cue_text
from tracktiond.media.formats import AudioFormat, ReadAt, extension, sniff
from tracktiond.media.hashing import AudioHasher, FileDigest, digest_file
from tracktiond.media.integrity import check_complete, implausible_duration
from tracktiond.media.tags import read_metadata


@dataclass(frozen=True, slots=True)
class IngestResult:
    digest: FileDigest
    format: AudioFormat
    tags: dict[str, str] = field(default_factory=dict)
    stream: dict[str, str] = field(default_factory=dict)
    # Identity of the audio stream alone (tags excluded): "a:" + xxh3-128 of the audio payload,
    # or "f:" + the whole-file xxh3-128 for formats whose payload is not located.
    audio_hash: str = ""
    # The text of a cue sheet embedded in the file (DJ sets, live recordings, whole-album
    # rips); read into a tracklist by the tracklist stage. Sheets next to the file are found by
    # the walk, not here.
    embedded_cue: str | None = None


def check_name(path: str) -> None:
    """File names must be valid UTF-8 to be stored and shown; os gives us surrogate escapes."""
    try:
        path.encode("utf-8")
    except UnicodeEncodeError:
        raise BadInput("file name is not valid UTF-8") from None


def display_path(path: str) -> str:
    """A printable, storable form of a path whose name may hold undecodable bytes."""
    return path.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


def ingest_file(path: str) -> IngestResult:
    check_name(path)
    digest = digest_file(path, _plan_audio)
    if digest.size == 0:
        raise BadInput("empty file (0 bytes)")
    fmt = sniff(digest.head, _reader(path))
    if fmt is None:
        raise BadInput(f"not an audio file: {describe_content(digest.head)}")
    try:
        check_complete(path, fmt, digest.head, digest.size)
    except BadInput as exc:
        if _still_arriving(path, digest):
            raise FileStillArriving(f"{exc.reason}, but the file is still being written") from None
        raise
    tags, stream = read_metadata(path, fmt)
    _doubt_duration(stream, digest.size)
    ext = extension(path)
    if ext and not _extension_matches(ext, fmt):
        stream["extension_mismatch"] = f".{ext} file contains {fmt.value}"
    audio = digest.audio_xxh128
    audio_hash = f"a:{audio}" if audio else f"f:{digest.xxh128}"
    return IngestResult(
        digest=digest,
        format=fmt,
        tags=tags,
        stream=stream,
        audio_hash=audio_hash,
        embedded_cue=embedded_cue_text(path, fmt),
    )


# A file modified this recently that looks cut short is taken for one still being written
# (a copy, a download, a recording in progress), not for a damaged one.
ARRIVING_SECONDS = 5.0


def _still_arriving(path: str, digest: FileDigest) -> bool:
    try:
        st = os.stat(path)
    except OSError:
        return False
    if (st.st_size, st.st_mtime_ns) != (digest.size, digest.mtime_ns):
        return True  # it changed since we read it
    return time.time() - st.st_mtime_ns / 1e9 < ARRIVING_SECONDS


def _reader(path: str) -> ReadAt:
    def read_at(offset: int, n: int) -> bytes:
        try:
            with open(path, "rb") as fh:
                fh.seek(offset)
                return fh.read(n)
        except OSError:  # gone or unreadable: the read that follows says which
            return b""

    return read_at


def _doubt_duration(stream: dict[str, str], size: int) -> None:
    """A header duration the file's size (or bit rate) rules out is kept aside, not believed:
    it would hold an analysis worker for days through its timeout. The decoder measures the
    real length."""
    try:
        seconds = float(stream.get("duration") or 0)
        bitrate = int(stream.get("bitrate") or 0)
    except ValueError:
        return
    why = implausible_duration(seconds, size, bitrate)
    if why:
        stream["header_duration"] = stream.pop("duration")
        stream["duration_note"] = f"{why}: the length comes from decoding"


def _plan_audio(fd: int, head: bytes, size: int) -> AudioHasher | None:
    fmt = sniff(head, lambda offset, n: os.pread(fd, n, offset))
    if fmt is None:
        return None
    return audio_hasher(fd, fmt, head, size)


_EXPECTED = {
    AudioFormat.MP3: {"mp3", "mp2"},
    AudioFormat.AAC: {"aac"},
    AudioFormat.FLAC: {"flac"},
    AudioFormat.OGG_VORBIS: {"ogg", "oga"},
    AudioFormat.OGG_OPUS: {"opus", "ogg", "oga"},
    AudioFormat.OGG_FLAC: {"ogg", "oga", "flac"},
    AudioFormat.OGG_SPEEX: {"spx", "ogg", "oga"},
    AudioFormat.MP4: {"m4a", "m4b", "mp4", "aac", "alac"},
    AudioFormat.WAV: {"wav", "wave"},
    AudioFormat.AIFF: {"aif", "aiff", "aifc"},
    AudioFormat.ASF: {"wma", "asf"},
    AudioFormat.WAVPACK: {"wv"},
    AudioFormat.APE: {"ape"},
    AudioFormat.MUSEPACK: {"mpc"},
    AudioFormat.DSF: {"dsf"},
}


def _extension_matches(ext: str, fmt: AudioFormat) -> bool:
    return ext in _EXPECTED.get(fmt, set())


def describe_content(head: bytes) -> str:
    """A short human description of unrecognised leading bytes."""
    known = (
        (b"\x89PNG", "a PNG image"),
        (b"\xff\xd8\xff", "a JPEG image"),
        (b"%PDF", "a PDF document"),
        (b"PK\x03\x04", "a ZIP archive"),
        (b"RIFF", "a RIFF file that is not WAVE"),
        (b"OggS", "an Ogg stream with no supported audio codec"),
    )
    for magic, what in known:
        if head.startswith(magic):
            return f"content is {what}"
    sample = head[:512]
    if sample and all(32 <= b < 127 or b in (9, 10, 13) for b in sample):
        return "content is plain text"
    return f"unrecognised content (starts with {head[:8].hex(' ')})"
