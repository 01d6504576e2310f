"""The pure parts of reading odd files: sniffing, header doubts, and reasons that explain.

The files themselves go through ingest and analysis in tests/integration/test_odd_files.py.
"""

from __future__ import annotations

import errno
from pathlib import Path

import av.error
import mutagen.mp3
import pytest

from tests.support import audiogen
from tracktiond.analysis.decode import ffmpeg_message
from tracktiond.media.formats import AudioFormat, sniff
from tracktiond.media.integrity import implausible_duration, tolerated_shortfall
from tracktiond.media.riff import read_layout
from tracktiond.media.tags import tag_failure


def test_flac_behind_an_id3_tag_larger_than_the_head(tmp_path: Path) -> None:
    path = audiogen.make_odd(tmp_path / "cover.flac", "id3_before_flac")
    data = path.read_bytes()
    head = data[:4096]

    def read_at(offset: int, n: int) -> bytes:
        return data[offset : offset + n]

    assert sniff(head) is AudioFormat.MP3  # all a 4 KiB window can tell
    assert sniff(head, read_at) is AudioFormat.FLAC


def test_ogg_whose_first_stream_is_video(tmp_path: Path) -> None:
    path = audiogen.make_odd(tmp_path / "clip.ogg", "video_first_ogg")
    head = path.read_bytes()[:4096]
    assert head[28:33] == b"OVP80"  # the first page really is the video stream's
    assert sniff(head) is AudioFormat.OGG_VORBIS


@pytest.mark.parametrize(
    ("kind", "root", "missing"),
    [("riff_size_off", b"RIFF", 0), ("data_short", b"RIFF", 48), ("rf64", b"RF64", 0)],
)
def test_riff_layout_follows_the_audio_chunk(
    tmp_path: Path, kind: str, root: bytes, missing: int
) -> None:
    path = audiogen.make_odd(tmp_path / "a.wav", kind, seconds=1.0)
    size = path.stat().st_size
    layout = read_layout(str(path), size)
    assert layout is not None and layout.root == root
    assert layout.audio_bytes_missing == missing
    assert layout.duration() == pytest.approx(1.0, abs=0.001)
    if kind == "riff_size_off":
        assert layout.root_end == size + 8  # the outer size lies; the data chunk does not


def test_compressed_wav_duration_comes_from_its_sample_count(tmp_path: Path) -> None:
    path = audiogen.make_odd(tmp_path / "adpcm.wav", "adpcm", seconds=1.5)
    layout = read_layout(str(path), path.stat().st_size)
    assert layout is not None and layout.fmt is not None
    assert (layout.fmt.codec, layout.fmt.byte_rate) == ("adpcm_ms", 0)
    assert layout.duration() == pytest.approx(1.5, abs=0.03)


def test_the_shortfall_allowed_is_the_decoders() -> None:
    assert tolerated_shortfall(4.0) == 0.5
    assert tolerated_shortfall(3600.0) == pytest.approx(108.0)


def test_header_durations_checked_against_size_and_bit_rate() -> None:
    assert implausible_duration(40_780_800.0, 13_955) is not None  # beets' oldape.ape
    assert implausible_duration(169_022.0, 80_000) is not None  # mutagen's nero-chapters.m4b
    assert implausible_duration(240.0, 3_840_000, 128_000) is None  # a 4-minute MP3
    assert implausible_duration(10_800.0, 1_700_000) is None  # 3 hours of silence in FLAC
    assert implausible_duration(3600.0, 1_000_000, 320_000) is not None  # 144 MB claimed


def test_tag_failures_are_explained() -> None:
    bare = tag_failure(AudioFormat.MP3, mutagen.mp3.error())
    assert bare == "tags not read: mutagen cannot parse this mp3 file (it gives no reason)"
    crash = tag_failure(AudioFormat.WAVPACK, IndexError("list index out of range"))
    assert crash == (
        "tags not read: mutagen failed on this wavpack file (IndexError: list index out of range)"
    )


def test_ffmpeg_errno_messages_are_said_to_come_from_the_decoder() -> None:
    eperm = av.error.PermissionError(errno.EPERM, "Operation not permitted")
    assert ffmpeg_message(eperm) == (
        "the decoder rejected the data (FFmpeg returned EPERM: Operation not permitted)"
    )
    assert ffmpeg_message(EOFError()) == "EOFError"
    assert ffmpeg_message(av.error.EOFError(541478725, "End of file")) == (
        "the file ends before any audio was found"
    )
