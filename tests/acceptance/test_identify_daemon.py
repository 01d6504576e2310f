"""Done-when of set identification, the way a user sees it.

A library of tracks and a recorded set (playing four of them: one as it is, one resampled, one
stretched with key lock, one pitched) in a watched root; the user enables ``[fingerprint]``
and runs the daemon. It is killed with SIGKILL while it indexes the tracks and started again:
every track ends up in the index exactly once (its postings live in one batch, none twice, none
lost), the set gets an "auto" tracklist of the tracks it plays, in order, at their times, that
``tracktiond tracklist cue`` turns into a cue sheet; ``tracktiond identify SET --json`` finds
the same tracks; a set of unindexed music gets no entries; the metrics and ``/status`` count
what was done.
"""

from __future__ import annotations

import json
import shutil
import signal
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from tests.acceptance.test_daemon import (
    Daemons,
    daemon_env,
    free_port,
    wait_until,
    write_config,
)
from tests.acceptance.test_daemon import daemons as daemons  # the fixture
from tests.acceptance.test_tracklists_daemon import cli
from tests.integration.test_fingerprint_index import postings_by_track, write_flac
from tests.support import mixes
from tracktiond.catalog.models import fingerprint_batches, fingerprints
from tracktiond.catalog.store import Catalog

pytestmark = pytest.mark.anyio

SECONDS = 24.0
# (track, change, amount): what the set plays, in order.
PLAYED = [(0, "none", 0.0), (1, "resample", 0.04), (2, "stretch", -0.03), (3, "pitch", 1.0)]
# Tracks 4.. are in the library but not in the set: enough of them that indexing is still
# under way when the first fingerprint is recorded and the daemon is killed.
TRACKS = 14
UNINDEXED = (20, 21, 22)  # music of no indexed track: the second set plays these
FINGERPRINT = """
[fingerprint]
enabled = true
track_max_seconds = 60
identify_debounce_seconds = 0
"""


@pytest.fixture(scope="module")
def material(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[mixes.Played]]:
    """The library as FLAC files, made once: (its root, the truth of set.flac)."""
    root = tmp_path_factory.mktemp("identify-library")
    audio = {n: mixes.track(n, SECONDS) for n in (*range(TRACKS), *UNINDEXED)}
    for n in range(TRACKS):
        write_flac(
            root / "tracks" / f"{n:02}.flac", audio[n], artist=f"Artist {n}", title=f"Title {n}"
        )
    played, truth = mixes.mix(
        [(n, audio[n], kind, amount) for n, kind, amount in PLAYED], crossfade=6.0, noise_db=-40.0
    )
    write_flac(root / "sets" / "set.flac", played, artist="DJ", title="Set")
    other, _ = mixes.mix([(n, audio[n], "none", 0.0) for n in UNINDEXED], crossfade=6.0)
    write_flac(root / "sets" / "other.flac", other, artist="DJ", title="Other")
    return root, truth


async def _fingerprinted(catalog: Catalog) -> list[Any]:
    async with catalog.engine.connect() as conn:
        return list((await conn.execute(fingerprints.select())).all())


async def _auto_entries(catalog: Catalog, path: Path) -> list[Any] | None:
    found = await catalog.resolve_recording(str(path))
    if found is None:
        return None
    auto = [t for t in await catalog.tracklists_of(found[0]) if t.source == "auto"]
    return list(auto[0].entries) if auto else None


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
async def test_kill_9_while_indexing_then_the_set_lists_its_tracks(
    tmp_path: Path,
    db_url: str,
    catalog: Catalog,
    material: tuple[Path, list[mixes.Played]],
    daemons: Daemons,
) -> None:
    root = tmp_path / "music"
    shutil.copytree(material[0], root)
    truth = material[1]
    port = free_port()
    config = write_config(tmp_path / "tracktiond.toml", roots=[root], port=port, extra=FINGERPRINT)
    env = daemon_env(tmp_path, db_url)
    d = daemons.start(config, env, port)
    d.wait_ready()

    async def some_indexed() -> bool:
        return any(r.batch_id is not None for r in await _fingerprinted(catalog))

    await wait_until(some_indexed, 90, "a first track indexed", d)
    d.signal(signal.SIGKILL)
    assert d.wait(timeout=10) == -signal.SIGKILL
    at_kill = [r for r in await _fingerprinted(catalog) if r.state == "done"]
    assert len(at_kill) < TRACKS + 2, "everything was fingerprinted before kill -9 landed"

    again = daemons.start(config, env, port, name="restarted")
    again.wait_ready()

    async def both_sets_identified() -> bool:
        rows = await _fingerprinted(catalog)
        sets = [r for r in rows if r.kind == "set"]
        return len(sets) == 2 and all(r.identified_generation is not None for r in sets)

    await wait_until(both_sets_identified, 180, "both sets identified after the restart", again)

    # every track in the index exactly once: its postings live, none twice, none lost
    rows = await _fingerprinted(catalog)
    tracks = [r for r in rows if r.kind == "track"]
    assert len(tracks) == TRACKS and all(r.state == "done" for r in tracks)
    assert len({r.track_no for r in tracks}) == TRACKS
    async with catalog.engine.connect() as conn:
        batches = (await conn.execute(fingerprint_batches.select())).all()
        dead = (await conn.execute(select(func.sum(fingerprint_batches.c.dead_postings)))).scalar()
    counts = postings_by_track(batches)
    live = {r.track_no: r.postings for r in tracks}
    assert {t: counts.get(t) for t in live} == live, f"{len(at_kill)} done at the kill"
    assert sum(counts.values()) - sum(live.values()) == (dead or 0)

    # the set's "auto" tracklist: the four tracks it plays, in order, at their times
    entries = await _auto_entries(catalog, root / "sets" / "set.flac")
    assert entries is not None
    named = [e for e in entries if not e.entry.unknown]
    assert [e.entry.title for e in named] == [f"Title {p.track}" for p in truth], entries
    for stored, played in zip(named, truth, strict=True):
        assert stored.path == str(root / "tracks" / f"{played.track:02}.flac")
        assert abs((stored.entry.start or 0) - played.start) <= 5.0, (stored, played)
    # the set of unindexed music: identified, nothing named
    other = await _auto_entries(catalog, root / "sets" / "other.flac")
    assert not [e for e in other or [] if not e.entry.unknown], other

    # the cue sheet of the auto list
    cue = cli(env, config, "tracklist", "cue", str(root / "sets" / "set.flac"))
    assert cue.returncode == 0, cue.stderr
    titles = [
        line.strip().removeprefix("TITLE ").strip('"')
        for line in cue.stdout.splitlines()
        if line.startswith("    TITLE ")
    ]
    assert titles == [f"Title {p.track}" for p in truth], cue.stdout
    assert cue.stdout.count("INDEX 01") == len(named), cue.stdout

    # the one-shot command agrees with the daemon
    shot = cli(env, config, "identify", str(root / "sets" / "set.flac"), "--json")
    assert shot.returncode == 0, shot.stderr
    [doc] = json.loads(shot.stdout)
    found = [e for e in doc["entries"] if not e["unknown"]]
    assert [e["title"] for e in found] == [f"Title {p.track}" for p in truth], doc
    assert [e["library_path"] for e in found] == [s.path for s in named]
    for e, played in zip(found, truth, strict=True):
        assert abs(e["speed"] - mixes.speed_of(played)) <= 0.01, e
    assert doc["index"]["tracks"] == TRACKS
    text = cli(env, config, "identify", str(root / "sets" / "set.flac"))
    assert text.returncode == 0, text.stderr
    assert f"{len(truth)} of the library's tracks found" in text.stdout, text.stdout
    lines = [line for line in text.stdout.splitlines() if "speed " in line]
    assert [line.split("  ")[2] for line in lines] == [
        f"Artist {p.track} - Title {p.track}" for p in truth
    ]

    # what the daemon reports (the index gauges are refreshed by its bookkeeping)
    await wait_until(
        lambda: again.metrics().total("tracktiond_fingerprint_tracks") == TRACKS,
        30,
        "tracktiond_fingerprint_tracks counts every track",
        again,
    )
    metrics = again.metrics()
    assert metrics.total("tracktiond_identify_entries_total") >= len(truth)
    section = again.status()["fingerprint"]
    assert section["enabled"] is True
    assert (section["tracks"], section["sets"]) == (TRACKS, 2)


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_identify_without_an_index_says_what_to_do(
    tmp_path: Path, db_url: str, cli_env: dict[str, str], material: tuple[Path, Any]
) -> None:
    config = write_config(tmp_path / "t.toml", roots=[tmp_path], port=free_port())
    done = cli(cli_env, config, "identify", str(material[0] / "sets" / "set.flac"))
    assert done.returncode == 1
    assert "fingerprint index is empty" in done.stderr and "[fingerprint]" in done.stderr
    missing = cli(cli_env, config, "identify", str(tmp_path / "nope.flac"))
    assert missing.returncode == 66 and "nope.flac: no such file" in missing.stderr
