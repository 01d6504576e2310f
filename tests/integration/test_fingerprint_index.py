"""The fingerprint index in the catalog, on both backends, driven through its two stages.

Real FLAC files of generated tracks and of a mix of them (one track resampled, one stretched
with key lock, one pitched) are cataloged by a real scan, fingerprinted in the real worker
processes and identified against the catalog's index; the set gets an "auto" tracklist naming
the tracks by their tags, in order, with their times. A moved and retagged track is not
fingerprinted again; a deleted one leaves the index, and the set's list loses it; small
batches are merged without losing a posting; SQLite and PostgreSQL give the same list.
"""

from __future__ import annotations

import shutil
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import mutagen.flac
import numpy as np
import pytest
import soundfile

from tests.support import mixes
from tracktiond.catalog.fingerprints import MERGE_COUNT
from tracktiond.catalog.leases import LEASE, make_owner_id
from tracktiond.catalog.models import fingerprint_batches, fingerprints
from tracktiond.catalog.store import Catalog
from tracktiond.config import Config
from tracktiond.fingerprint.postings import Batch
from tracktiond.pipeline.identifying import FingerprintStage, IdentifyStage
from tracktiond.pipeline.scan import Scanner
from tracktiond.pipeline.stage import Finished

pytestmark = pytest.mark.anyio

SECONDS = 24.0
PLAYED = [(0, "none", 0.0), (1, "resample", 0.04), (2, "stretch", -0.03), (3, "pitch", 1.0)]
INDEXED = range(6)  # 4 and 5 are in the library but not in the mix


def write_flac(path: Path, audio: np.ndarray[Any, Any], **tags: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    soundfile.write(str(path), audio, mixes.RATE, subtype="PCM_16", format="FLAC")
    if tags:
        flac = mutagen.flac.FLAC(str(path))
        for key, value in tags.items():
            flac[key] = value
        flac.save()
    return path


@pytest.fixture(scope="module")
def material(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[mixes.Played]]:
    """Tracks and a set as FLAC files, made once: (the library, the set's truth)."""
    root = tmp_path_factory.mktemp("fingerprint-library")
    tracks = {n: mixes.track(n, SECONDS) for n in INDEXED}
    for n, audio in tracks.items():
        write_flac(
            root / "tracks" / f"track{n}.flac", audio, artist=f"Artist {n}", title=f"Title {n}"
        )
    audio, truth = mixes.mix(
        [(n, tracks[n], kind, amount) for n, kind, amount in PLAYED],
        crossfade=6.0,
        noise_db=-40.0,
    )
    write_flac(root / "sets" / "set.flac", audio, artist="DJ", title="Set")
    return root, truth


def _config() -> Config:
    return Config.model_validate(
        {"fingerprint": {"enabled": True, "track_max_seconds": 60, "identify_debounce_seconds": 0}}
    )


@pytest.fixture
async def library(material: tuple[Path, Any], tmp_path: Path) -> Path:
    root = tmp_path / "library"
    shutil.copytree(material[0], root)
    return root


@pytest.fixture
async def stages(catalog: Catalog) -> AsyncIterator[tuple[FingerprintStage, IdentifyStage]]:
    config = _config()
    fingerprint = FingerprintStage(catalog, config)
    try:
        yield fingerprint, IdentifyStage(catalog, config)
    finally:
        await fingerprint.aclose()


async def _drain(stage: Any, owner: str, *, batch: int = 100) -> list[Any]:
    """Claim and process everything due, recording ``batch`` jobs per write."""
    events = []
    while jobs := await stage.claim(owner, batch, LEASE):
        done = [Finished(job, await stage.process(job), 0.1) for job in jobs]
        events += await stage.record(owner, done)
    return events


async def _set_list(catalog: Catalog, library: Path) -> list[Any]:
    found = await catalog.resolve_recording(str(library / "sets" / "set.flac"))
    assert found is not None
    [auto] = [t for t in await catalog.tracklists_of(found[0]) if t.source == "auto"]
    return list(auto.entries)


async def _index_everything(
    catalog: Catalog, library: Path, stages: tuple[FingerprintStage, IdentifyStage]
) -> str:
    await Scanner(catalog, concurrency=2).scan([str(library)])
    owner = make_owner_id()
    events = await _drain(stages[0], owner)
    assert sorted(e.outcome for e in events) == ["set"] + ["track"] * len(INDEXED), events
    await _drain(stages[1], owner)
    return owner


async def test_a_set_gets_an_auto_tracklist_of_the_library_tracks_it_plays(
    catalog: Catalog,
    library: Path,
    material: tuple[Path, list[mixes.Played]],
    stages: tuple[FingerprintStage, IdentifyStage],
) -> None:
    await _index_everything(catalog, library, stages)
    entries = await _set_list(catalog, library)
    named = [e for e in entries if not e.entry.unknown]
    truth = material[1]
    assert [e.entry.title for e in named] == [f"Title {p.track}" for p in truth]
    assert [e.entry.artist for e in named] == [f"Artist {p.track}" for p in truth]
    for stored, played in zip(named, truth, strict=True):
        assert stored.match.status == "matched"
        assert stored.path == str(library / "tracks" / f"track{played.track}.flac")
        assert abs((stored.entry.start or 0) - played.start) <= 2.0, (stored, played)
        assert abs(stored.entry.extra["speed"] - mixes.speed_of(played)) <= 0.01
        assert abs(stored.entry.extra["pitch_semitones"] - mixes.semitones_of(played)) <= 0.3
        assert 0.5 < (stored.entry.confidence or 0) <= 1.0
    stats = await catalog.index_stats()
    assert (stats.tracks, stats.sets, stats.sets_identified) == (len(INDEXED), 1, 1)
    assert stats.index_bytes > 0 and stats.indexed_seconds == pytest.approx(6 * SECONDS, 0.01)


async def test_a_moved_and_retagged_track_is_not_fingerprinted_again(
    catalog: Catalog, library: Path, stages: tuple[FingerprintStage, IdentifyStage]
) -> None:
    owner = await _index_everything(catalog, library, stages)
    before = await _rows(catalog)
    moved = library / "elsewhere" / "renamed.flac"
    moved.parent.mkdir()
    (library / "tracks" / "track1.flac").rename(moved)
    flac = mutagen.flac.FLAC(str(moved))
    flac["title"] = "Retitled"
    flac.save()
    await Scanner(catalog, concurrency=2).scan([str(library)])
    assert await _drain(stages[0], owner) == []
    assert await _rows(catalog) == before  # same streams, track numbers, batches
    assert (await catalog.index_stats()).tracks == len(INDEXED)


async def test_a_deleted_track_leaves_the_index_and_the_set_list(
    catalog: Catalog, library: Path, stages: tuple[FingerprintStage, IdentifyStage]
) -> None:
    owner = await _index_everything(catalog, library, stages)
    (library / "tracks" / "track2.flac").unlink()
    await Scanner(catalog, concurrency=2).scan([str(library)])
    assert await catalog.retire_orphaned_fingerprints() == 1
    assert (await catalog.index_stats()).tracks == len(INDEXED) - 1
    await _drain(stages[1], owner)  # the index changed: the set is identified again
    titles = [e.entry.title for e in await _set_list(catalog, library) if not e.entry.unknown]
    assert titles == ["Title 0", "Title 1", "Title 3"]


async def test_small_batches_are_merged_and_keep_every_live_posting(
    catalog: Catalog, library: Path, stages: tuple[FingerprintStage, IdentifyStage]
) -> None:
    await Scanner(catalog, concurrency=2).scan([str(library)])
    owner = make_owner_id()
    await _drain(stages[0], owner, batch=1)  # one batch per track: merges on the way
    async with catalog.engine.connect() as conn:
        batches = (await conn.execute(fingerprint_batches.select())).all()
        rows = (await conn.execute(fingerprints.select())).all()
    assert 0 < len(batches) < MERGE_COUNT
    counts = postings_by_track(batches)
    live = {r.track_no: r.postings for r in rows if r.track_no is not None}
    assert len(live) == len(INDEXED)
    assert counts == live  # nothing lost, nothing twice, nothing dead left behind
    # and the merged index still finds the set's tracks
    await _drain(stages[1], owner)
    titles = [e.entry.title for e in await _set_list(catalog, library) if not e.entry.unknown]
    assert titles == ["Title 0", "Title 1", "Title 2", "Title 3"]


def postings_by_track(batches: Any) -> dict[int, int]:
    """Postings per track number, decoded from every stored batch row (dead ones included)."""
    counts: dict[int, int] = {}
    for row in batches:
        batch = Batch.decode(bytes(row.keys), bytes(row.postings))
        for track, n in zip(*np.unique(batch.tracks(), return_counts=True), strict=True):
            counts[int(track)] = counts.get(int(track), 0) + int(n)
    return counts


async def _rows(catalog: Catalog) -> list[tuple[Any, ...]]:
    async with catalog.engine.connect() as conn:
        rows = await conn.execute(fingerprints.select().order_by(fingerprints.c.audio_hash))
        return [(r.audio_hash, r.track_no, r.batch_id, r.postings, r.settings) for r in rows]
