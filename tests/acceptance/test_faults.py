"""The fault suite: the daemon killed with SIGKILL at random moments of its work, again and again.

A library is cataloged, analysed and tagged (write-back on) by a daemon that is killed with
SIGKILL at a random moment of each run — during the first scan, the analyses, the tag writes —
and started again. After the last restart has finished the work and stopped cleanly:

- the catalog equals the disk (every file cataloged once, at its path, nothing else);
- no file is lost, duplicated or left half-written (no temporary copy of a tag write remains);
- every file's audio is byte-for-byte what it was (tag writes never touch the audio stream);
- no lease is left in any queue, and nothing is pending.

``TRACKTIOND_FAULT_KILLS`` sets the number of kills (CI: 8; a soak on the benchmark machine:
e.g. 200). The figures are in docs/reliability.md.
"""

from __future__ import annotations

import os
import random
import signal
import socket
import time
from pathlib import Path

import pytest

from tests.acceptance.test_daemon import Daemons, daemon_env, free_port, wait_until, write_config
from tests.acceptance.test_daemon import daemons as daemons  # the fixture
from tests.support import audiogen
from tracktiond.catalog import Catalog
from tracktiond.media.probe import ingest_file

pytestmark = pytest.mark.anyio

KILLS = int(os.environ.get("TRACKTIOND_FAULT_KILLS", "8"))
FORMATS = ("flac", "mp3", "ogg", "wav", "m4a")
FILES = 20


def _config(path: Path, root: Path, port: int) -> Path:
    return write_config(path, roots=[root], port=port, workers=2, analysis=True, tagging=True)


async def test_sigkill_at_random_moments_loses_nothing_and_corrupts_nothing(
    tmp_path: Path, library: Path, daemons: Daemons
) -> None:
    rng = random.Random(int(os.environ.get("TRACKTIOND_FAULT_SEED", "1234")))
    files = [
        audiogen.make_audio(
            library / f"Artist {i % 4}" / f"{i:02d}.{audiogen.EXTENSIONS[fmt].lstrip('.')}",
            fmt,
            seconds=4.0,
            freq=150.0 + 37 * i,
            seed=i,
        )
        for i, fmt in enumerate(FORMATS[i % len(FORMATS)] for i in range(FILES))
    ]
    audio_before = {str(f): ingest_file(str(f)).audio_hash for f in files}
    db_url = f"sqlite+aiosqlite:///{tmp_path / 'state' / 'catalog.db'}"
    env = daemon_env(tmp_path, db_url)
    port = free_port()
    config = _config(tmp_path / "etc" / "tracktiond.toml", library, port)

    kill_points = []
    for _ in range(KILLS):
        d = daemons.start(config, env, port)
        # Anywhere from the middle of start-up to well into the work.
        pause = rng.uniform(0.3, 4.0)
        time.sleep(pause)
        kill_points.append(round(pause, 2))
        if d.running:
            os.kill(d.pid, signal.SIGKILL)
        d.wait(15)

    last = daemons.start(config, env, port)
    last.wait_ready(60)

    def settled() -> bool:
        doc = last.status()
        tags = doc["tagging"]["files"] or {}
        done_tags = sum(v for k, v in tags.items() if k != "untagged")
        return bool(
            doc["files"].get("cataloged") == FILES
            and doc["queue"]["pending"] == 0
            and doc["analysis"]["pending"] == 0
            and doc["analysis"]["analysed"] + doc["analysis"]["failed"] == FILES
            and done_tags == FILES
        )

    await wait_until(settled, 240, lambda: f"work finished: {last.status()}", last)
    last.signal(signal.SIGTERM)
    assert last.wait(30) == 0, last.report()
    print(f"{KILLS} SIGKILLs at {kill_points} s after start: nothing lost")

    on_disk = sorted(str(p) for p in library.rglob("*") if p.is_file())
    assert on_disk == sorted(audio_before), f"files appeared or vanished: {on_disk}"
    assert not [p for p in on_disk if ".tracktiond-" in p], "a tag write left its temporary copy"
    for path, before in audio_before.items():
        after = ingest_file(path)  # parses, and hashes the audio payload alone
        assert after.audio_hash == before, f"{path}: the audio stream changed"

    catalog = await Catalog.open(db_url)
    try:
        status = await catalog.status()
        states = {k: v for k, v in status.files_by_state.items() if v}
        assert states == {"cataloged": FILES}, status.files_by_state
        assert status.recordings == FILES and status.duplicate_recordings == 0
        for path in on_disk:
            shown = await catalog.recording_for_path(path)
            assert shown is not None and shown["state"] == "cataloged", path
        assert await catalog.lease_owners(f"{socket.gethostname()}:") == [], "leases left"
        assert (await catalog.queue_stats())[0] == 0
    finally:
        await catalog.close()


def _children(pid: int) -> list[int]:
    try:
        text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    except OSError:
        return []
    return [int(c) for c in text.split()]


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


async def test_workers_of_a_killed_daemon_end_quietly(
    tmp_path: Path, library: Path, daemons: Daemons
) -> None:
    for i in range(4):
        audiogen.make_audio(library / f"long{i}.flac", seconds=60.0, freq=200.0 + 30 * i, seed=i)
    db_url = f"sqlite+aiosqlite:///{tmp_path / 'state' / 'catalog.db'}"
    port = free_port()
    d = daemons.start(
        _config(tmp_path / "etc" / "tracktiond.toml", library, port),
        daemon_env(tmp_path, db_url),
        port,
    )
    d.wait_ready(60)
    await wait_until(lambda: bool(_children(d.pid)), 60, "an analysis worker started", d)
    workers = _children(d.pid)
    os.kill(d.pid, signal.SIGKILL)
    d.wait(10)
    deadline = time.monotonic() + 10
    while any(_alive(w) for w in workers):
        assert time.monotonic() < deadline, f"workers {workers} outlived their daemon by 10 s"
        time.sleep(0.1)
    assert "Traceback" not in d.log() and "BrokenPipeError" not in d.log(), d.report()


def _peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise AssertionError(f"no VmHWM for {pid}")


async def test_a_burst_of_new_files_is_cataloged_once_in_bounded_memory(
    tmp_path: Path, library: Path, daemons: Daemons
) -> None:
    """``TRACKTIOND_FAULT_BURST`` files (CI: 2,000; a soak: 50,000) appear at once."""
    count = int(os.environ.get("TRACKTIOND_FAULT_BURST", "2000"))
    db_url = f"sqlite+aiosqlite:///{tmp_path / 'state' / 'catalog.db'}"
    port = free_port()
    config = write_config(tmp_path / "etc" / "tracktiond.toml", roots=[library], port=port)
    d = daemons.start(config, daemon_env(tmp_path, db_url), port)
    d.wait_ready(60)
    template = audiogen.make_audio(tmp_path / "template.wav", seconds=0.05, channels=1)
    data = template.read_bytes()
    for i in range(count):
        folder = library / f"drop {i // 500:03d}"
        folder.mkdir(exist_ok=True)
        # Distinct content per file: a different last sample byte pair, an honest new file.
        (folder / f"{i:06d}.wav").write_bytes(data[:-2] + i.to_bytes(4, "little")[:2])

    def cataloged() -> bool:
        return bool(d.status()["files"].get("cataloged", 0) >= count)

    await wait_until(cataloged, 60 + count / 20, lambda: f"burst cataloged: {d.status()}", d)
    doc = d.status()
    assert doc["files"].get("cataloged") == count and doc["queue"]["pending"] == 0, doc
    peak = _peak_rss_mb(d.pid)
    print(f"{count:,} files at once: all cataloged once, daemon peak RSS {peak:.0f} MB")
    assert peak < 400, f"daemon peak RSS {peak:.0f} MB for a burst of {count:,} files"
