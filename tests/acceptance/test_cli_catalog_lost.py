"""`tracktiond scan` whose PostgreSQL catalog goes away mid-scan: exit 69 and one clear line.

The scan runs as a subprocess against a private PostgreSQL server (stopping the session's server
would disturb the other tests); once the scan has cataloged some files, the server is stopped.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.support import audiogen
from tests.support.pgserver import PostgresServer

pytestmark = pytest.mark.postgres

TRACKTIOND = [sys.executable, "-m", "tracktiond"]
COPIES = 3000  # enough that the scan is still running well after the first batches commit


def _cataloged(server: PostgresServer) -> int:
    try:
        out = server.execute("SELECT 1 FROM files WHERE state = 'cataloged' LIMIT 50", "catalog")
    except Exception:  # the scan has not created the schema yet
        return 0
    return int(out.split()[-1])  # "SELECT n"


def test_scan_exits_69_with_one_line_when_postgres_goes_away(
    tmp_path: Path, library: Path, private_pg: PostgresServer
) -> None:
    sources = [
        audiogen.make_audio(tmp_path / "src" / f"s{i}.wav", seconds=0.5, seed=i) for i in range(4)
    ]
    for n in range(COPIES):
        folder = library / f"d{n // 100:02d}"
        folder.mkdir(exist_ok=True)
        shutil.copyfile(sources[n % len(sources)], folder / f"t{n:04d}.wav")
    url = private_pg.create_database("catalog")
    config = tmp_path / "t.toml"
    config.write_text("[scan]\nconcurrency = 1\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("TRACKTIOND_")}
    env.update(XDG_STATE_HOME=str(tmp_path / "xdg-state"), TRACKTIOND_DATABASE_URL=url)

    proc = subprocess.Popen(
        [*TRACKTIOND, "scan", "--no-progress", "--config", str(config), str(library)],
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 120
        while _cataloged(private_pg) < 50:
            assert proc.poll() is None, f"the scan ended before the outage: {proc.communicate()}"
            assert time.monotonic() < deadline, "the scan cataloged nothing in 120 s"
            time.sleep(0.1)
        private_pg.stop_server()
        _, stderr = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()

    assert proc.returncode == 69, stderr
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr
    [line] = lines
    assert line.startswith("tracktiond: catalog "), line
    assert f"127.0.0.1:{private_pg.port}/catalog" in line and "unreachable: " in line, line
    assert "Traceback" not in stderr and "ExceptionGroup" not in stderr, stderr
