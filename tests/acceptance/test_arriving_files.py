"""Files that are still arriving are read once, after they have settled, however they arrive.

A file copied into a new directory (``cp -r Album/ ~/Music/``, a download into a new folder), a
file still growing when ``tracktiond scan`` meets it: never read half-written into a failure,
never counted in ``tracktiond_jobs_failed_total``. The writer here is a thread that writes a
real WAV file in pieces, the way a slow copy does.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from tests.acceptance.test_daemon import (
    Daemons,
    daemon_env,
    free_port,
    wait_until,
    write_config,
)
from tests.acceptance.test_daemon import daemons as daemons  # the fixture
from tests.support import audiogen

pytestmark = pytest.mark.anyio


def slow_copy(source: Path, target: Path, *, seconds: float, pieces: int = 24) -> threading.Thread:
    """Copy ``source`` to ``target`` in ``pieces`` writes spread over ``seconds``."""
    data = source.read_bytes()
    step = -(-len(data) // pieces)

    def run() -> None:
        with open(target, "wb") as out:
            for start in range(0, len(data), step):
                out.write(data[start : start + step])
                out.flush()
                time.sleep(seconds / pieces)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


@pytest.fixture(scope="module")
def big_wav(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("source") / "big.wav"
    audiogen.make_audio(path, "wav", seconds=40.0, freq=330.0)  # ~7 MB of PCM
    return path


async def test_a_file_copied_slowly_into_a_new_directory_is_read_once_settled(
    tmp_path: Path, library: Path, daemons: Daemons, big_wav: Path
) -> None:
    db_url = f"sqlite+aiosqlite:///{tmp_path / 'state' / 'catalog.db'}"
    port = free_port()
    config = write_config(tmp_path / "etc" / "tracktiond.toml", roots=[library], port=port)
    d = daemons.start(config, daemon_env(tmp_path, db_url), port)
    d.wait_ready()
    album = library / "New Album"
    album.mkdir()
    copy = slow_copy(big_wav, album / "big.wav", seconds=4.0)

    def cataloged() -> bool:
        return bool(d.status()["files"].get("cataloged", 0) == 1)

    await wait_until(cataloged, 40, lambda: f"the copied file cataloged: {d.status()}", d)
    copy.join()
    samples = d.metrics()
    assert samples.total("tracktiond_jobs_failed_total") == 0, d.report()
    outcomes = {
        labels["outcome"]: value
        for name, labels, value in samples.labelled
        if name == "tracktiond_jobs_processed_total" and labels.get("stage") == "ingest"
    }
    assert outcomes.get("new") == 1 and not outcomes.get("failed"), outcomes
    assert not d.logged("truncated"), d.report()
    assert not d.logged("cannot catalog"), d.report()


def test_scan_meeting_a_growing_file_leaves_it_pending_not_failed(
    tmp_path: Path, library: Path, cli_env: dict[str, str], big_wav: Path
) -> None:
    audiogen.make_audio(library / "done.flac", seconds=0.5)
    copy = slow_copy(big_wav, library / "growing.wav", seconds=6.0, pieces=60)
    time.sleep(1.0)  # a good part of it is there, the header claims the whole
    scan = subprocess.run(
        [sys.executable, "-m", "tracktiond", "scan", "--json", str(library)],
        env=cli_env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert scan.returncode == 0, scan.stderr
    summary = json.loads(scan.stdout)
    assert summary["failed"] == 0, summary
    assert summary["new"] + summary["deferred"] == 2, summary
    copy.join()
    again = json.loads(
        subprocess.run(
            [sys.executable, "-m", "tracktiond", "scan", "--json", str(library)],
            env=cli_env,
            capture_output=True,
            text=True,
            timeout=120,
            check=True,
        ).stdout
    )
    assert again["failed"] == 0, again
    status = json.loads(
        subprocess.run(
            [sys.executable, "-m", "tracktiond", "status", "--json"],
            env=cli_env,
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        ).stdout
    )
    assert status["files"].get("cataloged") == 2, status
