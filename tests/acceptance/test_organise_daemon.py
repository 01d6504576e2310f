"""The daemon's inbox flow (`[organise] auto`): files dropped into an inbox root are cataloged
once, moved into the library by the pattern with their sidecars, and never read again — the
daemon's own moves keep their recordings and do not trigger anything."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import anyio
import pytest

from tests.acceptance.test_daemon import (
    Daemons,
    daemon_env,
    free_port,
    wait_jobs,
    wait_until,
)
from tests.support import audiogen
from tracktiond.catalog import Catalog

pytestmark = pytest.mark.anyio


def write_config(path: Path, library: Path, port: int) -> Path:
    path.write_text(
        f"""\
[library]
roots = [{json.dumps(str(library))}]
settle_interval = 0.5
poll_interval = 60

[http]
listen = "127.0.0.1:{port}"

[analysis]
enabled = false

[organise]
auto = true
inbox = [{json.dumps(str(library / "inbox"))}]
library = {json.dumps(str(library / "lib"))}
pattern = "{{artist}}/{{album}}/{{track:02}} {{title}}"
"""
    )
    return path


@pytest.fixture
def daemons(tmp_path: Path) -> Iterator[Daemons]:
    pool = Daemons(tmp_path)
    try:
        yield pool
    finally:
        pool.kill_all()


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
async def test_inbox_files_are_moved_once_cataloged_and_never_read_again(
    tmp_path: Path, db_url: str, catalog: Catalog, library: Path, daemons: Daemons
) -> None:
    (library / "inbox").mkdir()
    port = free_port()
    config = write_config(tmp_path / "t.toml", library, port)
    d = daemons.start(config, daemon_env(tmp_path, db_url), port)
    d.wait_ready()
    staging = tmp_path / "staging"
    for n in (1, 2, 3):
        audiogen.make_audio(
            staging / f"rip{n}.flac",
            seconds=0.3,
            seed=n,
            tags={
                "artist": "Artist",
                "album": "Album",
                "title": f"Song {n}",
                "tracknumber": str(n),
            },
        )
    (staging / "rip1.lrc").write_text("[00:00] la\n")
    (staging).rename(library / "inbox" / "download")  # arrives at once, as a move does

    album = library / "lib" / "Artist" / "Album"
    wanted = ["01 Song 1.flac", "01 Song 1.lrc", "02 Song 2.flac", "03 Song 3.flac"]

    def placed() -> bool:
        return album.is_dir() and sorted(p.name for p in album.iterdir()) == wanted

    await wait_until(placed, 30, lambda: f"library holds {sorted(library.rglob('*'))}", d)
    await wait_until(
        lambda: d.metrics().total("tracktiond_jobs_processed_total", stage="organise") >= 3,
        15,
        "organise jobs",
        d,
    )
    assert (
        d.metrics().total("tracktiond_jobs_processed_total", stage="organise", outcome="moved") == 3
    )
    assert not (library / "inbox" / "download").exists()  # emptied, removed; the inbox stays
    assert (library / "inbox").is_dir()
    # The watcher saw three deletions and four arrivals; none is read again.
    await anyio.sleep(2.0)
    await wait_jobs(d, 3, "inbox files ingested once")
    for name in wanted:
        if name.endswith(".flac"):
            row = await catalog.recording_for_path(str(album / name))
            assert row is not None and row["state"] == "cataloged", (name, row)
    st = await catalog.status()
    assert st.recordings == 3 and st.files_by_state.get("missing", 0) == 0
    assert st.files_by_state.get("cataloged") == 3
