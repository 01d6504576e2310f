"""The status document: one schema whether a running daemon builds it or the catalog alone.

A real daemon (``Daemon.run``, in this process, on a real catalog and a real library) builds
the document from its cached state; ``catalog_status`` builds it from the same catalog. Both
must have the same keys at every level, survive ``from_json(to_json(doc))`` unchanged, and
agree on what the catalog says. ``from_json`` must refuse a document that drifted.
"""

from __future__ import annotations

import json
import shutil
import time
import urllib.request
from pathlib import Path
from typing import Any, get_args

import anyio
import pytest

from tests.support import audiogen
from tracktiond.catalog import Catalog
from tracktiond.config import Config, config_from_mapping
from tracktiond.service.daemon import Daemon
from tracktiond.service.state import RunState
from tracktiond.service.status import (
    NOT_RUNNING,
    SCHEMA_VERSION,
    RunStateName,
    StatusDocument,
    StatusSchemaError,
    catalog_status,
    daemon_status,
)

pytestmark = pytest.mark.anyio


def key_mismatches(a: Any, b: Any, where: str = "") -> list[str]:
    """Where two JSON documents' key sets differ (empty: the same keys at every level).

    Objects must have the same keys; the items of lists (of both sides together) must all have
    the same keys. A null or an empty list on either side ends the comparison there: the schema
    allows null for what only a daemon knows, and an empty list has no items to compare.
    """
    if a is None or b is None:
        return []
    if isinstance(a, dict) and isinstance(b, dict):
        out = []
        if set(a) != set(b):
            out.append(f"{where or 'document'}: {sorted(set(a) ^ set(b))} on one side only")
        for key in sorted(set(a) & set(b)):
            out += key_mismatches(a[key], b[key], f"{where}.{key}" if where else key)
        return out
    if isinstance(a, list) and isinstance(b, list):
        items = a + b
        out = []
        for i, item in enumerate(items[1:], 1):
            out += key_mismatches(items[0], item, f"{where}[{i}]")
        return out
    if isinstance(a, dict | list) or isinstance(b, dict | list):
        return [f"{where}: {type(a).__name__} on one side, {type(b).__name__} on the other"]
    return []


def test_key_mismatches_sees_a_missing_nested_key() -> None:
    assert key_mismatches({"a": {"b": 1, "c": 2}}, {"a": {"b": 1}}) == ["a: ['c'] on one side only"]
    assert key_mismatches({"l": [{"x": 1}]}, {"l": [{"y": 1}]}) != []
    assert key_mismatches({"l": None, "s": {"k": 1}}, {"l": [{"y": 1}], "s": {"k": None}}) == []


# ---- a daemon and a library -----------------------------------------------------------------


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def make_library(root: Path) -> None:
    """Two recordings, one of them at two paths, and a broken file."""
    audiogen.make_audio(root / "Artist" / "a.flac", seconds=0.3, tags={"title": "A"})
    audiogen.make_audio(root / "Artist" / "b.mp3", seconds=0.3, seed=2)
    shutil.copyfile(root / "Artist" / "b.mp3", root / "b copy.mp3")
    audiogen.make_broken(root / "broken.ogg", "garbage")


def daemon_config(tmp_path: Path, library: Path, db_url: str) -> Config:
    return config_from_mapping(
        {
            "library": {"roots": [str(library)], "settle_interval": 0.2, "poll_interval": 60},
            "database": {"url": db_url},
            "http": {"listen": f"127.0.0.1:{free_port()}"},
            "workers": {"count": 1},
            "analysis": {"enabled": False},  # no worker processes: this is about the document
            "tagging": {"write": True},  # a tag stage that runs (it finds nothing to write)
        },
        None,
        {"XDG_STATE_HOME": str(tmp_path / "state")},
    )


async def wait_for(predicate: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            pytest.fail(f"after {timeout} s: {what}")
        await anyio.sleep(0.1)


def settled(daemon: Daemon) -> bool:
    snap = daemon.books.snapshot
    return (
        daemon.lifecycle.state is RunState.READY
        and snap.files_by_state.get("cataloged") == 3
        and snap.files_by_state.get("failed") == 1
        and snap.queue_depth == 0
        and snap.duplicate_recordings == 1
    )


def get_status(port: int) -> bytes:
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with opener.open(f"http://127.0.0.1:{port}/status", timeout=10) as resp:
        body: bytes = resp.read()
        return body


# ---- both ways, one schema ------------------------------------------------------------------


async def test_daemon_and_catalog_build_the_same_document(
    tmp_path: Path,
    library: Path,
    db_url: str,
    catalog: Catalog,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for var in ("NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID"):
        monkeypatch.delenv(var, raising=False)
    make_library(library)
    config = daemon_config(tmp_path, library, db_url)
    daemon = Daemon(config)
    async with anyio.create_task_group() as tg:
        tg.start_soon(daemon.run)
        try:
            await wait_for(lambda: settled(daemon), 60, f"daemon settled: {daemon.books.snapshot}")
            live = daemon_status(daemon)
            served = StatusDocument.from_json(
                await anyio.to_thread.run_sync(get_status, config.http.port)
            )
        finally:
            tg.cancel_scope.cancel()
    offline = await catalog_status(config, catalog)

    for doc in (live, served, offline):
        assert StatusDocument.from_json(doc.to_json()) == doc
        assert StatusDocument.from_dict(json.loads(doc.to_json())) == doc
        assert doc.schema_version == SCHEMA_VERSION
    assert key_mismatches(live.as_dict(), offline.as_dict()) == []
    assert key_mismatches(served.as_dict(), offline.as_dict()) == []
    # The list items were compared too: both sides have some.
    assert live.recent_failures and offline.recent_failures and live.roots and offline.roots

    # The catalog's facts, the same either way.
    assert served.source == live.source == "daemon" and offline.source == "catalog"
    assert live.files == offline.files and live.files["cataloged"] == 3
    assert live.recordings == offline.recordings == 2
    assert live.duplicates.recordings == offline.duplicates.recordings == 1
    assert offline.duplicates.files == 2
    assert live.queue.pending == offline.queue.pending == 0
    assert live.recent_failures == offline.recent_failures
    [failure] = offline.recent_failures
    assert failure.path == str(library / "broken.ogg") and failure.class_ == "bad_input"
    assert live.tagging.files == offline.tagging.files and offline.tagging.files
    assert live.tagging.enabled and offline.tagging.enabled
    assert not live.analysis.enabled and offline.analysis.analysed is None
    assert [r.path for r in live.roots] == [r.path for r in offline.roots] == [str(library)]
    assert live.catalog.url == offline.catalog.url

    # What only a running daemon knows: there with one, an explicit null without.
    assert live.state == "ready" and live.ready and live.pid is not None
    assert live.roots[0].mode == "live" and live.workers.count == 1
    assert live.config.last_reload.ok is True and live.recent_job_failures is not None
    assert offline.state == NOT_RUNNING and offline.ready is False
    assert offline.not_ready_reason and config.http.listen in offline.not_ready_reason
    assert (offline.pid, offline.instance, offline.started_at) == (None, None, None)
    assert offline.roots[0].mode is None and offline.workers.count is None
    assert offline.config.last_reload.ok is None and offline.recent_job_failures is None
    assert offline.graph.up is None and offline.reconciling is None


# ---- a drifted document fails loudly --------------------------------------------------------


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
async def test_from_json_refuses_a_document_that_drifted(catalog: Catalog, tmp_path: Path) -> None:
    config = config_from_mapping({"library": {"roots": [str(tmp_path)]}}, None, {})
    good = (await catalog_status(config, catalog)).as_dict()

    def refused(data: object, *fragments: str) -> None:
        with pytest.raises(StatusSchemaError) as caught:
            StatusDocument.from_dict(data)
        for fragment in fragments:
            assert fragment in str(caught.value), (fragment, str(caught.value))

    without = {k: v for k, v in good.items() if k != "queue"}
    refused(without, "missing key 'queue'")
    refused({**good, "surprise": 1}, "unknown key 'surprise'")
    refused({**good, "graph": {**good["graph"], "outbox": {"pending": "3"}}}, "graph.outbox")
    refused({**good, "recordings": True}, "recordings", "expected an integer")
    refused({**good, "files": {"cataloged": 1.5}}, "files.cataloged")
    refused({**good, "state": "sleeping"}, "state")
    refused({**good, "roots": [{"path": "/m"}]}, "roots[0]", "missing key")
    refused({**good, "schema_version": 0}, "schema_version 0")
    refused([good], "expected a JSON object")
    with pytest.raises(StatusSchemaError, match="not JSON"):
        StatusDocument.from_json("<html>")


def test_every_run_state_is_in_the_schema() -> None:
    assert set(get_args(RunStateName)) == {s.value for s in RunState} | {NOT_RUNNING}
