"""Checks that tests/support/audiogen.py makes what it promises.

Every other test that uses generated audio trusts these files to be real, correctly tagged and
reproducible; if that trust is misplaced those tests prove nothing, so it is verified here with
two independent readers: mutagen (container/tag level) and FFmpeg via PyAV (actual decoding).
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import av
import av.error
import mutagen
import pytest

from tests.support import audiogen
from tests.support.audiogen import (
    BROKEN_KINDS,
    EXTENSIONS,
    FORMATS,
    MUTAGEN_TYPES,
    TAG_FIELDS,
    TAG_KEYS,
    TAG_SCHEME,
    make_audio,
    make_broken,
    make_library,
    read_tags,
)

# Every generic key, with values that exercise the awkward cases: a "N/M" track number, a full
# date, a non-ASCII title and ReplayGain strings with units.
FULL_TAGS: dict[str, str] = {
    "title": "Grüße aus dem Keller (Live)",
    "artist": "The Test Artist",
    "album": "Generated Album",
    "albumartist": "Various Artists",
    "genre": "Techno",
    "date": "2024-05-01",
    "tracknumber": "3/12",
    "discnumber": "1/2",
    "bpm": "128",
    "initialkey": "F#m",
    "replaygain_track_gain": "-6.50 dB",
    "replaygain_track_peak": "0.912345",
}

SECONDS = 0.5
# Lossy codecs pad to whole frames and carry encoder delay; which of that a reader counts differs
# (mutagen reads MP3 length from the Xing frame count without removing the LAME delay, FFmpeg's
# WMA decoder drops the first frame's delay).  60 ms covers one 2048-sample frame at 44.1 kHz.
LENGTH_TOLERANCE = 0.06
# The Monkey's Audio file comes from mutagen's test data as shipped (see audiogen.make_audio).
APE_SECONDS = 162496 / 44100
# Formats whose encoders can write 5.1.
SURROUND_FORMATS: tuple[str, ...] = ("flac", "opus", "m4a", "wav", "aiff", "wv")


def _decode(path: Path) -> tuple[int, int, int]:
    """Decode every audio frame with FFmpeg: (samples per channel, channels, sample rate)."""
    with av.open(str(path)) as container:
        stream = container.streams.audio[0]
        samples = sum(frame.samples for frame in container.decode(stream))
        return samples, stream.codec_context.channels, stream.codec_context.sample_rate


def _mutagen_rejects(path: Path) -> bool:
    try:
        return mutagen.File(str(path)) is None
    except mutagen.MutagenError:
        return True


def _ffmpeg_rejects(path: Path) -> bool:
    """True when FFmpeg cannot open the file or finds no audio samples in it."""
    try:
        samples, _, _ = _decode(path)
    except (av.error.FFmpegError, IndexError):
        # IndexError: the demuxer opened it but found no audio stream at all.
        return True
    return samples == 0


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


# ---------------------------------------------------------------------------------------------
# Tables
# ---------------------------------------------------------------------------------------------


def test_tables_cover_every_format_and_key() -> None:
    assert set(EXTENSIONS) == set(FORMATS)
    assert all(EXTENSIONS[f] == f".{f}" for f in FORMATS)
    assert set(TAG_SCHEME) == set(FORMATS)
    assert set(MUTAGEN_TYPES) == set(FORMATS)
    assert set(TAG_SCHEME.values()) == set(TAG_FIELDS)
    for scheme, fields in TAG_FIELDS.items():
        assert tuple(fields) == TAG_KEYS, scheme
        assert len(set(fields.values())) == len(TAG_KEYS), f"{scheme} maps two keys to one field"
    assert set(FULL_TAGS) == set(TAG_KEYS)


def test_format_for_path() -> None:
    assert audiogen.format_for_path("a/b/Song.FLAC") == "flac"
    with pytest.raises(ValueError, match="no audio format"):
        audiogen.format_for_path("notes.txt")


# ---------------------------------------------------------------------------------------------
# make_audio: real, readable, tagged
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", FORMATS)
def test_make_audio_is_real_and_tagged(fmt: str, tmp_path: Path) -> None:
    path = tmp_path / f"song{EXTENSIONS[fmt]}"
    assert make_audio(path, seconds=SECONDS, tags=FULL_TAGS) == path

    # mutagen detects the format by content, so an exact type check proves the container.
    audio = mutagen.File(str(path))
    assert type(audio) is MUTAGEN_TYPES[fmt]
    info: Any = audio.info
    expected_seconds = APE_SECONDS if fmt == "ape" else SECONDS
    assert info.length == pytest.approx(expected_seconds, abs=LENGTH_TOLERANCE)
    assert info.channels == 2
    if fmt == "opus":
        # mutagen's OggOpusInfo has no sample rate (Opus always decodes at 48 kHz).
        assert not hasattr(info, "sample_rate")
    else:
        assert info.sample_rate == 44100

    assert read_tags(path) == FULL_TAGS

    samples, channels, rate = _decode(path)
    assert channels == 2
    assert rate == (48000 if fmt == "opus" else 44100)
    assert samples / rate == pytest.approx(expected_seconds, abs=LENGTH_TOLERANCE)


@pytest.mark.parametrize("fmt", [f for f in FORMATS if f not in ("ogg", "ape")])
def test_make_audio_mono_48k_without_tags(fmt: str, tmp_path: Path) -> None:
    path = tmp_path / f"mono{EXTENSIONS[fmt]}"
    make_audio(path, seconds=0.3, channels=1, sample_rate=48000)
    audio = mutagen.File(str(path))
    assert type(audio) is MUTAGEN_TYPES[fmt]
    info: Any = audio.info
    # WavPack: mutagen reports True for mono, which still equals 1.
    assert info.channels == 1
    assert getattr(info, "sample_rate", 48000) == 48000
    # FFmpeg's own metadata (encoder name etc.) must not leak into the generic keys.
    assert read_tags(path) == {}
    samples, channels, rate = _decode(path)
    assert (channels, rate) == (1, 48000)
    assert samples / rate == pytest.approx(0.3, abs=LENGTH_TOLERANCE)


def test_opus_at_44100_is_encoded_at_48k(tmp_path: Path) -> None:
    path = make_audio(tmp_path / "a.opus", seconds=0.3, sample_rate=44100)
    samples, _, rate = _decode(path)
    assert rate == 48000
    assert samples == round(0.3 * 48000)


def test_fmt_overrides_extension(tmp_path: Path) -> None:
    path = make_audio(tmp_path / "actually-flac.bin", "flac", seconds=0.2)
    assert type(mutagen.File(str(path))) is MUTAGEN_TYPES["flac"]


def test_m4a_track_number_without_total(tmp_path: Path) -> None:
    tags = {"tracknumber": "7", "discnumber": "2", "bpm": "90"}
    path = make_audio(tmp_path / "a.m4a", seconds=0.2, tags=tags)
    assert read_tags(path) == tags


@pytest.mark.parametrize(
    ("name", "kwargs", "message"),
    [
        ("a.xyz", {}, "no audio format"),
        ("a.mp3", {"fmt": "mod"}, "unknown format"),
        ("a.flac", {"tags": {"composer": "x"}}, "unknown tag keys"),
        ("a.mp3", {"channels": 6}, "channels"),
        ("a.wma", {"channels": 6}, "channels"),
        ("a.ogg", {"channels": 1}, "channels"),
        ("a.m4a", {"tags": {"bpm": "120.5"}}, "tmpo"),
        ("a.m4a", {"tags": {"tracknumber": "A1"}}, "trkn"),
        ("a.wav", {"seconds": 0}, "seconds"),
    ],
)
def test_make_audio_rejects_bad_arguments(
    name: str, kwargs: dict[str, object], message: str, tmp_path: Path
) -> None:
    with pytest.raises(ValueError, match=message):
        make_audio(tmp_path / name, **kwargs)  # type: ignore[arg-type]


def test_missing_ape_sample_is_loud(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # The .ape sample ships in tests/data; without it APE coverage must fail the run with a
    # reason rather than quietly skip.
    monkeypatch.setattr(audiogen, "APE_SAMPLE", tmp_path / "gone.ape")
    with pytest.raises(RuntimeError, match=r"tests/data/README\.md"):
        make_audio(tmp_path / "a.ape")


# ---------------------------------------------------------------------------------------------
# Determinism
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", FORMATS)
def test_make_audio_is_deterministic(fmt: str, tmp_path: Path) -> None:
    ext = EXTENSIONS[fmt]
    first = make_audio(tmp_path / f"a{ext}", seconds=0.3, seed=7, tags=FULL_TAGS)
    second = make_audio(tmp_path / "other" / f"b{ext}", seconds=0.3, seed=7, tags=FULL_TAGS)
    assert first.read_bytes() == second.read_bytes()

    # Overwriting an existing file must give the same bytes, not append or keep stale tags.
    make_audio(first, seconds=0.3, seed=7, tags=FULL_TAGS)
    assert first.read_bytes() == second.read_bytes()

    other_seed = make_audio(tmp_path / f"c{ext}", seconds=0.3, seed=8, tags=FULL_TAGS)
    other_freq = make_audio(tmp_path / f"d{ext}", seconds=0.3, seed=7, freq=523.25, tags=FULL_TAGS)
    hashes = {_sha(first), _sha(other_seed), _sha(other_freq)}
    assert len(hashes) == 3


# ---------------------------------------------------------------------------------------------
# make_broken
# ---------------------------------------------------------------------------------------------


def test_broken_zero(tmp_path: Path) -> None:
    path = make_broken(tmp_path / "empty.flac", "zero")
    assert path.stat().st_size == 0
    assert _mutagen_rejects(path)
    assert _ffmpeg_rejects(path)


@pytest.mark.parametrize("fmt", FORMATS)
def test_broken_truncated(fmt: str, tmp_path: Path) -> None:
    ext = EXTENSIONS[fmt]
    full = make_audio(tmp_path / f"full{ext}", seconds=2.0, seed=3)
    cut = make_broken(tmp_path / f"cut{ext}", "truncated", seed=3)
    data = full.read_bytes()
    assert cut.read_bytes() == data[: int(len(data) * 0.4)]
    # However each reader copes with the missing tail, the file no longer holds the whole
    # recording: mutagen or FFmpeg reject it, or FFmpeg decodes fewer samples.
    full_samples, _, _ = _decode(full)
    if not (_mutagen_rejects(cut) or _ffmpeg_rejects(cut)):
        assert _decode(cut)[0] < full_samples


@pytest.mark.parametrize("fmt", FORMATS)
def test_broken_garbage(fmt: str, tmp_path: Path) -> None:
    ext = EXTENSIONS[fmt]
    path = make_broken(tmp_path / f"noise{ext}", "garbage", seed=1)
    data = path.read_bytes()
    assert len(data) == 16 * 1024
    assert b"\xff" not in data
    assert data == make_broken(tmp_path / f"again{ext}", "garbage", seed=1).read_bytes()
    assert data != make_broken(tmp_path / f"other{ext}", "garbage", seed=2).read_bytes()
    assert _mutagen_rejects(path)
    assert _ffmpeg_rejects(path)


def test_broken_wrong_extension(tmp_path: Path) -> None:
    path = make_broken(tmp_path / "song.ogg", "wrong_extension")
    assert path.suffix == ".ogg"
    data = path.read_bytes()
    assert data[:4] == b"RIFF"
    assert data[8:12] == b"WAVE"
    assert type(mutagen.File(str(path))) is MUTAGEN_TYPES["wav"]
    with av.open(str(path)) as container:
        assert container.format.name == "wav"
    assert _decode(path)[0] > 0


@pytest.mark.parametrize("fmt", SURROUND_FORMATS)
def test_broken_multichannel(fmt: str, tmp_path: Path) -> None:
    path = make_broken(tmp_path / f"surround{EXTENSIONS[fmt]}", "multichannel")
    audio = mutagen.File(str(path))
    assert type(audio) is MUTAGEN_TYPES[fmt]
    info: Any = audio.info
    # mutagen's WavPack reader only knows mono versus "not mono" (documented in audiogen).
    assert info.channels == (2 if fmt == "wv" else 6)
    samples, channels, _ = _decode(path)
    assert channels == 6
    assert samples > 0


@pytest.mark.parametrize("fmt", [f for f in FORMATS if f not in SURROUND_FORMATS])
def test_broken_multichannel_unsupported(fmt: str, tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        make_broken(tmp_path / f"surround{EXTENSIONS[fmt]}", "multichannel")


def test_broken_text(tmp_path: Path) -> None:
    path = make_broken(tmp_path / "readme.mp3", "text", seed=4)
    assert "not audio" in path.read_text(encoding="utf-8")
    assert _mutagen_rejects(path)
    assert _ffmpeg_rejects(path)


def test_broken_kinds_are_all_known(tmp_path: Path) -> None:
    for kind in BROKEN_KINDS:
        assert make_broken(tmp_path / kind / "x.wav", kind).exists()
    with pytest.raises(ValueError, match="unknown broken kind"):
        make_broken(tmp_path / "x.wav", "melted")


# ---------------------------------------------------------------------------------------------
# make_library
# ---------------------------------------------------------------------------------------------


def test_make_library(tmp_path: Path) -> None:
    count = len(FORMATS) + 3  # wraps around the format rotation
    paths = make_library(tmp_path / "lib", count, seconds=0.2, seed=5)
    assert len(paths) == count
    assert [p.suffix for p in paths] == [
        EXTENSIONS[FORMATS[i % len(FORMATS)]] for i in range(count)
    ]
    for path in paths:
        # root/artist/album/file: nested album directories
        assert len(path.relative_to(tmp_path / "lib").parts) == 3
    assert len({p.parent for p in paths}) > 1
    assert len({_sha(p) for p in paths}) == count

    tags = [read_tags(p) for p in paths]
    assert all(set(t) == set(TAG_KEYS) for t in tags)
    assert len({t["title"] for t in tags}) == count
    assert tags[0]["tracknumber"] == "1/4"

    again = make_library(tmp_path / "lib2", count, seconds=0.2, seed=5)
    for a, b in zip(paths, again, strict=True):
        assert a.relative_to(tmp_path / "lib") == b.relative_to(tmp_path / "lib2")
        assert a.read_bytes() == b.read_bytes()

    other = make_library(tmp_path / "lib3", 2, formats=("flac",), seconds=0.2, seed=6)
    assert not {_sha(p) for p in other} & {_sha(p) for p in paths}
