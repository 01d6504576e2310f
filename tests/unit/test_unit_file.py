"""The systemd unit passes systemd's own checks: security exposure and `systemd-analyze verify`."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

SYSTEMD_DIR = Path(__file__).resolve().parents[2] / "systemd"
UNIT = SYSTEMD_DIR / "tracktiond.service"
DROPINS = SYSTEMD_DIR / "tracktiond.service.d"
MAX_EXPOSURE = 2.5
EXEC_START = "ExecStart=/usr/bin/tracktiond run"


def _systemd_analyze() -> str:
    path = shutil.which("systemd-analyze")
    if path is None:
        # Never a skip: an unverified unit file is exactly what this test exists to prevent.
        pytest.fail(
            "systemd-analyze not found: install the `systemd` package "
            "(apt-get install systemd) to verify systemd/tracktiond.service"
        )
    return path


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [_systemd_analyze(), *args], capture_output=True, text=True, timeout=120, check=False
    )


def _installed_copy(directory: Path, with_dropins: bool) -> Path:
    """The unit as a venv install would have it, so verify can check that ExecStart exists.

    /usr/bin/tracktiond is where a distribution package puts the script, but on a development or
    CI machine the script lives in the virtualenv: point ExecStart there, the way the unit's
    comment tells venv users to.
    """
    script = Path(sys.executable).parent / "tracktiond"
    if not script.exists():
        found = shutil.which("tracktiond")
        assert found, "the tracktiond script is missing: install the package (pip install -e .)"
        script = Path(found)
    text = UNIT.read_text()
    assert EXEC_START in text
    copy = directory / UNIT.name
    copy.write_text(text.replace(EXEC_START, f"ExecStart={script} run"))
    if with_dropins:
        # verify reads drop-ins from <unit>.d next to the unit, as systemd does from /etc.
        target = directory / f"{UNIT.name}.d"
        target.mkdir()
        for example in sorted(DROPINS.glob("*.conf.example")):
            shutil.copy(example, target / example.name.removesuffix(".example"))
    return copy


def _exposure(unit: Path) -> float:
    result = _run("security", "--offline=true", "--threshold=25", str(unit))
    output = result.stdout + result.stderr
    match = re.search(r"Overall exposure level for \S+: (\d+(?:\.\d+)?)", output)
    assert match, f"no overall exposure in systemd-analyze output:\n{output}"
    return float(match.group(1))


def test_security_exposure() -> None:
    exposure = _exposure(UNIT)
    assert exposure <= MAX_EXPOSURE, f"exposure {exposure} > {MAX_EXPOSURE}"


def test_security_exposure_with_dropins(tmp_path: Path) -> None:
    exposure = _exposure(_installed_copy(tmp_path, with_dropins=True))
    assert exposure <= MAX_EXPOSURE, f"exposure {exposure} > {MAX_EXPOSURE} with the drop-ins"


@pytest.mark.parametrize("with_dropins", [False, True], ids=["unit", "unit+dropins"])
def test_verify_is_clean(tmp_path: Path, with_dropins: bool) -> None:
    unit = _installed_copy(tmp_path, with_dropins)
    result = _run("verify", str(unit))
    # Unknown keys and bad values are only warnings (exit 0): clean means nothing printed at all.
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip() == "", result.stdout
    assert result.stderr.strip() == "", result.stderr


def test_unit_keeps_the_contract() -> None:
    """Settings the daemon's code relies on, which a hardening pass must not drop."""
    settings = [
        line.strip()
        for line in UNIT.read_text().splitlines()
        if line.strip() and not line.lstrip().startswith("#")
    ]
    for expected in (
        "Type=notify",
        "NotifyAccess=main",
        "WatchdogSec=60",
        "ExecReload=/bin/kill -HUP $MAINPID",
        "RestartPreventExitStatus=78",  # tracktiond.cli.common.EXIT_CONFIG
        "KillMode=mixed",
        "StateDirectory=tracktiond",
        "Environment=TRACKTIOND_CONFIG=/etc/tracktiond/tracktiond.toml",
    ):
        assert expected in settings, expected
    # setrlimit/prlimit64 (the worker pool's memory bound) live in @resources.
    assert not any(s.startswith("SystemCallFilter=~") and "@resources" in s for s in settings)


def test_exit_code_for_config_errors_matches_cli() -> None:
    from tracktiond.cli.common import EXIT_CONFIG

    assert f"RestartPreventExitStatus={EXIT_CONFIG}" in UNIT.read_text()
