"""One-shot analysis into the catalog: `tracktiond scan --analyze`, then `tracktiond tag`.

What a user coming from beets (`beet import`, then `beet bpm`) expects: the scan analyses what
it catalogs in the crash-isolated workers and stores the results; stopped by kill -9 halfway,
the next run finishes the rest without analysing anything twice; `tag` before any analysis
says how to analyse and exits non-zero, after it writes the tags.
"""

from __future__ import annotations

import json
import signal
import sqlite3
import subprocess
import time
from pathlib import Path

import mutagen
import pytest

from tests.acceptance.test_cli import TRACKTIOND, run
from tests.support import audiogen

FILES = 6


def _library(root: Path, files: int = FILES, seconds: float = 3.0) -> list[Path]:
    return [
        audiogen.make_audio(root / f"track{i}.flac", seconds=seconds, freq=200.0 + 60 * i, seed=i)
        for i in range(files)
    ]


def _analysed(db_url: str) -> int:
    """Analyses stored, read straight from the SQLite catalog (fast enough to poll)."""
    path = db_url.split(":///", 1)[1]
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=10) as conn:
        return int(conn.execute("SELECT count(*) FROM analyses WHERE state = 'done'").fetchone()[0])


def _config(tmp_path: Path, workers: int = 1) -> Path:
    path = tmp_path / "etc" / "tracktiond.toml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f"[analysis]\nworkers = {workers}\n[tagging]\nwrite = false\n")
    return path


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_tag_before_analysis_says_how_then_scan_analyze_then_tag_writes(
    tmp_path: Path, library: Path, cli_env: dict[str, str]
) -> None:
    files = _library(library)
    config = str(_config(tmp_path))
    assert run("scan", "--config", config, str(library), env=cli_env).returncode == 0
    early = run("tag", "--config", config, str(library), env=cli_env)
    assert early.returncode == 1, early.stdout + early.stderr
    assert "scan --analyze" in early.stderr, early.stderr

    proc = run("scan", "--config", config, "--analyze", "--json", str(library), env=cli_env)
    assert proc.returncode == 0, proc.stderr
    summary = json.loads(proc.stdout)
    assert summary["analysed"] == FILES and summary["analysis_failed"] == 0, summary
    status = json.loads(run("status", "--config", config, "--json", env=cli_env).stdout)
    assert status["analysis"]["analysed"] == FILES and status["analysis"]["pending"] == 0, status

    again = json.loads(
        run("scan", "--config", config, "--analyze", "--json", str(library), env=cli_env).stdout
    )
    assert again["analysed"] == 0, "analysed a second time"

    tagged = run("tag", "--config", config, "--json", str(library), env=cli_env)
    assert tagged.returncode == 0, tagged.stderr
    reports = json.loads(tagged.stdout)
    assert {r["status"] for r in reports} == {"written"}, reports
    # A tone has no beat to write, but loudness always: the analysis landed in every file.
    assert all("replaygain_track_gain" in (mutagen.File(f).tags or {}) for f in files)


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_scan_analyze_killed_halfway_resumes_without_analysing_twice(
    tmp_path: Path, library: Path, cli_env: dict[str, str], db_url: str
) -> None:
    total = 12
    _library(library, total, seconds=20.0)
    config = str(_config(tmp_path))
    assert run("scan", "--config", config, str(library), env=cli_env).returncode == 0
    first = subprocess.Popen(
        [*TRACKTIOND, "scan", "--config", config, "--analyze", "--json", str(library)],
        env=cli_env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )

    def analysed() -> int:
        return _analysed(db_url)

    deadline = time.monotonic() + 120
    while analysed() < 2:
        assert first.poll() is None, f"finished before it could be stopped: {first.communicate()}"
        assert time.monotonic() < deadline, "no analysis stored within 120 s"
        time.sleep(0.2)
    first.send_signal(signal.SIGKILL)
    first.wait(30)
    done_before = analysed()
    assert done_before < FILES, "the library is too small to stop the scan halfway"

    proc = run("scan", "--config", config, "--analyze", "--json", str(library), env=cli_env)
    assert proc.returncode == 0, proc.stderr
    summary = json.loads(proc.stdout)
    # The killed run's leases were released at once (its process is gone): the rest, and only
    # the rest, is analysed now.
    assert summary["analysed"] == total - done_before, (summary, done_before)
    assert analysed() == total
