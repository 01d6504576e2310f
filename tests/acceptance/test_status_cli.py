"""`tracktiond status` with and without a running daemon: one schema, as a script sees it.

The daemon runs as a subprocess (the harness of test_daemon.py); `tracktiond status` runs as a
subprocess too, first while the daemon answers, then after it stopped. The two JSON documents
must have the same keys at every level and agree on what the catalog holds; a daemon answering
with a document of another schema is an error, never a silent fallback.
"""

from __future__ import annotations

import json
import shutil
import signal
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Any

import pytest

from tests.acceptance.test_cli import run
from tests.acceptance.test_daemon import Daemons, daemon_env, free_port, wait_until, write_config
from tests.integration.test_status_document import key_mismatches
from tests.support import audiogen
from tracktiond.service.status import SCHEMA_VERSION

pytestmark = pytest.mark.anyio


@pytest.fixture
def daemons(tmp_path: Path) -> Iterator[Daemons]:
    pool = Daemons(tmp_path)
    try:
        yield pool
    finally:
        pool.kill_all()


def status_json(config: Path, env: dict[str, str]) -> dict[str, Any]:
    proc = run("status", "--config", str(config), "--json", env=env)
    assert proc.returncode == 0, proc.stderr
    data: dict[str, Any] = json.loads(proc.stdout)
    return data


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
async def test_status_json_has_one_schema_with_and_without_a_daemon(
    tmp_path: Path, library: Path, db_url: str, daemons: Daemons
) -> None:
    audiogen.make_audio(library / "Artist" / "a.flac", seconds=0.3, tags={"title": "A"})
    audiogen.make_audio(library / "Artist" / "b.mp3", seconds=0.3, seed=2)
    shutil.copyfile(library / "Artist" / "b.mp3", library / "b copy.mp3")
    audiogen.make_broken(library / "broken.ogg", "garbage")
    port = free_port()
    config = write_config(tmp_path / "etc" / "tracktiond.toml", roots=[library], port=port)
    env = daemon_env(tmp_path, db_url)
    d = daemons.start(config, env, port)
    d.wait_ready()

    def cataloged() -> bool:
        st = d.status()
        files = st["files"]
        return bool(
            files.get("cataloged") == 3 and files.get("failed") == 1 and st["queue"]["pending"] == 0
        )

    await wait_until(cataloged, 30, lambda: f"library cataloged: {d.status()['files']}", d)

    live = status_json(config, env)
    assert live["source"] == "daemon" and live["pid"] == d.pid and live["state"] == "ready"
    assert key_mismatches(live, d.status()) == []
    text = run("status", "--config", str(config), env=env).stdout
    assert f"daemon (pid {d.pid}): ready" in text and "files: " in text, text

    d.signal(signal.SIGTERM)
    assert d.wait(30) == 0

    offline = status_json(config, env)
    assert offline["source"] == "catalog" and offline["state"] == "not running"
    assert offline["pid"] is None and offline["workers"]["count"] is None
    assert key_mismatches(live, offline) == []
    assert live["recent_failures"] and offline["recent_failures"]  # items compared too
    assert offline["schema_version"] == live["schema_version"]
    assert offline["files"] == live["files"] and offline["recordings"] == live["recordings"] == 2
    assert offline["duplicates"] == {"recordings": 1, "files": 2}
    assert live["duplicates"]["recordings"] == 1
    assert offline["recent_failures"] == live["recent_failures"]
    assert [r["path"] for r in offline["roots"]] == [r["path"] for r in live["roots"]]
    text = run("status", "--config", str(config), env=env).stdout
    assert "no daemon answers" in text and "files: " in text and "broken.ogg" in text, text


def _serving(document: dict[str, Any]) -> type[BaseHTTPRequestHandler]:
    """A handler class answering every GET with ``document``, as a drifted daemon would."""

    class DriftedStatus(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = json.dumps(document).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    return DriftedStatus


@pytest.mark.parametrize(
    ("document", "reason"),
    [
        # Today's version, but keys missing: a daemon of a build that drifted from the schema.
        ({"schema_version": SCHEMA_VERSION, "files": {}}, "missing key"),
        # Another version: an older or newer daemon still running on the port.
        (
            {"schema_version": SCHEMA_VERSION - 1, "files": {}},
            f"this tracktiond reads {SCHEMA_VERSION}",
        ),
    ],
    ids=["keys-missing", "other-version"],
)
@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_a_daemon_answering_another_schema_is_an_error(
    tmp_path: Path,
    library: Path,
    cli_env: dict[str, str],
    document: dict[str, Any],
    reason: str,
) -> None:
    server = HTTPServer(("127.0.0.1", 0), _serving(document))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        config = write_config(tmp_path / "t.toml", roots=[library], port=server.server_port)
        proc = run("status", "--config", str(config), "--json", env=cli_env)
    finally:
        server.shutdown()
        server.server_close()
    assert proc.returncode == 1, proc.stderr
    assert "status document" in proc.stderr and reason in proc.stderr, proc.stderr
    assert proc.stdout == ""


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_status_of_another_catalog_is_not_taken_from_the_daemon_on_the_port(
    tmp_path: Path, library: Path, db_url: str, daemons: Daemons
) -> None:
    """Two configurations sharing a port: `status --config B` must not print daemon A's
    numbers as B's."""
    audiogen.make_audio(library / "a.flac", seconds=0.3)
    port = free_port()
    env = daemon_env(tmp_path, db_url)
    config_a = write_config(tmp_path / "etc-a" / "tracktiond.toml", roots=[library], port=port)
    d = daemons.start(config_a, env, port)
    d.wait_ready()
    other_library = tmp_path / "other"
    other_library.mkdir()
    config_b = write_config(
        tmp_path / "etc-b" / "tracktiond.toml", roots=[other_library], port=port
    )
    env_b = dict(env, TRACKTIOND_DATABASE_URL=f"sqlite+aiosqlite:///{tmp_path / 'b' / 'b.db'}")
    proc = run("status", "--config", str(config_b), "--json", env=env_b)
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    assert doc["source"] == "catalog", doc
    assert doc["files"].get("cataloged", 0) == 0, "daemon A's files shown as catalog B's"
    assert "b.db" in doc["catalog"]["url"]
    assert "uses the catalog" in proc.stderr and "b.db" in proc.stderr, proc.stderr
    # The daemon's own configuration still gets the daemon's answer.
    assert status_json(config_a, env)["source"] == "daemon"
