"""`tracktiond organise` as users run it: a subprocess, exit codes, JSON — and killed with
SIGKILL at random moments of applying and undoing, twenty times, without a file lost,
duplicated or half-written."""

from __future__ import annotations

import hashlib
import json
import os
import random
import signal
import sqlite3
import subprocess
import time
from pathlib import Path

import pytest

from tests.acceptance.test_cli import TRACKTIOND, run, run_json
from tests.support import audiogen

TEMP_PREFIX = ".tracktiond-organise-"


def write_config(path: Path, library: Path, **organise: object) -> Path:
    lines = [f"[library]\nroots = [{json.dumps(str(library))}]\n[organise]"]
    lines += [f"{k} = {json.dumps(v)}" for k, v in organise.items()]
    path.write_text("\n".join(lines) + "\n")
    return path


def user_files(root: Path) -> dict[str, str]:
    """Every file a user sees (relative path -> sha256); our hidden temporaries are not theirs."""
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file() and not p.name.startswith(TEMP_PREFIX)
    }


def temporaries(root: Path) -> list[Path]:
    return [p for p in root.rglob(f"{TEMP_PREFIX}*")]


def test_dry_run_apply_undo_and_plans(
    tmp_path: Path, library: Path, cli_env: dict[str, str]
) -> None:
    for n in (1, 2):
        audiogen.make_audio(
            library / "in" / f"t{n}.mp3",
            seconds=0.2,
            seed=n,
            tags={
                "artist": "Artist",
                "album": "Album",
                "title": f"Title {n}",
                "tracknumber": str(n),
            },
        )
    (library / "in" / "t1.lrc").write_text("[00:00] words\n")
    config = write_config(
        tmp_path / "t.toml", library, pattern="{artist}/{album}/{track:02} {title}"
    )
    assert run("scan", "--config", str(config), env=cli_env).returncode == 0
    before = user_files(library)

    dry = run_json("organise", "--config", str(config), "--dry-run", env=cli_env)
    assert user_files(library) == before
    assert dry["dry_run"] is True and dry["counts"]["move"] == 2 and dry["counts"]["sidecar"] == 1
    targets = sorted(Path(s["target"]).relative_to(library).as_posix() for s in dry["steps"])
    assert targets == [
        "Artist/Album/01 Title 1.lrc",
        "Artist/Album/01 Title 1.mp3",
        "Artist/Album/02 Title 2.mp3",
    ]
    human = run("organise", "--config", str(config), "--dry-run", env=cli_env)
    assert human.returncode == 0 and "would move 2 files" in human.stdout

    applied = run_json("organise", "--config", str(config), env=cli_env)
    assert applied["state"] == "applied" and applied["counts"]["done"] == 3
    assert sorted(user_files(library)) == targets
    listed = run_json("organise", "plans", "--config", str(config), env=cli_env)
    assert [p["plan"] for p in listed] == [applied["plan"]]

    undone = run("organise", "undo", "--config", str(config), env=cli_env)
    assert undone.returncode == 0, undone.stderr
    assert f"plan {applied['plan']} undone: 3 steps reversed" in undone.stdout
    assert user_files(library) == before
    nothing = run("organise", "undo", "--config", str(config), env=cli_env)
    assert nothing.returncode == 1 and "no applied plan to undo" in nothing.stderr


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_a_bad_pattern_exits_78_naming_the_key_and_column(
    tmp_path: Path, library: Path, cli_env: dict[str, str]
) -> None:
    config = write_config(tmp_path / "bad.toml", library, pattern="{artist}/{titel}")
    proc = run("organise", "--config", str(config), "--dry-run", env=cli_env)
    assert proc.returncode == 78, proc.stderr
    assert f"{config}: [organise] pattern: unknown field {{titel}}" in proc.stderr
    assert "column 11" in proc.stderr and "did you mean {title}?" in proc.stderr


# -- kill -9, twenty times ----------------------------------------------------------------------

FILES = 240
KILLS = 20


def _sqlite_path(db_url: str) -> str:
    return db_url.split(":///", 1)[1]


def _busy(db: str) -> bool:
    """A plan is being applied or undone right now (its owner is set)."""
    try:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5) as conn:
            row = conn.execute(
                "SELECT count(*) FROM organise_plans WHERE owner IS NOT NULL"
            ).fetchone()
    except sqlite3.Error:
        return False
    return bool(row and row[0])


def _plan_states(db: str) -> list[str]:
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5) as conn:
        return [r[0] for r in conn.execute("SELECT state FROM organise_plans ORDER BY id")]


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_kill_9_at_random_points_loses_and_duplicates_nothing(
    tmp_path: Path, library: Path, cli_env: dict[str, str], db_url: str
) -> None:
    rng = random.Random(11)
    for n in range(FILES):
        path = library / "in" / f"d{n % 12}" / f"f{n}.wav"
        audiogen.make_audio(
            path, seconds=0.05, seed=n, tags={"artist": f"A{n % 7}", "title": f"T{n}"}
        )
        if n % 5 == 0:
            path.with_suffix(".lrc").write_text(f"[00:00] {n}\n")
    config = write_config(
        tmp_path / "t.toml", library, pattern="{artist}/{title}", journal_batch=10
    )
    assert run("scan", "--config", str(config), env=cli_env).returncode == 0
    original = user_files(library)
    contents = sorted(original.values())
    db = _sqlite_path(db_url)
    interrupted = 0
    for attempt in range(KILLS):
        states = _plan_states(db)
        undoing = bool(states) and states[-1] == "applied"
        command = ["organise", "undo"] if undoing else ["organise"]
        proc = subprocess.Popen(
            [*TRACKTIOND, *command, "--config", str(config)],
            env=cli_env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        deadline = time.monotonic() + 60
        while not _busy(db) and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.005)
        time.sleep(rng.uniform(0.0, 0.25))
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
            interrupted += 1
        proc.wait(30)
        # Whatever instant it died at: every file is in exactly one place, whole.
        now = user_files(library)
        assert sorted(now.values()) == contents, f"kill {attempt}: files lost or duplicated"
    assert interrupted >= KILLS // 2, f"only {interrupted} of {KILLS} kills landed mid-plan"

    # The next start finishes what was interrupted; then a full apply and a full undo.
    states = _plan_states(db)
    if not states or states[-1] != "applied":
        assert run("organise", "--config", str(config), env=cli_env).returncode == 0
    if _plan_states(db)[-1] != "applied":
        assert run("organise", "--config", str(config), env=cli_env).returncode == 0
    placed = user_files(library)
    assert sorted(placed.values()) == contents
    assert all(not p.startswith("in/") for p in placed), "files left behind in the inbox"
    assert temporaries(library) == []
    status = run_json("status", "--config", str(config), env=cli_env)
    assert status["files"]["cataloged"] == FILES and status["files"]["missing"] == 0
    rescan = run_json("scan", "--config", str(config), env=cli_env)
    assert (rescan["unchanged"], rescan["new"], rescan["bytes_read"]) == (FILES, 0, 0)

    undo = run("organise", "undo", "--config", str(config), env=cli_env)
    assert undo.returncode == 0, undo.stdout + undo.stderr
    assert user_files(library) == original
    assert temporaries(library) == []
