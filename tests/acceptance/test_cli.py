"""The `tracktiond` command as users and scripts run it: a subprocess, exit codes, JSON."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.support import audiogen
from tracktiond.catalog.migrate import HEAD, head_revision

TRACKTIOND = [sys.executable, "-m", "tracktiond"]


def run(
    *args: str, env: dict[str, str], cwd: Path | None = None, user: str | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*TRACKTIOND, *args],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=300,
        stdin=subprocess.DEVNULL,
        user=user,
        check=False,
    )


def run_json(*args: str, env: dict[str, str]) -> Any:
    proc = run(*args, "--json", env=env)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def test_scan_then_status_json(library: Path, cli_env: dict[str, str]) -> None:
    audiogen.make_audio(library / "Artist" / "a.flac", seconds=0.3, tags={"title": "A"})
    audiogen.make_audio(library / "Artist" / "b.mp3", seconds=0.3, seed=2)
    shutil.copyfile(library / "Artist" / "b.mp3", library / "b copy.mp3")
    audiogen.make_broken(library / "broken.ogg", "garbage")

    summary = run_json("scan", str(library), env=cli_env)
    assert (summary["new"], summary["duplicate"], summary["failed"]) == (2, 1, 1)
    assert summary["files_seen"] == 4 and summary["elapsed_seconds"] > 0

    status = run_json("status", env=cli_env)
    assert status["files"]["cataloged"] == 3 and status["files"]["failed"] == 1
    assert status["recordings"] == 2
    assert status["duplicates"] == {"recordings": 1, "files": 2}
    [failure] = status["recent_failures"]
    assert failure["path"] == str(library / "broken.ogg")
    assert failure["class"] == "bad_input" and "not an audio file" in failure["reason"]

    dups = run_json("duplicates", env=cli_env)
    assert sorted(dups[0]["paths"]) == sorted(
        [str(library / "Artist" / "b.mp3"), str(library / "b copy.mp3")]
    )

    shown = run_json("show", str(library / "Artist" / "a.flac"), env=cli_env)
    assert shown["state"] == "cataloged" and shown["metadata"]["title"] == "A"

    again = run_json("scan", str(library), env=cli_env)
    assert (again["unchanged"], again["failed"], again["new"]) == (3, 1, 0)


def test_human_summary_and_configured_roots(
    tmp_path: Path, library: Path, cli_env: dict[str, str]
) -> None:
    audiogen.make_audio(library / "x.wav", seconds=0.3)
    config = tmp_path / "t.toml"
    config.write_text(f'[library]\nroots = ["{library.name}"]\n')  # relative to the file
    proc = run("scan", "--config", str(config), env=cli_env, cwd=Path("/"))
    assert proc.returncode == 0, proc.stderr
    assert "scanned 1 files" in proc.stdout and "1 new" in proc.stdout


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_config_errors_exit_78_with_a_precise_message(
    tmp_path: Path, cli_env: dict[str, str]
) -> None:
    config = tmp_path / "bad.toml"
    config.write_text('[library]\nroots = ["/m"]\n[http]\nlisten = "nowhere"\n')
    for command in (["scan"], ["status"], ["check-config"], ["db", "upgrade"]):
        proc = run(*command, "--config", str(config), env=cli_env)
        assert proc.returncode == 78, (command, proc.stderr)
        assert str(config) in proc.stderr and "[http] listen" in proc.stderr


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_unreachable_catalog_exits_69_without_leaking_the_password(
    tmp_path: Path, library: Path, cli_env: dict[str, str]
) -> None:
    env = dict(cli_env, TRACKTIOND_DATABASE_URL="postgresql://scott:tiger-secret@127.0.0.1:1/x")
    proc = run("scan", str(library), env=env)
    assert proc.returncode == 69, proc.stderr
    assert "unreachable" in proc.stderr
    assert "tiger-secret" not in proc.stderr + proc.stdout


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_check_config_prints_effective_config_with_secrets_redacted(
    tmp_path: Path, cli_env: dict[str, str]
) -> None:
    config = tmp_path / "c.toml"
    config.write_text('[graph]\nuri = "bolt://g:7687"\npassword = "graph-secret"\n')
    env = dict(cli_env, TRACKTIOND_DATABASE_URL="postgresql://u:db-secret@h/catalog")
    proc = run("check-config", "--config", str(config), "--json", env=env)
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    assert data["database"]["url"] == "postgresql+asyncpg://u:***@h/catalog"
    assert data["graph"]["password"] == "********"
    assert data["graph"]["uri"] == "bolt://g:7687"
    human = run("check-config", "--config", str(config), env=env)
    for out in (proc.stdout, human.stdout, human.stderr):
        assert "graph-secret" not in out and "db-secret" not in out


def test_db_upgrade_is_idempotent(cli_env: dict[str, str]) -> None:
    head = head_revision()
    assert head == HEAD, "migrate.HEAD must name the newest migration"
    for _ in range(2):
        proc = run("db", "upgrade", env=cli_env)
        assert proc.returncode == 0, proc.stderr
        assert f"revision {head}" in proc.stdout
