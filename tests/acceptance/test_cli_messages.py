"""What the command line says when something is off: each message once, true, and useful.

The smaller defects a new user met: `check-config` printing `null` (not TOML) and plain text
under `--json`, an empty configuration accepted without a word, a bad URL from the environment
blamed on the file, `scan /nonexistent` exiting 0, warnings printed twice.
"""

from __future__ import annotations

import json
import tomllib
from pathlib import Path

import pytest

from tests.acceptance.test_cli import run

pytestmark = pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)


def test_check_config_prints_a_configuration_that_reads_back(
    tmp_path: Path, cli_env: dict[str, str]
) -> None:
    config = tmp_path / "tracktiond.toml"
    config.write_text(
        f'[library]\nroots = ["{tmp_path}"]\n[organise]\nformats = {{flac = "x/{{title}}"}}\n'
    )
    shown = run("check-config", "--config", str(config), env=cli_env)
    assert shown.returncode == 0, shown.stderr
    again = tmp_path / "again.toml"
    again.write_text(shown.stdout)
    parsed = tomllib.loads(shown.stdout)  # valid TOML, unset values as comments
    assert "models_dir" not in parsed["analysis"]
    first = json.loads(run("check-config", "--config", str(config), "--json", env=cli_env).stdout)
    second = json.loads(run("check-config", "--config", str(again), "--json", env=cli_env).stdout)
    first.pop("source"), second.pop("source")
    assert first == second


def test_check_config_json_reports_errors_as_json(tmp_path: Path, cli_env: dict[str, str]) -> None:
    config = tmp_path / "tracktiond.toml"
    config.write_text("[library\n")
    proc = run("check-config", "--config", str(config), "--json", env=cli_env)
    assert proc.returncode == 78
    doc = json.loads(proc.stdout)
    assert doc["valid"] is False and str(config) in doc["error"], doc


def test_an_empty_configuration_warns_that_run_would_watch_nothing(
    tmp_path: Path, cli_env: dict[str, str]
) -> None:
    config = tmp_path / "tracktiond.toml"
    config.write_text("")
    proc = run("check-config", "--config", str(config), env=cli_env)
    assert proc.returncode == 0
    assert "roots is empty" in proc.stderr and "watch nothing" in proc.stderr, proc.stderr


def test_a_bad_url_from_the_environment_is_named_with_the_fix(
    tmp_path: Path, cli_env: dict[str, str]
) -> None:
    env = dict(cli_env, TRACKTIOND_DATABASE_URL="postgresql://user:p@ss:word@db.example/x")
    proc = run("check-config", env=env)
    assert proc.returncode == 78
    assert "TRACKTIOND_DATABASE_URL" in proc.stderr, proc.stderr
    assert "percent-encoded" in proc.stderr, proc.stderr
    assert "p@ss" not in proc.stderr, "the password is echoed"


def test_scan_of_a_path_that_is_not_there_exits_66_with_one_line(
    tmp_path: Path, library: Path, cli_env: dict[str, str]
) -> None:
    proc = run("scan", str(tmp_path / "nowhere"), env=cli_env)
    assert proc.returncode == 66, proc.stdout + proc.stderr
    assert proc.stderr.strip().splitlines() == [
        f"tracktiond: {tmp_path / 'nowhere'}: no such file or directory"
    ]


def test_a_configured_root_that_is_gone_is_one_warning(
    tmp_path: Path, library: Path, cli_env: dict[str, str]
) -> None:
    gone = tmp_path / "unmounted"
    config = tmp_path / "tracktiond.toml"
    config.write_text(f'[library]\nroots = ["{library}", "{gone}"]\n')
    proc = run("scan", "--config", str(config), env=cli_env)
    assert proc.returncode == 0, proc.stderr
    mentions = [line for line in proc.stderr.splitlines() if str(gone) in line]
    assert len(mentions) == 1, proc.stderr
    assert "not found" in mentions[0] and not mentions[0].lstrip().startswith("{"), mentions
