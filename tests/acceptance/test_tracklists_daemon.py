"""Done-when of tracklists, the way a user sees it: drop ``set.flac`` and ``set.cue`` (or a
pasted ``set.txt``) into a watched root of the running daemon; within seconds ``tracktiond
tracklist show --json`` lists the entries with times and the library files they match, HTTP
``/tracklists/{recording}`` says the same, the metrics count them, an edited sheet becomes a
new version; ``tracklist cue --write`` writes a sheet that the daemon reads back identically
(no new version),
and ``tracklist export --rekordbox`` writes XML pyrekordbox reads with the right paths."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest

from tests.acceptance.test_daemon import Daemons, daemon_env, free_port, wait_until, write_config
from tests.acceptance.test_daemon import daemons as daemons  # the fixture
from tests.support import audiogen, sheets

pytestmark = pytest.mark.anyio

SHEET = sheets.mixxx("set.flac").replace("61:10:37", "00:03:00").replace("125:30:12", "00:06:00")


def cli(env: dict[str, str], config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tracktiond", *args, "--config", str(config)],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def show(env: dict[str, str], config: Path, path: Path) -> dict[str, Any] | None:
    done = cli(env, config, "tracklist", "show", str(path), "--json")
    return json.loads(done.stdout) if done.returncode == 0 else None


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
async def test_dropped_set_and_sheet_are_listed_matched_written_and_exported(
    tmp_path: Path, db_url: str, daemons: Daemons
) -> None:
    root = tmp_path / "music"
    staging = tmp_path / "staging"
    for d in (root / "tracks", staging):
        d.mkdir(parents=True)
    mine = {
        title: audiogen.make_audio(
            root / "tracks" / f"{n}.mp3",
            seconds=1.0,
            seed=n,
            tags={"artist": artist, "title": title},
        )
        for n, (artist, title) in enumerate(
            [("Künstler Eins", "Opening"), ("Artist Two", "Middle")]
        )
    }
    port = free_port()
    config = write_config(tmp_path / "tracktiond.toml", roots=[root], port=port)
    env = daemon_env(tmp_path, db_url)
    daemon = daemons.start(config, env, port)
    daemon.wait_ready()

    # the user drops the set and its sheet in (written elsewhere, moved in: as a copy ends)
    audiogen.make_audio(staging / "set.flac", seconds=8.0)
    (staging / "set.cue").write_text(SHEET, encoding="utf-8")
    shutil.move(staging / "set.flac", root / "set.flac")
    shutil.move(staging / "set.cue", root / "set.cue")

    def listed() -> bool:
        doc = show(env, config, root / "set.flac")
        return doc is not None and len(doc["tracklists"]) == 1

    await wait_until(listed, 30, "the set's tracklist is listed", daemon)
    doc = show(env, config, root / "set.flac")
    assert doc is not None
    [tl] = doc["tracklists"]
    assert [
        (e["start"], e["title"], e["match"]["status"], e["match"]["path"]) for e in tl["entries"]
    ] == [
        (0.0, "Opening", "matched", str(mine["Opening"])),
        (3.0, "Middle", "matched", str(mine["Middle"])),
        (6.0, "Closing", "unmatched", None),
    ]
    status, body = daemon.get("/tracklists/" + quote(str(root / "set.flac"), safe=""))
    assert status == 200 and json.loads(body)["tracklists"][0]["id"] == tl["id"]
    assert daemon.get("/tracklists/" + quote("/no/such.flac", safe=""))[0] == 404
    # The catalog gauges are a snapshot the daemon refreshes (at most every 2 s after a change):
    # the one taken while the sheet was still pending may be the newest for a moment.
    await wait_until(
        lambda: daemon.metrics().total("tracktiond_tracklists", source="cue") == 1,
        15,
        "tracktiond_tracklists counts the sheet",
        daemon,
    )
    samples = daemon.metrics()
    assert samples.total("tracktiond_tracklists", source="cue") == 1
    assert samples.total("tracktiond_tracklist_entries", match="matched") == 2

    # an edit of the sheet: a new version; the old one is history
    edited = SHEET.replace('TITLE "Closing"', 'TITLE "Closing (Edit)"')
    tmp = root / ".set.cue.part"
    tmp.write_text(edited, encoding="utf-8")
    os.replace(tmp, root / "set.cue")

    def versioned() -> bool:
        doc = show(env, config, root / "set.flac")
        return doc is not None and doc["tracklists"][0]["version"] == 2

    await wait_until(versioned, 30, "the edited sheet became version 2", daemon)

    # the cue writer: over the user's sheet only when told; ours reads back to the same entries
    refused = cli(env, config, "tracklist", "cue", str(root / "set.flac"), "--write")
    assert refused.returncode == 1 and "was not written by tracktiond" in refused.stderr
    assert (root / "set.cue").read_text(encoding="utf-8") == edited
    written = cli(env, config, "tracklist", "cue", str(root / "set.flac"), "--write", "--force")
    assert written.returncode == 0, written.stderr
    assert "written by tracktiond" in (root / "set.cue").read_text(encoding="utf-8")

    # the daemon reads our sheet back: it says exactly what version 2 says, so no version 3
    await wait_until(
        lambda: daemon.logged("(unchanged)"), 30, "the written sheet was read back", daemon
    )
    doc = show(env, config, root / "set.flac")
    assert doc is not None
    [again] = doc["tracklists"]
    assert again["version"] == 2
    assert [(e["start"], e["artist"], e["title"]) for e in again["entries"]] == [
        (0.0, "Künstler Eins", "Opening"),
        (3.0, "Artist Two", "Middle"),
        (6.0, "Artist Three", "Closing (Edit)"),
    ]

    exported = cli(env, config, "tracklist", "export", "--rekordbox", str(tmp_path / "rb.xml"))
    assert exported.returncode == 0, exported.stderr
    from pyrekordbox.rbxml import RekordboxXml

    xml = RekordboxXml(str(tmp_path / "rb.xml"))
    locations = {t["Location"] for t in xml.get_tracks()}
    assert locations == {str(p).lstrip("/") for p in (*mine.values(), root / "set.flac")}
