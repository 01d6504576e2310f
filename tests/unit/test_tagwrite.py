"""Writing analysis results into real audio files: per-format fields, policy, and safety."""

from __future__ import annotations

import base64
import json
import os
import pwd
import shutil
import signal
import subprocess
import sys
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

import av
import mutagen
import numpy as np
import pytest
from mutagen.flac import FLAC, Picture
from mutagen.id3 import APIC, COMM, ID3, TCON, TMOO, TXXX, TYER
from mutagen.mp3 import MP3
from mutagen.mp4 import MP4, MP4Cover, MP4FreeForm

from tests.support import audiogen
from tracktiond.media.formats import AudioFormat, is_candidate
from tracktiond.media.probe import ingest_file
from tracktiond.media.tags import read_metadata
from tracktiond.tagwrite import (
    TagValues,
    TagWriteOptions,
    TagWriteResult,
    apply,
    cleanup_stale_temp_files,
    format_key,
    is_temp_name,
    parse_key,
    plan_tag_write,
    safewrite,
    tempfiles,
    write_tags,
)

WRITTEN_FORMATS = ("mp3", "flac", "ogg", "opus", "m4a", "wav", "aiff")
SKIPPED_FORMATS = ("wma", "wv", "ape")
SCHEME = {"mp3": "id3", "wav": "id3", "aiff": "id3", "flac": "vorbis", "ogg": "vorbis"}
SCHEME |= {"opus": "vorbis", "m4a": "mp4"}

VALUES = TagValues(
    bpm=127.5,
    key_tonic="A",
    key_mode="minor",
    replaygain_track_gain=-7.5,
    replaygain_track_peak=0.988,
    energy="7",
)
OPTIONS = TagWriteOptions(energy_field="ENERGY")
BASE_TAGS = {
    "title": "Night Drive",
    "artist": "Kollektiv Süd",
    "album": "Autobahn Sessions",
    "genre": "Techno",
    "date": "2019",
    "tracknumber": "3/12",
}
COVER = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 8  # small: the comment fits one Ogg page

# What the values above must look like, read back with mutagen from the exact native fields.
EXPECTED: dict[str, dict[str, Any]] = {
    "id3": {
        "TBPM": "128",  # ID3v2 BPM is an integer: 127.5 rounds half up
        "TKEY": "Am",
        "TXXX:REPLAYGAIN_TRACK_GAIN": "-7.50 dB",
        "TXXX:REPLAYGAIN_TRACK_PEAK": "0.988000",
        "TXXX:ENERGY": "7",
    },
    "vorbis": {
        "BPM": "127.5",
        "INITIALKEY": "Am",
        "REPLAYGAIN_TRACK_GAIN": "-7.50 dB",
        "REPLAYGAIN_TRACK_PEAK": "0.988000",
        "ENERGY": "7",
    },
    "mp4": {
        "tmpo": 128,
        "----:com.apple.iTunes:initialkey": "Am",
        "----:com.apple.iTunes:replaygain_track_gain": "-7.50 dB",
        "----:com.apple.iTunes:replaygain_track_peak": "0.988000",
        "----:com.apple.iTunes:ENERGY": "7",
    },
}


# --- helpers -------------------------------------------------------------------------------------


def native_values(path: Path) -> dict[str, Any]:
    """Every tag of the file as {native name: value}, read with mutagen alone."""
    audio: Any = mutagen.File(str(path))
    assert audio is not None, path
    out: dict[str, Any] = {}
    if audio.tags is None:
        return out
    if isinstance(audio.tags, ID3):
        for key, frame in audio.tags.items():
            if hasattr(frame, "text"):
                out[key] = "; ".join(str(t) for t in frame.text)
            else:
                out[key] = repr(frame)
    elif isinstance(audio, MP4):
        for key, values in audio.tags.items():
            if key == "tmpo":
                out[key] = values[0]
            elif key.startswith("----:"):
                out[key] = "; ".join(bytes(v).decode() for v in values)
            else:
                out[key] = repr(values)
    else:
        for key, value in audio.tags:
            out.setdefault(key.upper(), [])
            out[key.upper()].append(value)
        out = {k: "; ".join(v) for k, v in out.items()}
    if isinstance(audio, FLAC):
        out["pictures"] = [(p.type, p.mime, p.data) for p in audio.pictures]
    return out


def add_cover_and_extras(path: Path, fmt: str, cover: bytes = COVER) -> None:
    """Cover art and two tags tracktiond never writes, to check they survive untouched."""
    audio: Any = mutagen.File(str(path))
    scheme = SCHEME[fmt]
    if scheme == "id3":
        if audio.tags is None:
            audio.add_tags()
        audio.tags.add(APIC(encoding=3, mime="image/png", type=3, desc="front", data=cover))
        audio.tags.add(COMM(encoding=3, lang="eng", desc="", text=["a comment"]))
        audio.tags.add(TXXX(encoding=3, desc="MyLabel", text=["keep me"]))
    elif fmt == "flac":
        picture = Picture()
        picture.type, picture.mime, picture.data = 3, "image/png", cover
        audio.add_picture(picture)
        audio.tags["COMMENT"] = ["a comment"]
        audio.tags["MYLABEL"] = ["keep me"]
    elif scheme == "vorbis":
        picture = Picture()
        picture.type, picture.mime, picture.data = 3, "image/png", cover
        audio.tags["METADATA_BLOCK_PICTURE"] = [base64.b64encode(picture.write()).decode()]
        audio.tags["COMMENT"] = ["a comment"]
        audio.tags["MYLABEL"] = ["keep me"]
    else:
        audio.tags["covr"] = [MP4Cover(cover, imageformat=MP4Cover.FORMAT_PNG)]
        audio.tags["©cmt"] = ["a comment"]
        audio.tags["----:com.apple.iTunes:MyLabel"] = [MP4FreeForm(b"keep me")]
    audio.save()


def pcm(path: Path) -> np.ndarray[Any, Any]:
    """The decoded audio, all frames concatenated (planar or packed alike)."""
    with av.open(str(path)) as container:
        stream = container.streams.audio[0]
        frames = [frame.to_ndarray() for frame in container.decode(stream)]
    return np.concatenate(frames, axis=1)


def make(tmp_path: Path, fmt: str, tags: dict[str, str] | None = None, **kw: Any) -> Path:
    return audiogen.make_audio(
        tmp_path / f"song.{fmt}", seconds=0.5, tags=BASE_TAGS if tags is None else tags, **kw
    )


def leftovers(directory: Path) -> list[str]:
    return [n for n in os.listdir(directory) if ".tracktiond-" in n]


def ok(result: TagWriteResult) -> TagWriteResult:
    assert result.error is None, result.summary()
    assert result.skipped_reason is None, result.summary()
    return result


# --- per-format round trips ----------------------------------------------------------------------


@pytest.mark.parametrize("fmt", WRITTEN_FORMATS)
def test_round_trip(tmp_path: Path, fmt: str) -> None:
    path = make(tmp_path, fmt)
    add_cover_and_extras(path, fmt)
    path.chmod(0o640)
    before_tags = native_values(path)
    before_pcm = pcm(path)
    before_identity = ingest_file(str(path)).audio_hash

    result = ok(write_tags(str(path), VALUES, OPTIONS))

    assert result.written
    after_tags = native_values(path)
    expected = dict(EXPECTED[SCHEME[fmt]])
    if fmt == "opus":
        expected["R128_TRACK_GAIN"] = "-3200"  # (-7.5 - 5) dB * 256, RFC 7845
    for native, value in expected.items():
        assert after_tags[native] == value, (native, after_tags)
    assert {c.native: c.new for c in result.changes} == {k: str(v) for k, v in expected.items()}
    # everything else (cover art, other tags) exactly as before
    assert {k: v for k, v in after_tags.items() if k not in expected} == before_tags
    # the audio: decoded samples and tracktiond's own audio identity
    assert np.array_equal(pcm(path), before_pcm)
    after = ingest_file(str(path))
    assert after.audio_hash == before_identity == result.audio_hash
    # the read side of tracktiond.media.tags finds the same values in the same fields
    tags, _ = read_metadata(str(path), after.format)
    assert tags["bpm"] == str(expected.get("TBPM", expected.get("BPM", 128)))
    assert tags["initialkey"] == "Am"
    assert tags["replaygain_track_gain"] == "-7.50 dB"
    # what the catalog is handed matches the file on disk
    st = path.stat()
    assert (st.st_size, st.st_mtime_ns, st.st_ino) == (
        result.new_size,
        result.new_mtime_ns,
        result.new_inode,
    )
    assert st.st_mode & 0o777 == 0o640
    assert leftovers(tmp_path) == []


def test_write_is_idempotent(tmp_path: Path) -> None:
    paths = [make(tmp_path / fmt, fmt) for fmt in WRITTEN_FORMATS]
    for path in paths:
        ok(write_tags(str(path), VALUES, OPTIONS))
    for overwrite in (False, True):
        options = TagWriteOptions(overwrite=overwrite, energy_field="ENERGY")
        for path in paths:
            st = path.stat()
            result = ok(write_tags(str(path), VALUES, options))
            assert not result.written and not result.changes, result.summary()
            assert (path.stat().st_mtime_ns, path.stat().st_ino) == (st.st_mtime_ns, st.st_ino)


@pytest.mark.parametrize("fmt", SKIPPED_FORMATS)
def test_formats_without_a_safe_convention_are_skipped(tmp_path: Path, fmt: str) -> None:
    path = make(tmp_path, fmt)
    data = path.read_bytes()
    for result in (
        plan_tag_write(str(path), VALUES, OPTIONS),
        write_tags(str(path), VALUES, OPTIONS),
    ):
        assert result.skipped_reason and "not written" in result.skipped_reason
        assert not result.written and result.error is None and not result.changes
    assert path.read_bytes() == data


def test_files_that_are_not_audio(tmp_path: Path) -> None:
    text = tmp_path / "notes.mp3"
    text.write_text("not audio\n")
    assert write_tags(str(text), VALUES, OPTIONS).skipped_reason == (
        "not an audio file tracktiond knows"
    )
    assert write_tags(str(tmp_path), VALUES, OPTIONS).skipped_reason == "not a regular file"
    missing = write_tags(str(tmp_path / "gone.flac"), VALUES, OPTIONS)
    assert missing.error is not None and "does not exist" in missing.error
    assert sorted(os.listdir(tmp_path)) == ["notes.mp3"]


# --- policy --------------------------------------------------------------------------------------

OTHER_VALUES = {
    "bpm": "120",
    "initialkey": "C",
    "replaygain_track_gain": "-3.00 dB",
    "replaygain_track_peak": "0.500000",
}


@pytest.mark.parametrize("fmt", ["mp3", "flac", "m4a"])
def test_present_values_are_kept_unless_overwrite(tmp_path: Path, fmt: str) -> None:
    path = make(tmp_path, fmt, tags={**BASE_TAGS, **OTHER_VALUES})
    data = path.read_bytes()

    kept = ok(write_tags(str(path), VALUES, TagWriteOptions()))
    assert not kept.written and not kept.changes
    assert {c.field: c.old for c in kept.kept} == OTHER_VALUES
    assert path.read_bytes() == data

    replaced = ok(write_tags(str(path), VALUES, TagWriteOptions(overwrite=True)))
    assert replaced.written
    assert {c.field: c.old for c in replaced.changes} == OTHER_VALUES
    tags = audiogen.read_tags(path)
    assert tags["initialkey"] == "Am"
    assert tags["replaygain_track_gain"] == "-7.50 dB"
    assert tags["bpm"] == ("127.5" if fmt == "flac" else "128")
    assert tags["title"] == BASE_TAGS["title"]


def test_a_zero_bpm_counts_as_absent(tmp_path: Path) -> None:
    path = make(tmp_path, "m4a", tags={**BASE_TAGS, "bpm": "0"})
    ok(write_tags(str(path), VALUES, TagWriteOptions()))
    assert native_values(path)["tmpo"] == 128


def test_only_missing_fields_are_added(tmp_path: Path) -> None:
    path = make(tmp_path, "flac", tags={**BASE_TAGS, "bpm": "126"})
    result = ok(write_tags(str(path), VALUES, TagWriteOptions()))
    assert [c.field for c in result.kept] == ["bpm"]
    assert [c.field for c in result.changes] == [
        "initialkey",
        "replaygain_track_gain",
        "replaygain_track_peak",
    ]
    assert audiogen.read_tags(path)["bpm"] == "126"


@pytest.mark.parametrize(
    ("fmt", "held"),
    [
        ("mp3", {"bpm": "128", "initialkey": "A minor", "replaygain_track_gain": "-7.5 dB"}),
        ("flac", {"bpm": "127.50", "initialkey": "am", "replaygain_track_gain": "-7.500 dB"}),
        ("m4a", {"bpm": "128", "initialkey": "Am", "replaygain_track_gain": "-7.50 dB"}),
    ],
)
def test_equal_values_are_not_rewritten(tmp_path: Path, fmt: str, held: dict[str, str]) -> None:
    path = make(tmp_path, fmt, tags={**held, "replaygain_track_peak": "0.988"})
    st = path.stat()
    result = ok(write_tags(str(path), VALUES, TagWriteOptions(overwrite=True)))
    assert not result.written and not result.changes, result.summary()
    assert (path.stat().st_mtime_ns, path.stat().st_ino) == (st.st_mtime_ns, st.st_ino)


@pytest.mark.parametrize("fmt", WRITTEN_FORMATS)
def test_dry_run_changes_nothing(tmp_path: Path, fmt: str) -> None:
    path = make(tmp_path, fmt, tags={**BASE_TAGS, "bpm": "90"})
    data, st = path.read_bytes(), path.stat()
    result = ok(plan_tag_write(str(path), VALUES, TagWriteOptions(overwrite=True)))
    assert not result.written
    changes = {c.field: (c.old, c.new) for c in result.changes}
    assert changes["bpm"] == ("90", "127.5" if SCHEME[fmt] == "vorbis" else "128")
    assert changes["initialkey"] == (None, "Am")
    assert "-> '-7.50 dB'" in result.summary()
    assert path.read_bytes() == data
    assert (path.stat().st_mtime_ns, path.stat().st_ino) == (st.st_mtime_ns, st.st_ino)
    assert leftovers(tmp_path) == []


# --- ID3 versions and details --------------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["mp3", "wav", "aiff"])
def test_id3v23_stays_v23(tmp_path: Path, fmt: str) -> None:
    path = make(tmp_path, fmt)
    audio: Any = mutagen.File(str(path))
    audio.tags.update_to_v23()
    audio.save(v2_version=3)
    assert mutagen.File(str(path)).tags.version == (2, 3, 0)
    before = native_values(path)

    ok(write_tags(str(path), VALUES, TagWriteOptions(energy_field="MOOD")))

    tags: Any = mutagen.File(str(path)).tags
    assert tags.version == (2, 3, 0)
    after = native_values(path)
    assert after["TKEY"] == "Am" and after["TBPM"] == "128"
    assert after["TXXX:MOOD"] == "7"  # ID3v2.3 has no TMOO frame
    assert "TMOO" not in after
    assert {k: v for k, v in after.items() if k in before} == before


def test_id3_frames_are_kept_as_the_file_has_them(tmp_path: Path) -> None:
    # No v2.3 <-> v2.4 conversion, no genre rewriting, no dropping of off-spec frames.
    path = audiogen.make_audio(tmp_path / "old.mp3", seconds=0.5)
    tags = ID3()
    tags.add(TCON(encoding=0, text=["(17)"]))
    tags.add(TYER(encoding=0, text=["1999"]))
    tags.add(TMOO(encoding=0, text=["off-spec in v2.3"]))
    tags.save(str(path), v2_version=3)
    ok(write_tags(str(path), VALUES, OPTIONS))
    raw = ID3(str(path), translate=False)
    assert raw.version == (2, 3, 0)
    ours = {
        "TBPM",
        "TKEY",
        "TXXX:ENERGY",
        "TXXX:REPLAYGAIN_TRACK_GAIN",
        "TXXX:REPLAYGAIN_TRACK_PEAK",
    }
    assert set(raw.keys()) == ours | {"TCON", "TYER", "TMOO"}
    assert raw["TCON"].text == ["(17)"] and raw["TYER"].text == ["1999"]
    assert raw["TMOO"].text == ["off-spec in v2.3"]


def test_id3v24_mood_goes_to_tmoo_and_new_tags_get_the_configured_version(tmp_path: Path) -> None:
    path = audiogen.make_audio(tmp_path / "bare.mp3", seconds=0.5)
    MP3(str(path)).delete()  # no ID3 tag at all
    ok(write_tags(str(path), VALUES, TagWriteOptions(energy_field="MOOD", new_id3_version=3)))
    assert ID3(str(path)).version == (2, 3, 0)

    other = make(tmp_path, "mp3")
    ok(write_tags(str(other), VALUES, TagWriteOptions(energy_field="MOOD")))
    assert native_values(other)["TMOO"] == "7"


def test_id3v1_tag_is_left_as_it_was(tmp_path: Path) -> None:
    path = make(tmp_path, "mp3")
    v1 = b"TAG" + b"Old title".ljust(30, b"\0") + b"Old artist".ljust(30, b"\0")
    v1 = v1.ljust(127, b"\0") + b"\xff"
    with path.open("ab") as fh:
        fh.write(v1)
    ok(write_tags(str(path), VALUES, OPTIONS))
    assert path.read_bytes()[-128:] == v1
    assert native_values(path)["TIT2"] == BASE_TAGS["title"]  # v1 did not leak into v2


def test_txxx_spelled_in_lower_case_is_replaced_not_duplicated(tmp_path: Path) -> None:
    path = make(tmp_path, "mp3")
    tags = ID3(str(path))
    tags.add(TXXX(encoding=3, desc="replaygain_track_gain", text=["-1.00 dB"]))
    tags.save(str(path))
    ok(write_tags(str(path), VALUES, TagWriteOptions(overwrite=True)))
    frames = [f for f in ID3(str(path)).getall("TXXX") if f.desc.lower() == "replaygain_track_gain"]
    assert [(f.desc, f.text) for f in frames] == [("replaygain_track_gain", ["-7.50 dB"])]


def test_flac_padding_absorbs_the_tags(tmp_path: Path) -> None:
    path = make(tmp_path, "flac")
    size = path.stat().st_size
    ok(write_tags(str(path), VALUES, OPTIONS))
    assert path.stat().st_size == size  # the file's padding was used, not resized


# --- notation and rounding -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("tonic", "mode", "standard", "camelot", "openkey"),
    [
        ("A", "minor", "Am", "8A", "1m"),
        ("C", "major", "C", "8B", "1d"),
        ("F#", "minor", "F#m", "11A", "4m"),
        ("Db", "major", "Db", "3B", "8d"),
        ("Ab", "minor", "Abm", "1A", "6m"),
        ("E", "major", "E", "12B", "5d"),
        ("B", "major", "B", "1B", "6d"),
        ("Eb", "minor", "Ebm", "2A", "7m"),
    ],
)
def test_key_notations(tonic: str, mode: str, standard: str, camelot: str, openkey: str) -> None:
    assert format_key(tonic, mode, "standard") == standard
    assert format_key(tonic, mode, "camelot") == camelot
    assert format_key(tonic, mode, "openkey") == openkey


def test_every_key_parses_back_in_every_notation() -> None:
    names = ["C", "C#", "D", "Eb", "E", "F", "F#", "G", "Ab", "A", "Bb", "B"]
    for pc, name in enumerate(names):
        for mode in ("major", "minor"):
            for notation in ("standard", "camelot", "openkey"):
                text = format_key(name, mode, notation)
                assert parse_key(text) == (pc, mode, notation), text
    assert parse_key("A# minor") == parse_key("Bbm") == (10, "minor", "standard")
    assert parse_key("08A") == (9, "minor", "camelot")
    assert parse_key("o") is None


def test_key_notation_is_configurable(tmp_path: Path) -> None:
    path = make(tmp_path, "flac")
    ok(write_tags(str(path), VALUES, TagWriteOptions(key_notation="camelot")))
    assert native_values(path)["INITIALKEY"] == "8A"
    # same key, other notation: rewritten only with overwrite
    again = ok(write_tags(str(path), VALUES, TagWriteOptions(key_notation="openkey")))
    assert not again.written
    assert {c.field: c.old for c in again.kept}["initialkey"] == "8A"
    ok(write_tags(str(path), VALUES, TagWriteOptions(key_notation="openkey", overwrite=True)))
    assert native_values(path)["INITIALKEY"] == "1m"


@pytest.mark.parametrize(
    ("bpm", "integer", "decimal"),
    [
        (126.5, "127", "126.5"),
        (127.45, "127", "127.5"),
        (128.0, "128", "128"),
        (99.96, "100", "100"),
    ],
)
def test_bpm_rounding(tmp_path: Path, bpm: float, integer: str, decimal: str) -> None:
    values = TagValues(bpm=bpm)
    for fmt, expected in (("mp3", integer), ("m4a", integer), ("flac", decimal)):
        path = make(tmp_path / fmt, fmt)
        [change] = plan_tag_write(str(path), values, TagWriteOptions()).changes
        assert change.new == expected, (fmt, bpm)


@pytest.mark.parametrize(
    ("gain", "text", "r128"),
    [
        (-7.5, "-7.50 dB", "-3200"),
        (5.0, "+5.00 dB", "0"),
        (2.3, "+2.30 dB", "-691"),
        (-0.001, "+0.00 dB", "-1280"),
    ],
)
def test_gain_spelling_and_opus_r128(tmp_path: Path, gain: float, text: str, r128: str) -> None:
    path = make(tmp_path, "opus")
    ok(write_tags(str(path), TagValues(replaygain_track_gain=gain), TagWriteOptions()))
    tags = native_values(path)
    assert (tags["REPLAYGAIN_TRACK_GAIN"], tags["R128_TRACK_GAIN"]) == (text, r128)


def test_invalid_values_and_options_are_refused() -> None:
    with pytest.raises(ValueError):
        TagValues(bpm=0)
    with pytest.raises(ValueError):
        TagValues(key_tonic="H", key_mode="minor")
    with pytest.raises(ValueError):
        TagValues(key_tonic="A", key_mode="dorian")
    with pytest.raises(ValueError):
        TagValues(key_tonic="A")
    with pytest.raises(ValueError):
        TagWriteOptions(energy_field="BPM")  # would fight over a field tracktiond writes
    with pytest.raises(ValueError):
        TagWriteOptions(energy_field="my field")


# --- safety --------------------------------------------------------------------------------------


def test_symlink_is_written_through(tmp_path: Path) -> None:
    real = make(tmp_path / "store", "flac")
    link = tmp_path / "crate" / "link.flac"
    link.parent.mkdir()
    link.symlink_to(real)
    result = ok(write_tags(str(link), VALUES, OPTIONS))
    assert result.written and result.target == str(real)
    assert link.is_symlink() and os.readlink(link) == str(real)
    assert native_values(real)["BPM"] == "127.5"
    assert leftovers(link.parent) == [] and leftovers(real.parent) == []


def test_hard_linked_file_is_skipped(tmp_path: Path) -> None:
    path = make(tmp_path, "flac")
    os.link(path, tmp_path / "other.flac")
    result = write_tags(str(path), VALUES, OPTIONS)
    assert result.skipped_reason is not None and "2 hard links" in result.skipped_reason
    assert (tmp_path / "other.flac").read_bytes() == path.read_bytes()


def test_read_only_file_and_directory_fail_cleanly(tmp_path: Path) -> None:
    # As root too: write permission bits are honoured even where root could ignore them.
    ro_file = make(tmp_path / "a", "flac")
    ro_file.chmod(0o444)
    ro_dir_file = make(tmp_path / "b", "flac")
    (tmp_path / "b").chmod(0o555)
    try:
        for path, reason in ((ro_file, "read-only"), (ro_dir_file, "directory is not writable")):
            data = path.read_bytes()
            for result in (
                plan_tag_write(str(path), VALUES, OPTIONS),
                write_tags(str(path), VALUES, OPTIONS),
            ):
                assert result.error is not None and reason in result.error, result.summary()
                assert not result.written and result.changes  # what it would have written
            assert path.read_bytes() == data
            assert leftovers(path.parent) == []
    finally:
        (tmp_path / "b").chmod(0o755)


def _run_as(user: str, work: Callable[[], Any]) -> Any:
    """Run ``work`` in a forked child that has dropped root (root ignores permission bits)."""
    pw = pwd.getpwnam(user)
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # child
        code = 1
        try:
            os.close(read_end)
            os.setgroups([])
            os.setgid(pw.pw_gid)
            os.setuid(pw.pw_uid)
            payload = {"ok": work()}
            code = 0
        except BaseException:
            payload = {"error": traceback.format_exc()}
        finally:
            os.write(write_end, json.dumps(payload).encode())
            os._exit(code)
    os.close(write_end)
    with os.fdopen(read_end, "rb") as fh:
        data = json.loads(fh.read())
    os.waitpid(pid, 0)
    assert "ok" in data, data.get("error")
    return data["ok"]


def test_permissions_as_an_unprivileged_user(tmp_path: Path) -> None:
    ro_file = make(tmp_path / "a", "flac")
    ro_dir_file = make(tmp_path / "b", "flac")
    fine = make(tmp_path / "c", "flac")
    user = "nobody" if os.geteuid() == 0 else None
    if user is not None:
        uid = pwd.getpwnam(user).pw_uid
        for p in [tmp_path, *tmp_path.rglob("*")]:
            os.chown(p, uid, -1)
        for parent in tmp_path.parents:  # pytest's base temp dir is private to root
            if parent == Path("/tmp") or parent == parent.parent:
                break
            parent.chmod(parent.stat().st_mode | 0o005)
    ro_file.chmod(0o444)
    (tmp_path / "b").chmod(0o555)
    data = {p: p.read_bytes() for p in (ro_file, ro_dir_file)}

    def work() -> list[dict[str, Any]]:
        out = []
        for p in (ro_file, ro_dir_file, fine):
            r = write_tags(str(p), VALUES, OPTIONS)
            out.append({"written": r.written, "error": r.error})
        return out

    try:
        results = _run_as(user, work) if user is not None else work()
    finally:
        (tmp_path / "b").chmod(0o755)
    assert results[0] == {"written": False, "error": "the file is read-only"}
    assert not results[1]["written"] and "directory is not writable" in results[1]["error"]
    assert results[2] == {"written": True, "error": None}
    for p, before in data.items():
        assert p.read_bytes() == before
        assert leftovers(p.parent) == []
    assert native_values(fine)["BPM"] == "127.5"
    if user is not None:
        assert fine.stat().st_uid == pwd.getpwnam(user).pw_uid


def test_file_vanishing_mid_write_is_not_resurrected(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = make(tmp_path, "flac")
    real_copy = safewrite._copy

    def copy_then_delete(src: int, dst: int, size: int) -> None:
        real_copy(src, dst, size)
        path.unlink()

    monkeypatch.setattr(safewrite, "_copy", copy_then_delete)
    result = write_tags(str(path), VALUES, OPTIONS)
    assert result.error is not None and "vanished" in result.error
    assert not result.written and not path.exists()
    assert os.listdir(tmp_path) == []


def test_file_changed_mid_write_keeps_the_other_change(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = make(tmp_path, "mp3")
    real_save = apply._save

    def save_while_someone_else_edits(audio: Any, plan: Any) -> None:
        real_save(audio, plan)
        tags = ID3(str(path))
        tags.add(TXXX(encoding=3, desc="EDITED", text=["by the user"]))
        tags.save(str(path))

    monkeypatch.setattr(safewrite, "_save", save_while_someone_else_edits)
    result = write_tags(str(path), VALUES, OPTIONS)
    assert result.error is not None and "changed during the write" in result.error
    assert result.retryable and not result.written
    tags = native_values(path)
    assert tags["TXXX:EDITED"] == "by the user" and "TBPM" not in tags
    assert leftovers(tmp_path) == []


def _corrupt_after_save(
    monkeypatch: pytest.MonkeyPatch, corrupt: Callable[[bytearray], None]
) -> None:
    real_save = apply._save

    def save_and_corrupt(audio: Any, plan: Any) -> None:
        real_save(audio, plan)
        data = bytearray(Path(audio.filename).read_bytes())
        corrupt(data)
        Path(audio.filename).write_bytes(bytes(data))

    monkeypatch.setattr(safewrite, "_save", save_and_corrupt)


@pytest.mark.parametrize(
    ("fmt", "needle", "shift", "reason"),
    [
        ("flac", None, -100, "audio payload would have changed"),
        ("mp3", None, -100, "audio payload would have changed"),
        ("opus", None, -100, "audio payload would have changed"),
        ("m4a", b"stco", 12, "audio stream headers would have changed"),  # first chunk offset
        ("flac", b"\x00\x00\x00\x22", 10, "audio stream headers would have changed"),  # STREAMINFO
        ("wav", b"fmt ", 10, "audio stream headers would have changed"),
    ],
)
def test_failed_verification_keeps_the_original(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    fmt: str,
    needle: bytes | None,
    shift: int,
    reason: str,
) -> None:
    path = make(tmp_path, fmt)
    data = path.read_bytes()

    def corrupt(buf: bytearray) -> None:
        at = len(buf) + shift if needle is None else buf.index(needle) + shift
        buf[at] ^= 0x01

    _corrupt_after_save(monkeypatch, corrupt)
    result = write_tags(str(path), VALUES, OPTIONS)
    assert result.error is not None and result.error.startswith("verification failed")
    assert reason in result.error, result.error
    assert not result.written and path.read_bytes() == data
    assert leftovers(tmp_path) == []


@pytest.mark.parametrize("fmt", ["ogg", "opus"])
def test_ogg_with_cover_art_spanning_pages(tmp_path: Path, fmt: str) -> None:
    path = make(tmp_path, fmt)
    add_cover_and_extras(path, fmt, cover=os.urandom(60_000))
    before_tags, before_pcm = native_values(path), pcm(path)
    ok(write_tags(str(path), VALUES, OPTIONS))
    after = native_values(path)
    assert {k: v for k, v in after.items() if k in before_tags} == before_tags
    assert np.array_equal(pcm(path), before_pcm)


def test_ogg_identity_survives_a_tag_write_with_cover_art(tmp_path: Path) -> None:
    path = make(tmp_path, "ogg")
    add_cover_and_extras(path, "ogg", cover=os.urandom(60_000))
    before = ingest_file(str(path)).audio_hash
    ok(write_tags(str(path), VALUES, OPTIONS))
    assert ingest_file(str(path)).audio_hash == before


_BATCH_SCRIPT = """
import sys
from tracktiond.tagwrite import TagValues, TagWriteOptions, write_tags
paths = sys.argv[1:]
options = TagWriteOptions(overwrite=True)
print("ready", flush=True)
n = 0
while True:  # until killed: alternate values so that every pass really writes
    for p in paths:
        r = write_tags(p, TagValues(bpm=120.0 + n % 2, key_tonic="A", key_mode="minor"), options)
        assert r.error is None and r.skipped_reason is None, r.summary()
    n += 1
"""


def test_kill_9_during_a_batch_leaves_every_file_whole(tmp_path: Path) -> None:
    library = tmp_path / "lib"
    originals = {fmt: make(tmp_path / "src", fmt) for fmt in WRITTEN_FORMATS}
    identity = {fmt: ingest_file(str(p)).audio_hash for fmt, p in originals.items()}
    paths: dict[Path, str] = {}
    for i in range(200):
        fmt = WRITTEN_FORMATS[i % len(WRITTEN_FORMATS)]
        target = library / f"{i:03d}.{fmt}"
        target.parent.mkdir(exist_ok=True)
        shutil.copyfile(originals[fmt], target)
        paths[target] = fmt

    # Three runs, killed after different delays, so the kill lands in different write phases.
    for delay in (0.5, 0.3, 0.7):
        _run_and_kill(list(paths), delay)
        written = 0
        for path, fmt in paths.items():
            audio: Any = mutagen.File(str(path))
            assert type(audio) is audiogen.MUTAGEN_TYPES[fmt], path
            assert ingest_file(str(path)).audio_hash == identity[fmt], path
            bpm = audiogen.read_tags(path).get("bpm")
            assert bpm in (None, "120", "121"), (path, bpm)
            written += bpm is not None
        assert written > 0
        visible = {n for n in os.listdir(library) if is_candidate(n)}
        assert visible == {p.name for p in paths}  # the scanner sees no temp files
        hidden = [n for n in os.listdir(library) if n not in visible]
        assert all(is_temp_name(n) for n in hidden), hidden
        cleanup_stale_temp_files(str(library), min_age_seconds=0)
        assert sorted(os.listdir(library)) == sorted(p.name for p in paths)


def _run_and_kill(paths: list[Path], delay: float) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-c", _BATCH_SCRIPT, *map(str, paths)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        cwd=Path(__file__).parents[2],
    )
    assert proc.stdout is not None and proc.stderr is not None
    assert proc.stdout.readline() == b"ready\n", proc.stderr.read()
    time.sleep(delay)
    assert proc.poll() is None, proc.communicate()  # still writing: no write failed
    proc.send_signal(signal.SIGKILL)
    proc.communicate()
    assert proc.returncode == -signal.SIGKILL


def test_cleanup_stale_temp_files(tmp_path: Path) -> None:
    sub = tmp_path / "sub"
    sub.mkdir()
    old = [tmp_path / ".a.flac.tracktiond-0123abcd.tmp", sub / ".b c.mp3.tracktiond-89abcdef.tmp"]
    young = tmp_path / ".d.flac.tracktiond-00000000.tmp"
    not_ours = [
        tmp_path / ".a.flac.tmp",
        tmp_path / "a.tracktiond-0123abcd.tmp",
        tmp_path / "x.flac",
    ]
    for p in [*old, young, *not_ours]:
        p.write_bytes(b"x")
    for p in [*old, *not_ours]:
        os.utime(p, (time.time() - 7200, time.time() - 7200))
    assert all(not is_candidate(p.name) for p in [*old, young])

    assert cleanup_stale_temp_files(str(tmp_path)) == [str(old[0])]
    assert sorted(cleanup_stale_temp_files(str(tmp_path), recursive=True)) == [str(old[1])]
    assert young.exists() and all(p.exists() for p in not_ours)
    assert cleanup_stale_temp_files(str(tmp_path), min_age_seconds=0) == [str(young)]


def test_temp_names_fit_long_file_names(tmp_path: Path) -> None:
    path = make(tmp_path, "flac")
    long_name = tmp_path / ("ü" * 120 + ".flac")  # 245 bytes: the temp name must be shortened
    path.rename(long_name)
    ok(write_tags(str(long_name), VALUES, OPTIONS))
    assert leftovers(tmp_path) == []
    assert is_temp_name(os.path.basename(tempfiles._temp_path(str(long_name))))


def test_format_is_reported(tmp_path: Path) -> None:
    path = make(tmp_path, "opus")
    assert plan_tag_write(str(path), VALUES, OPTIONS).format is AudioFormat.OGG_OPUS
