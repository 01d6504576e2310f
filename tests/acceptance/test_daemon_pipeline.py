"""The whole pipeline in the running daemon: catalog → analysis → tag write-back → quiet.

Runs `tracktiond run` as a subprocess with analysis and tag writing enabled on a library in
several formats, then checks what a user would: the tags are in the files, the daemon goes
quiet (no further writes, no analysis), and a move or a tag edit never re-triggers analysis. And
a decoder that crashes its worker costs that one file, never the daemon (the faulty worker of
tests/support/faulty_worker.py, picked through the subprocess's environment).
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import anyio
import mutagen
import pytest

from tests.acceptance.test_daemon import Daemons, daemon_env, free_port, wait_until, write_config
from tests.acceptance.test_daemon import (
    daemons as daemons,  # the fixture: kills what a test started
)
from tests.support import audiogen, faulty_worker

pytestmark = pytest.mark.anyio

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
    write_config(path, roots=[root], port=port)
    text = path.read_text().replace(
        "[analysis]\nenabled = false\n",
        f"[analysis]\nenabled = true\nworkers = 2\n\n[tagging]\nwrite = {str(tagging).lower()}\n",
    )
    path.write_text(text)
    return path


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
        return files.get("written", 0) == len(TAGGED) and files.get("skipped", 0) == 1

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

    # Quiet: over a few seconds nothing is written, analysed or re-read any more.
    before = d.metrics()
    await anyio_sleep(4.0)
    after = d.metrics()
    for name in (
        "tracktiond_tag_writes_total",
        "tracktiond_jobs_processed_total",
        "tracktiond_analysis_audio_seconds_total",
    ):
        assert after.total(name) == before.total(name), name
    assert after.total("tracktiond_jobs_processed_total", stage="analysis") == len(paths)
    assert after.total("tracktiond_tag_writes_total", result="written") == len(TAGGED)

    # A move and a user's tag edit: the catalog follows, the analysis is not run again.
    moved = library / "sorted" / paths[1].name
    moved.parent.mkdir()
    shutil.move(paths[1], moved)
    edited = paths[2]
    audio = mutagen.File(edited)
    audio.tags["title"] = ["edited by the user"]
    audio.save()

    def followed() -> bool:
        rows = d.get_json("/status")["files"]
        return bool(rows["missing"] == 0 and rows["pending"] == 0) and os.path.exists(moved)

    await wait_until(followed, 30, "catalog follows the move and the edit", d)
    await anyio_sleep(3.0)
    final = d.metrics()
    assert final.total("tracktiond_jobs_processed_total", stage="analysis") == len(paths)
    assert final.total("tracktiond_tag_writes_total", result="written") == len(TAGGED)
    assert d.status()["analysis"]["analysed"] == len(paths)
    json.dumps(d.status())  # /status stays serialisable with every stage running


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
