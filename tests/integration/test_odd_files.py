"""Files every player plays that a strict reader rejects: cataloged, and analysed (issue 14, 12).

The shapes come from other projects' test corpora (a RIFF size a few bytes off, RF64, ADPCM and
MP3 in WAV, Vorbis ACM WAV named .ogg, FLAC behind a big ID3v2 tag, an Ogg with video first, a
header claiming a year, a file mutagen crashes on); audiogen makes them (make_odd). Each goes
through the scan into a real catalog on both backends, and through the real analysis workers.
A file is failed only when no decoder we ship plays it.
"""

from __future__ import annotations

import os
import struct
import time
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from tests.support import audiogen
from tracktiond.analysis import AnalysisFailed, AnalysisPool, AnalysisSettings
from tracktiond.analysis.pool import bounded_duration, probe_duration
from tracktiond.catalog import Catalog
from tracktiond.cli.commands import _print_summary
from tracktiond.errors import FailureClass
from tracktiond.pipeline.scan import Scanner

pytestmark = pytest.mark.anyio

SECONDS = 3.0
SETTINGS = AnalysisSettings()

# kind -> (file name, container sniffed, codec recorded)
SHAPES: dict[str, tuple[str, str, str]] = {
    "riff_size_off": ("short_riff.wav", "wav", "pcm"),
    "data_short": ("last_frame_short.wav", "wav", "pcm"),
    "rf64": ("field_recorder.wav", "wav", "pcm"),
    "adpcm": ("adpcm_no_byterate.wav", "wav", "adpcm_ms"),
    "mp3_in_wav": ("mp3_audio.wav", "wav", "mp3"),
    "vorbis_in_wav": ("kick04.ogg", "wav", "vorbis"),
    "id3_before_flac": ("cover_art.flac", "flac", "flac"),
    "video_first_ogg": ("theora_then_vorbis.ogg", "ogg_vorbis", "vorbis"),
    "year_header": ("oldape_like.mp3", "mp3", "mp3"),
    "tag_reader_crash": ("non_standard_rate.wv", "wavpack", "wavpack"),
}


async def scan(catalog: Catalog, root: Path) -> dict[str, int]:
    summary = await Scanner(catalog, concurrency=2).scan([str(root)])
    return dict(summary.counts)


async def info(catalog: Catalog, path: Path) -> dict[str, Any]:
    data = await catalog.recording_for_path(str(path))
    assert data is not None, f"{path} is not in the catalog"
    return data


def settled(path: Path) -> Path:
    """An hour old: a file that looks short right after a write is taken for one arriving."""
    an_hour_ago = time.time() - 3600
    os.utime(path, (an_hour_ago, an_hour_ago))
    return path


# -- ingest -------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", list(SHAPES))
async def test_odd_but_playable_files_are_cataloged(
    catalog: Catalog, library: Path, kind: str
) -> None:
    name, container, codec = SHAPES[kind]
    path = settled(audiogen.make_odd(library / name, kind, seconds=SECONDS))
    counts = await scan(catalog, library)
    assert counts["new"] == 1 and counts["failed"] == 0, counts
    data = await info(catalog, path)
    assert data["state"] == "cataloged", data["last_error"]
    meta = data["metadata"]
    assert meta["container"] == container
    assert meta["codec"] == codec
    if kind == "year_header":
        # The header's year is kept aside and explained, not taken for the duration.
        assert "duration" not in meta
        assert float(meta["header_duration"]) == pytest.approx(365 * 24 * 3600, rel=1e-3)
        assert "more than" in meta["duration_note"] and "decoding" in meta["duration_note"]
    elif kind == "tag_reader_crash":
        assert "IndexError" in meta["tags_error"], meta
    else:
        # Compressed WAV included: the fact chunk's sample count, not mutagen's 0 s.
        assert float(meta["duration"]) == pytest.approx(SECONDS, abs=0.06), meta
    if kind != "tag_reader_crash":
        assert meta["sample_rate"] == "44100"
        assert meta["channels"] == "2"


async def test_aiff_whose_form_size_is_off_is_cataloged(catalog: Catalog, library: Path) -> None:
    path = settled(audiogen.make_odd(library / "impulse.aiff", "riff_size_off", seconds=SECONDS))
    await scan(catalog, library)
    data = await info(catalog, path)
    assert data["state"] == "cataloged", data["last_error"]
    assert float(data["metadata"]["duration"]) == pytest.approx(SECONDS, abs=0.01)


async def test_wav_well_short_of_its_header_is_still_failed(
    catalog: Catalog, library: Path
) -> None:
    # The tolerance is the decoder's (half a second or 3 %): a second missing is a cut file.
    path = audiogen.make_audio(library / "cut.wav", seconds=SECONDS)
    data = bytearray(path.read_bytes())
    path.write_bytes(bytes(data[: len(data) - 44100 * 4]))
    settled(path)
    await scan(catalog, library)
    row = await info(catalog, path)
    assert row["state"] == "failed" and row["error_class"] == "bad_input"
    assert "truncated" in row["last_error"] and "1.0 s short" in row["last_error"]


async def test_wav_with_an_empty_data_chunk_holds_no_audio(catalog: Catalog, library: Path) -> None:
    path = audiogen.make_audio(library / "silence.wav", seconds=SECONDS)
    data = path.read_bytes()
    at = data.index(b"data", 12)
    header = bytearray(data[: at + 8])
    header[at + 4 : at + 8] = struct.pack("<I", 0)
    header[4:8] = struct.pack("<I", len(header) - 8)
    path.write_bytes(bytes(header))
    settled(path)
    await scan(catalog, library)
    row = await info(catalog, path)
    assert row["state"] == "failed"
    assert row["last_error"] == "wav file holds no audio (its audio chunk is empty)"


async def test_the_year_long_header_does_not_reach_the_analysis_queue(
    catalog: Catalog, library: Path
) -> None:
    path = settled(audiogen.make_odd(library / "year.mp3", "year_header", seconds=SECONDS))
    await scan(catalog, library)
    jobs = await catalog.analysis_queue.claim(
        "test", 10, SETTINGS.fingerprint(), timedelta(seconds=60)
    )
    assert [job.path for job in jobs] == [str(path)]
    assert jobs[0].duration is None  # the pool estimates it from the size instead


async def test_opus_recordings_have_a_sample_rate(catalog: Catalog, library: Path) -> None:
    path = audiogen.make_audio(library / "set.opus", seconds=1.0)
    await scan(catalog, library)
    assert (await info(catalog, path))["metadata"]["sample_rate"] == "48000"


# -- analysis -----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def odd_files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("odd")
    files = {
        kind: audiogen.make_odd(root / name, kind, seconds=SECONDS)
        for kind, (name, _container, _codec) in SHAPES.items()
    }
    files["libsndfile_only"] = audiogen.make_odd(root / "matlab.wav", "libsndfile_only")
    return files


@pytest.fixture
async def pool() -> AsyncIterator[AnalysisPool]:
    async with AnalysisPool(2, timeout_base=60.0) as p:
        yield p


async def test_odd_files_decode_and_analyse(pool: AnalysisPool, odd_files: dict[str, Path]) -> None:
    failures: dict[str, str] = {}
    for kind, path in odd_files.items():
        try:
            result = await pool.analyze(str(path), SETTINGS)
        except AnalysisFailed as exc:
            failures[kind] = f"{exc.failure_class.value}: {exc.reason}"
            continue
        expected = 2.0 if kind == "libsndfile_only" else SECONDS
        assert result.duration == pytest.approx(expected, abs=0.06), kind
        assert result.channels == 2, kind
        if kind == "year_header":
            assert any("decoded length is used" in w for w in result.warnings), result.warnings
        if kind in ("vorbis_in_wav", "libsndfile_only"):
            assert any(w.startswith("decoded by ") for w in result.warnings), result.warnings
    assert failures == {}


def test_a_header_claiming_a_year_does_not_set_the_timeout(odd_files: dict[str, Path]) -> None:
    path = odd_files["year_header"]
    size = path.stat().st_size
    assert probe_duration(str(path)) == pytest.approx(size / 16_000)
    bounded = bounded_duration(str(path), 365 * 24 * 3600.0)
    assert bounded is not None and bounded <= size / 4
    assert AnalysisPool(1).timeout_for(bounded) < 3 * 3600


async def test_unsupported_wave_codec_is_bad_input_naming_it(
    pool: AnalysisPool, tmp_path: Path
) -> None:
    # The Vorbis ACM tag with something other than an Ogg stream inside: nothing plays it.
    fmt = struct.pack("<HHIIHHH", 0x6750, 2, 44100, 16000, 1, 16, 0)
    payload = bytes(range(256)) * 64
    body = b"WAVEfmt " + struct.pack("<I", len(fmt)) + fmt
    body += b"data" + struct.pack("<I", len(payload)) + payload
    path = tmp_path / "mode2.ogg"
    path.write_bytes(b"RIFF" + struct.pack("<I", len(body)) + body)
    with pytest.raises(AnalysisFailed) as caught:
        await pool.analyze(str(path), SETTINGS)
    assert caught.value.failure_class is FailureClass.BAD_INPUT
    assert caught.value.reason.startswith("unsupported codec: WAVE format 0x6750 (vorbis)")
    assert "libsndfile" in caught.value.reason


async def test_empty_file_says_so(pool: AnalysisPool, tmp_path: Path) -> None:
    path = tmp_path / "empty.ogg"
    path.write_bytes(b"")
    with pytest.raises(AnalysisFailed) as caught:
        await pool.analyze(str(path), SETTINGS, duration_hint=1.0)
    assert caught.value.failure_class is FailureClass.BAD_INPUT
    assert caught.value.reason == "empty file (0 bytes)"


async def test_a_rescan_says_which_failures_it_did_not_retry(
    catalog: Catalog, library: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    settled(audiogen.make_broken(library / "noise.flac", "garbage"))
    first = await Scanner(catalog, concurrency=2).scan([str(library)])
    assert (first.counts["failed"], first.counts["failed_not_retried"]) == (1, 0)
    again = await Scanner(catalog, concurrency=2).scan([str(library)])
    assert (again.counts["failed"], again.counts["failed_not_retried"]) == (1, 1)
    _print_summary(again, as_json=False)
    assert (
        "1 failed (1 unchanged since they failed earlier, not retried)" in capsys.readouterr().out
    )
