"""The whole pipeline in the running daemon: catalog → analysis → tag write-back → quiet.

Runs `tracktiond run` as a subprocess with analysis and tag writing enabled on a library in
several formats, then checks what a user would: the tags are in the files, the daemon goes
quiet (no further writes, no analysis), and a move or a tag edit never re-triggers analysis. And
a decoder that crashes its worker costs that one file, never the daemon (the faulty worker of
tests/support/faulty_worker.py, picked through the subprocess's environment).
"""

from __future__ import annotations

import inspect
import shutil
from pathlib import Path

import anyio
import mutagen
import pytest

from tests.acceptance.test_daemon import (
    DaemonProcess,
    Daemons,
    Samples,
    daemon_env,
    free_port,
    wait_until,
    write_config,
)
from tests.acceptance.test_daemon import (
    daemons as daemons,  # the fixture: kills what a test started
)
from tests.support import audiogen, faulty_worker
from tracktiond.catalog import Catalog
from tracktiond.pipeline.stage import StageLoop

pytestmark = pytest.mark.anyio

JOBS = "tracktiond_jobs_processed_total"
#: A stage that finds nothing to claim looks again after this long (StageLoop's idle poll; the
#: daemon keeps the default). A quiet window must be longer, or it proves nothing.
IDLE_POLL = float(inspect.signature(StageLoop).parameters["idle_poll"].default)
QUIET = IDLE_POLL + 1.5
QUIET_COUNTERS = (
    "tracktiond_tag_writes_total",
    "tracktiond_jobs_processed_total",
    "tracktiond_analysis_audio_seconds_total",
)
FORMATS = ("mp3", "flac", "ogg", "opus", "m4a", "wav", "wma")
TAGGED = {  # where each format keeps the key tracktiond writes
    "mp3": "TKEY",
    "flac": "initialkey",
    "ogg": "initialkey",
    "opus": "initialkey",
    "m4a": "----:com.apple.iTunes:initialkey",
    "wav": "TKEY",
}


def pipeline_config(path: Path, root: Path, port: int, *, tagging: bool = True) -> Path:
    return write_config(
        path, roots=[root], port=port, analysis=True, analysis_workers=2, tagging=tagging
    )


def file_key(path: Path) -> str | None:
    audio = mutagen.File(path)
    assert audio is not None and audio.tags is not None
    fmt = path.suffix[1:]
    native = TAGGED[fmt]
    if fmt in ("mp3", "wav"):
        frame = audio.tags.get(native)
        return str(frame.text[0]) if frame else None
    values = audio.tags.get(native)
    if not values:
        return None
    value = values[0]
    return bytes(value).decode() if fmt == "m4a" else str(value)


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
async def test_daemon_analyses_tags_once_then_stays_quiet(
    tmp_path: Path, library: Path, db_url: str, daemons: Daemons
) -> None:
    paths = [
        audiogen.make_audio(library / f"track{i}.{fmt}", seconds=6.0, seed=i, tags={"title": fmt})
        for i, fmt in enumerate(FORMATS)
    ]
    port = free_port()
    config = pipeline_config(tmp_path / "etc" / "tracktiond.toml", library, port)
    d = daemons.start(config, daemon_env(tmp_path, db_url), port)
    d.wait_ready(60)

    def analysed() -> bool:
        a = d.status()["analysis"]
        return bool(a["analysed"] == len(paths) and a["pending"] == 0)

    await wait_until(analysed, 180, lambda: f"analysis: {d.status()['analysis']}", d)

    def tagged() -> bool:
        files = d.status()["tagging"]["files"]
        return bool(files.get("written", 0) == len(TAGGED) and files.get("skipped", 0) == 1)

    await wait_until(tagged, 60, lambda: f"tagging: {d.status()['tagging']}", d)

    # What a user (or a DJ tool) finds in the files:
    for path in paths:
        fmt = path.suffix[1:]
        if fmt in TAGGED:
            key = file_key(path)
            assert key and key[0] in "ABCDEFG", (path, key)
    status = d.status()
    [skipped] = status["tagging"]["not_written"]
    assert skipped["path"].endswith(".wma") and skipped["reason"]

    # Quiet: over more than one idle poll nothing is written, analysed or re-read any more.
    before = d.metrics()
    await anyio_sleep(QUIET)
    after = d.metrics()
    for name in QUIET_COUNTERS:
        assert after.total(name) == before.total(name), name
    assert after.total(JOBS, stage="analysis") == len(paths)
    assert after.total("tracktiond_tag_writes_total", result="written") == len(TAGGED)

    # A move and a user's tag edit: the catalog follows, the analysis is not run again.
    catalog = await Catalog.open(db_url)
    try:
        await _move_and_edit(d, catalog, paths, library, after)
    finally:
        await catalog.close()


async def _move_and_edit(
    d: DaemonProcess, catalog: Catalog, paths: list[Path], library: Path, after: Samples
) -> None:
    before_move = await catalog.recording_for_path(str(paths[1]))
    assert before_move is not None
    recording_id = before_move["recording_id"]
    moved = library / "sorted" / paths[1].name
    moved.parent.mkdir()
    shutil.move(paths[1], moved)
    edited = paths[2]
    audio = mutagen.File(edited)
    audio.tags["title"] = ["edited by the user"]
    audio.save()

    async def seen() -> bool:
        # The catalog has the recording at its new path, and the edit was ingested (as a
        # changed file: its bytes changed, its audio did not).
        row = await catalog.recording_for_path(str(moved))
        if row is None or row["state"] != "cataloged":
            return False
        assert row["recording_id"] == recording_id, (row, recording_id)
        now = d.metrics()
        files = d.status()["files"]
        return bool(
            now.total(JOBS, stage="ingest", outcome="changed")
            > after.total(JOBS, stage="ingest", outcome="changed")
            and files["missing"] == 0
            and files["pending"] == 0
        )

    await wait_until(seen, 30, lambda: f"the move and the edit seen: {d.status()['files']}", d)
    # A re-analysis the move or the edit wrongly queued would be claimed at once (new work wakes
    # the stages) or at the latest at the analysis stage's next idle poll: wait longer than that.
    seen_at = d.metrics()
    await anyio_sleep(QUIET)
    final = d.metrics()
    assert final.total(JOBS, stage="analysis") == len(paths)
    for name in ("tracktiond_analysis_audio_seconds_total", "tracktiond_tag_writes_total"):
        assert final.total(name) == seen_at.total(name) == after.total(name), name
    analysis = d.status()["analysis"]
    assert (analysis["analysed"], analysis["pending"]) == (len(paths), 0), analysis
    assert await catalog.recording_for_path(str(paths[1])) is None  # the old path is gone


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
async def test_a_crashing_decoder_costs_one_file_not_the_daemon(
    tmp_path: Path, library: Path, db_url: str, daemons: Daemons
) -> None:
    audiogen.make_audio(library / "good.flac", seconds=4.0)
    # A real FLAC file, so it is cataloged; the faulty worker segfaults when it analyses it.
    audiogen.make_audio(library / f"doomed{faulty_worker.CRASH}.flac", seconds=4.0, seed=1)
    port = free_port()
    config = pipeline_config(tmp_path / "etc" / "tracktiond.toml", library, port, tagging=False)
    env = faulty_worker.environment(daemon_env(tmp_path, db_url))
    d = daemons.start(config, env, port)
    d.wait_ready(60)

    def settled() -> bool:
        a = d.status()["analysis"]
        return bool(a["pending"] == 0 and a["analysed"] + a["failed"] == 2)

    await wait_until(settled, 120, lambda: f"analysis: {d.status()['analysis']}", d)
    analysis = d.status()["analysis"]
    assert (analysis["analysed"], analysis["failed"]) == (1, 1), analysis
    metrics = d.metrics()
    failed = metrics.total("tracktiond_jobs_failed_total", stage="analysis")
    bad_input = metrics.total(
        "tracktiond_jobs_failed_total", stage="analysis", failure_class="bad_input"
    )
    assert failed == bad_input == 1
    assert "decoder crashed (SIGSEGV)" in d.get("/status")[1], d.report()
    assert d.running


async def anyio_sleep(seconds: float) -> None:
    await anyio.sleep(seconds)
