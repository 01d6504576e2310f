"""Which files are audio, and what they really contain.

Discovery is by extension (so unchanged and non-audio files cost nothing but a directory
listing); identity is by content: the first bytes of every candidate are sniffed, because real
libraries contain files whose extension lies (an ``.ogg`` that is RIFF WAVE).
"""

from __future__ import annotations

from collections.abc import Callable
from enum import StrEnum


class AudioFormat(StrEnum):
    MP3 = "mp3"
    AAC = "aac"  # raw ADTS stream
    FLAC = "flac"
    OGG_VORBIS = "ogg_vorbis"
    OGG_OPUS = "ogg_opus"
    OGG_FLAC = "ogg_flac"
    OGG_SPEEX = "ogg_speex"
    MP4 = "mp4"  # M4A/MP4 (AAC or ALAC inside)
    WAV = "wav"
    AIFF = "aiff"
    ASF = "asf"  # WMA
    WAVPACK = "wavpack"
    APE = "ape"  # Monkey's Audio
    MUSEPACK = "musepack"
    DSF = "dsf"


# Extensions whose files are candidates. Lower case, without the dot.
AUDIO_EXTENSIONS: frozenset[str] = frozenset(
    {
        "mp3", "mp2", "flac", "ogg", "oga", "opus", "spx", "m4a", "m4b", "mp4", "aac", "alac",
        "wav", "wave", "aif", "aiff", "aifc", "wma", "asf", "wv", "ape", "mpc", "dsf",
    }
)  # fmt: skip

# How many leading bytes sniffing needs; the hashing read hands over its first chunk.
SNIFF_BYTES = 4096

# Names that are never finished audio: partial downloads, editors' and sync tools' temp files.
_TEMP_SUFFIXES = (".part", ".crdownload", ".partial", ".download", ".tmp", ".temp", "~", ".swp")


def extension(name: str) -> str:
    dot = name.rfind(".")
    return name[dot + 1 :].lower() if dot > 0 else ""


def is_candidate(name: str) -> bool:
    """Should a file with this name be cataloged? Decided without touching the file."""
    if name.startswith((".~", ".#", "._")) or name.endswith(_TEMP_SUFFIXES):
        return False
    if name.startswith(".") and ".tracktiond-" in name:  # our own tag-writing temp files
        return False
    return extension(name) in AUDIO_EXTENSIONS


def id3v2_end(head: bytes) -> int:
    """Where a leading ID3v2 tag ends (0 without one): the container starts there."""
    if not head.startswith(b"ID3") or len(head) < 10:
        return 0
    # ID3v2 size is a 28-bit "syncsafe" integer; +10 header, +10 if a footer is flagged.
    size = (head[6] << 21) | (head[7] << 14) | (head[8] << 7) | head[9]
    return size + 10 + (10 if head[5] & 0x10 else 0)


# Reads ``n`` bytes of the file at ``offset`` (for what lies behind a tag larger than the head).
ReadAt = Callable[[int, int], bytes]


def sniff(head: bytes, read_at: ReadAt | None = None) -> AudioFormat | None:
    """The audio format the leading bytes announce, or None when they are not audio we know.

    With ``read_at``, a container behind an ID3v2 tag larger than ``head`` (cover art makes
    them hundreds of KiB) is looked at too; without it such a file is taken for MP3.
    """
    if len(head) < 4:
        return None
    if head.startswith(b"ID3") and len(head) >= 10:
        # An ID3v2 tag prefixes MP3 mostly, but FLAC/AAC/APE with ID3 exist: look behind it.
        end = id3v2_end(head)
        behind = head[end:]
        if len(behind) < 64 and read_at is not None:
            behind = read_at(end, 64)
        if len(behind) >= 4:
            inner = sniff(behind)
            if inner is not None:
                return inner
        return AudioFormat.MP3
    if head.startswith(b"fLaC"):
        return AudioFormat.FLAC
    if head.startswith(b"OggS"):
        return _sniff_ogg(head)
    if head[:4] == b"RIFF" and head[8:12] == b"WAVE":
        return AudioFormat.WAV
    if head[:4] in (b"RF64", b"BW64") and head[8:12] == b"WAVE":
        return AudioFormat.WAV
    if head[:4] == b"FORM" and head[8:12] in (b"AIFF", b"AIFC"):
        return AudioFormat.AIFF
    if head[4:8] == b"ftyp":
        return AudioFormat.MP4
    if head.startswith(b"\x30\x26\xb2\x75\x8e\x66\xcf\x11"):
        return AudioFormat.ASF
    if head.startswith(b"wvpk"):
        return AudioFormat.WAVPACK
    if head.startswith(b"MAC "):
        return AudioFormat.APE
    if head.startswith((b"MPCK", b"MP+")):
        return AudioFormat.MUSEPACK
    if head.startswith(b"DSD "):
        return AudioFormat.DSF
    return _sniff_frame_sync(head)


_OGG_CODECS: tuple[tuple[bytes, AudioFormat], ...] = (
    (b"\x01vorbis", AudioFormat.OGG_VORBIS),
    (b"OpusHead", AudioFormat.OGG_OPUS),
    (b"\x7fFLAC", AudioFormat.OGG_FLAC),
    (b"Speex   ", AudioFormat.OGG_SPEEX),
)


def _sniff_ogg(head: bytes) -> AudioFormat | None:
    # Every logical stream starts with a "beginning of stream" page carrying only its codec's
    # identification header, and all of them come first. A video file (Theora, VP8) or a
    # recording with a video stream puts that one first: look at every BOS page in the head.
    pos = 0
    while pos + 27 <= len(head) and head[pos : pos + 4] == b"OggS" and head[pos + 5] & 0x02:
        segments = head[pos + 26]
        lacing = head[pos + 27 : pos + 27 + segments]
        body = pos + 27 + segments
        packet = head[body : body + 16]
        for magic, fmt in _OGG_CODECS:
            if packet.startswith(magic):
                return fmt
        pos = body + sum(lacing)
    return None


def _sniff_frame_sync(head: bytes) -> AudioFormat | None:
    # MPEG audio and ADTS have no magic, only an 11/12-bit frame sync. Require two consecutive
    # plausible frame headers-worth of evidence is overkill here; one valid header at offset 0
    # is what players accept too.
    b0, b1 = head[0], head[1]
    if b0 != 0xFF or (b1 & 0xE0) != 0xE0:
        return None
    if (b1 & 0xF6) == 0xF0:  # 12-bit sync and layer 00: ADTS AAC
        return AudioFormat.AAC
    layer = (b1 >> 1) & 0x3
    version = (b1 >> 3) & 0x3
    if layer == 0 or version == 1 or len(head) < 3:
        return None
    bitrate_index = head[2] >> 4
    sample_rate_index = (head[2] >> 2) & 0x3
    if bitrate_index in (0, 15) or sample_rate_index == 3:
        return None
    return AudioFormat.MP3
