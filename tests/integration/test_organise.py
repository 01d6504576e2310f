"""Organise on the real filesystem and a real catalog (SQLite and PostgreSQL): plan, apply,
undo, collisions, case-only renames, long and reserved names, non-UTF-8 names, sidecars and cue
sheets, a second filesystem, and a plan interrupted halfway.

Files are real generated audio (tests/support/audiogen.py), cataloged by the real scanner."""

from __future__ import annotations

import hashlib
import os
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from mutagen.flac import FLAC
from sqlalchemy import select

from tests.support import audiogen, mounts
from tracktiond.catalog import Catalog
from tracktiond.catalog.models import tracklist_sources
from tracktiond.catalog.plans import StepState
from tracktiond.config import TracklistsConfig, config_from_mapping
from tracktiond.organise.journal import Journal, apply_plan, recover, undo_plan
from tracktiond.organise.plans import Planner
from tracktiond.organise.settings import Settings, settings_from_config
from tracktiond.pipeline.scan import Scanner
from tracktiond.pipeline.tracklisting import read_due_sources

pytestmark = pytest.mark.anyio


def tree(root: Path) -> dict[str, str]:
    """Every file under ``root`` (relative path -> sha256), hidden ones included."""
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def settings_for(library: Path, **organise: Any) -> Settings:
    config = config_from_mapping(
        {"library": {"roots": [str(library)]}, "organise": organise}, None, environ={}
    )
    return settings_from_config(config)


async def scan(catalog: Catalog, *paths: Path) -> dict[str, object]:
    summary = await Scanner(catalog, concurrency=2).scan([str(p) for p in paths])
    return summary.as_dict()


async def plan(catalog: Catalog, settings: Settings, *paths: Path) -> Any:
    planner = Planner(settings)
    async for chunk in catalog.organise_sources([str(p) for p in paths] or list(settings.roots)):
        planner.add_all(chunk)
    return planner.finish()


async def organise(
    catalog: Catalog, settings: Settings, *paths: Path
) -> tuple[int, list[Any], Any]:
    draft = await plan(catalog, settings, *paths)
    owner = f"test:{os.getpid()}:{uuid.uuid4().hex[:6]}"
    plan_id = await catalog.create_plan("organise", [], draft.steps, {}, owner)
    journal = Journal(frozenset(settings.protected_dirs), batch=settings.journal_batch)
    await apply_plan(catalog, plan_id, owner, journal)
    return plan_id, await catalog.plan_steps(plan_id), draft


async def undo(catalog: Catalog, settings: Settings, plan_id: int) -> list[Any]:
    journal = Journal(frozenset(settings.protected_dirs))
    await undo_plan(catalog, plan_id, f"test:{os.getpid()}:u", journal)
    return await catalog.plan_steps(plan_id)


def album(root: Path) -> list[Path]:
    """An album directory with audio, sidecars, a cue sheet naming its audio, and a cover."""
    d = root / "incoming" / "rip"
    made = [
        audiogen.make_audio(
            d / f"track{n}.flac",
            seconds=0.2,
            seed=n,
            tags={
                "artist": "Björk",
                "albumartist": "Björk",
                "album": "Vespertine",
                "title": f"Song {n}",
                "tracknumber": f"{n}/2",
                "date": "2001",
            },
        )
        for n in (1, 2)
    ]
    (d / "track1.lrc").write_text("[00:00.00] la\n")
    (d / "track1.log").write_bytes(b"EAC log\r\n")
    (d / "track1.cue").write_bytes(b'PERFORMER "Bj\xf6rk"\r\nFILE "track1.flac" WAVE\r\n')
    (d / "cover.jpg").write_bytes(b"\xff\xd8jpeg")
    return made


async def test_dry_run_changes_nothing_and_apply_then_undo_restores_every_byte(
    catalog: Catalog, library: Path
) -> None:
    album(library)
    await scan(catalog, library)
    settings = settings_for(library)
    before = tree(library)
    draft = await plan(catalog, settings)
    assert tree(library) == before  # planning touches nothing
    assert await catalog.plans() == []
    targets = {Path(s.target).relative_to(library).as_posix() for s in draft.steps if s.target}
    base = "Björk/Vespertine"
    assert targets == {
        f"{base}/01 Song 1.flac",
        f"{base}/01 Song 1.lrc",
        f"{base}/01 Song 1.log",
        f"{base}/01 Song 1.cue",
        f"{base}/02 Song 2.flac",
        f"{base}/cover.jpg",
    }

    plan_id, steps, _ = await organise(catalog, settings)
    assert {s.state for s in steps} == {StepState.DONE}
    after = tree(library)
    assert set(after) == targets  # the emptied source directories are gone
    sheet = (library / base / "01 Song 1.cue").read_bytes()
    assert sheet == b'PERFORMER "Bj\xf6rk"\r\nFILE "01 Song 1.flac" WAVE\r\n'
    # the catalog followed: same recordings at the new paths, nothing to read again
    row = await catalog.recording_for_path(str(library / base / "02 Song 2.flac"))
    assert row is not None and row["state"] == "cataloged"
    rescan = await scan(catalog, library)
    assert (rescan["unchanged"], rescan["new"], rescan["bytes_read"]) == (2, 0, 0)

    await undo(catalog, settings, plan_id)
    assert tree(library) == before
    assert not (library / "Björk").exists()
    again = await scan(catalog, library)
    assert (again["unchanged"], again["new"], again["missing"]) == (2, 0, 0)


async def test_collisions_are_numbered_or_skipped_and_always_reported(
    catalog: Catalog, library: Path
) -> None:
    tags = {"artist": "A", "album": "B", "title": "Same", "tracknumber": "1"}
    audiogen.make_audio(library / "in" / "x.mp3", seconds=0.2, seed=1, tags=tags)
    audiogen.make_audio(library / "in" / "y.mp3", seconds=0.2, seed=2, tags=tags)
    occupied = library / "A" / "B" / "01 Same.mp3"
    occupied.parent.mkdir(parents=True)
    occupied.write_bytes(b"someone else's file")
    await scan(catalog, library / "in")
    draft = await plan(catalog, settings_for(library, collisions="skip"))
    skipped = [s for s in draft.steps if s.state == StepState.SKIPPED]
    assert len(skipped) == 2 and all("collision" in (s.reason or "") for s in skipped)

    _, steps, _ = await organise(catalog, settings_for(library))
    moved = sorted(Path(s.target).name for s in steps if s.state == StepState.DONE)
    assert moved == ["01 Same (2).mp3", "01 Same (3).mp3"]
    assert all("numbered" in (s.note or "") for s in steps)
    assert occupied.read_bytes() == b"someone else's file"


async def test_case_only_rename_and_target_equal_to_source(catalog: Catalog, library: Path) -> None:
    audiogen.make_audio(library / "a" / "b" / "song.ogg", seconds=0.2, tags={"title": "Song"})
    audiogen.make_audio(
        library / "a" / "b" / "Kept.ogg", seconds=0.2, seed=3, tags={"title": "Kept"}
    )
    await scan(catalog, library)
    settings = settings_for(library, pattern="a/b/{title}")
    plan_id, steps, draft = await organise(catalog, settings)
    assert draft.counts["in_place"] == 1  # Kept.ogg: target == source, nothing done
    [step] = steps
    assert step.method == "case" and step.state == StepState.DONE
    assert sorted(os.listdir(library / "a" / "b")) == ["Kept.ogg", "Song.ogg"]
    await undo(catalog, settings, plan_id)
    assert sorted(os.listdir(library / "a" / "b")) == ["Kept.ogg", "song.ogg"]


async def test_long_reserved_and_undecodable_names(catalog: Catalog, library: Path) -> None:
    audiogen.make_audio(
        library / "in" / "long.flac", seconds=0.2, tags={"title": "東京" * 100, "artist": "CON"}
    )
    bad = os.path.join(os.fsencode(library / "in"), b"caf\xe9.wav")
    shutil.copyfile(audiogen.make_audio(library / "w.wav", seconds=0.2, seed=5), bad)
    os.unlink(library / "w.wav")
    await scan(catalog, library)
    settings = settings_for(library, pattern="{artist}/{title}", portable=True)
    _, steps, draft = await organise(catalog, settings)
    [moved] = [s for s in steps if s.state == StepState.DONE]
    name = Path(moved.target).name
    assert Path(moved.target).parent.name == "CON_"  # a Windows device name, made safe
    assert name.endswith(".flac") and len(name.encode()) <= 255 and len(name) <= 255
    reasons = [s.reason or "" for s in draft.steps if s.state == StepState.SKIPPED]
    assert any("UTF-8" in r for r in reasons), reasons  # the undecodable name, with the reason
    assert os.path.exists(bad)  # untouched


async def test_missing_field_and_changed_source_are_skipped_with_reasons(
    catalog: Catalog, library: Path
) -> None:
    audiogen.make_audio(library / "in" / "a.flac", seconds=0.2, seed=1, tags={"title": "A"})
    changed = audiogen.make_audio(
        library / "in" / "b.flac", seconds=0.2, seed=2, tags={"title": "B", "album": "X"}
    )
    await scan(catalog, library)
    with open(changed, "ab") as fh:
        fh.write(b"\0")  # changed after it was cataloged
    draft = await plan(catalog, settings_for(library, pattern="{album}/{title}"))
    reasons = sorted(s.reason or "" for s in draft.steps)
    assert "{album} has no value" in reasons[0]
    assert "changed since it was cataloged" in reasons[1]


async def test_source_changed_between_plan_and_apply_fails_that_step_only(
    catalog: Catalog, library: Path
) -> None:
    a = audiogen.make_audio(library / "in" / "a.flac", seconds=0.2, seed=1, tags={"title": "A"})
    audiogen.make_audio(library / "in" / "b.flac", seconds=0.2, seed=2, tags={"title": "B"})
    await scan(catalog, library)
    settings = settings_for(library, pattern="out/{title}")
    draft = await plan(catalog, settings)
    os.utime(a, ns=(0, 0))  # touched after planning
    owner = f"test:{os.getpid()}:c"
    plan_id = await catalog.create_plan("organise", [], draft.steps, {}, owner)
    await apply_plan(catalog, plan_id, owner, Journal(frozenset(settings.protected_dirs)))
    by_name = {Path(s.source).name: s for s in await catalog.plan_steps(plan_id)}
    assert by_name["a.flac"].state == StepState.FAILED
    assert "changed after the plan was made" in (by_name["a.flac"].reason or "")
    assert by_name["b.flac"].state == StepState.DONE
    assert a.exists() and (library / "out" / "B.flac").exists()


async def test_interrupted_plan_is_settled_and_finished(catalog: Catalog, library: Path) -> None:
    made = [
        audiogen.make_audio(
            library / "in" / f"{n}.flac", seconds=0.2, seed=n, tags={"title": f"T{n}"}
        )
        for n in range(4)
    ]
    await scan(catalog, library)
    settings = settings_for(library, pattern="out/{title}")
    before = {hashlib.sha256(p.read_bytes()).hexdigest() for p in made}
    draft = await plan(catalog, settings)
    dead = f"{os.uname().nodename}:999999:dead"
    plan_id = await catalog.create_plan("organise", [], draft.steps, {}, dead)
    steps = await catalog.plan_steps(plan_id)
    # What a kill -9 can leave: three steps journalled as moving, and on disk one not started,
    # one renamed, one hard-linked but not yet unlinked.
    await catalog.begin_steps(plan_id, dead, StepState.MOVING, steps[:3])
    (library / "out").mkdir()
    os.rename(steps[1].source, steps[1].target)
    os.link(steps[2].source, steps[2].target)
    finished = await recover(catalog, f"test:{os.getpid()}:r", Journal(frozenset()))
    assert [f.id for f in finished] == [plan_id]
    assert {s.state for s in await catalog.plan_steps(plan_id)} == {StepState.DONE}
    out = sorted(os.listdir(library / "out"))
    assert out == ["T0.flac", "T1.flac", "T2.flac", "T3.flac"]
    assert {hashlib.sha256((library / "out" / n).read_bytes()).hexdigest() for n in out} == before
    assert not (library / "in").exists()


async def sources(catalog: Catalog) -> list[tuple[str, str, str, str]]:
    """Every tracklist source row: (path, dir, kind, state)."""
    t = tracklist_sources
    async with catalog.engine.connect() as conn:
        rows = await conn.execute(select(t.c.path, t.c.dir, t.c.kind, t.c.state).order_by(t.c.id))
        return [(r.path, r.dir, r.kind, r.state) for r in rows]


async def test_a_moved_cue_sheet_takes_its_tracklist_source_along_and_back(
    catalog: Catalog, library: Path
) -> None:
    """The tracklist source row of a moved sheet takes the sheet's new path (and its old one on
    undo), so the tracklist stage neither loses the sheet nor reads it as a new source: after a
    re-scan and a tracklist pass the set still has one tracklist, version 1, from the new path."""
    config = TracklistsConfig()
    old_set = audiogen.make_audio(
        library / "in" / "set.flac", seconds=8.0, tags={"artist": "DJ", "title": "Night"}
    )
    old_cue = library / "in" / "set.cue"
    old_cue.write_text(
        'FILE "set.flac" WAVE\nTRACK 01 AUDIO\nTITLE "One"\nINDEX 01 00:00:00\n'
        'TRACK 02 AUDIO\nTITLE "Two"\nINDEX 01 00:04:00\n'
    )
    await scan(catalog, library)
    [read] = await read_due_sources(catalog, config)
    assert read["outcome"] == "new"
    assert await sources(catalog) == [(str(old_cue), str(old_cue.parent), "cue", "done")]

    settings = settings_for(library, pattern="Sets/{artist} - {title}")
    plan_id, steps, _ = await organise(catalog, settings)
    assert {s.state for s in steps} == {StepState.DONE}
    new_set, new_cue = library / "Sets" / "DJ - Night.flac", library / "Sets" / "DJ - Night.cue"
    assert new_cue.read_text().startswith('FILE "DJ - Night.flac" WAVE')
    assert await sources(catalog) == [(str(new_cue), str(new_cue.parent), "cue", "done")]

    async def one_tracklist_from(path: Path, audio: Path) -> None:
        found = await catalog.resolve_recording(str(audio))
        assert found is not None
        history = await catalog.tracklists_of(found[0], history=True)
        assert [(t.version, t.current, t.origin) for t in history] == [(1, True, str(path))]

    await one_tracklist_from(new_cue, new_set)
    # The walk finds the sheet where the catalog says it is: the rewritten FILE line makes it
    # due again, and reading it says what it said before (no second source, no new version).
    await scan(catalog, library)
    assert [r["outcome"] for r in await read_due_sources(catalog, config)] in ([], ["unchanged"])
    assert await sources(catalog) == [(str(new_cue), str(new_cue.parent), "cue", "done")]
    await one_tracklist_from(new_cue, new_set)

    await undo(catalog, settings, plan_id)
    assert old_cue.exists() and old_set.exists() and not new_cue.exists()
    assert await sources(catalog) == [(str(old_cue), str(old_cue.parent), "cue", "done")]
    await one_tracklist_from(old_cue, old_set)
    await scan(catalog, library)
    assert [r["outcome"] for r in await read_due_sources(catalog, config)] in ([], ["unchanged"])
    assert await sources(catalog) == [(str(old_cue), str(old_cue.parent), "cue", "done")]
    await one_tracklist_from(old_cue, old_set)


async def test_a_sheet_embedded_in_a_moved_file_follows_it(catalog: Catalog, library: Path) -> None:
    """The embedded sheet's source row is named by its audio file's path: it follows the move
    (and the undo), and the tracklist read from it keeps its version."""
    config = TracklistsConfig()
    old = audiogen.make_audio(library / "in" / "mix.flac", seconds=6.0, tags={"title": "Mix"})
    audio = FLAC(old)
    audio["CUESHEET"] = (
        'FILE "mix.wav" WAVE\nTRACK 01 AUDIO\nTITLE "Side A"\nINDEX 01 00:00:00\n'
        'TRACK 02 AUDIO\nTITLE "Side B"\nINDEX 01 00:03:00\n'
    )
    audio.save()
    await scan(catalog, library)
    assert [r["outcome"] for r in await read_due_sources(catalog, config)] == ["new"]
    settings = settings_for(library, pattern="Mixes/{title}")
    plan_id, steps, _ = await organise(catalog, settings)
    new = library / "Mixes" / "Mix.flac"
    assert [(s.kind, s.state) for s in steps] == [("audio", StepState.DONE)]
    assert await sources(catalog) == [(str(new), str(new.parent), "embedded", "done")]
    found = await catalog.resolve_recording(str(new))
    assert found is not None
    [tl] = await catalog.tracklists_of(found[0], history=True)
    assert (tl.source, tl.version, tl.origin) == ("embedded_cue", 1, str(new))
    await scan(catalog, library)
    assert await read_due_sources(catalog, config) == []  # nothing changed: nothing to read

    await undo(catalog, settings, plan_id)
    assert await sources(catalog) == [(str(old), str(old.parent), "embedded", "done")]
    [tl] = await catalog.tracklists_of(found[0], history=True)
    assert (tl.version, tl.origin) == (1, str(old))


# -- a second filesystem ------------------------------------------------------------------------


@pytest.fixture
def other_fs(tmp_path: Path) -> Iterator[Path]:
    """A directory on another filesystem than tmp_path: /dev/shm (tmpfs) when it is one, else
    a tmpfs mounted for the test (the test command runs as root). When neither works the test
    fails with the reason: a skip would hide a machine that cannot test cross-filesystem moves."""
    here = os.stat(tmp_path).st_dev
    shm = Path("/dev/shm")
    if shm.is_dir() and os.access(shm, os.W_OK) and os.stat(shm).st_dev != here:
        d = shm / f"tracktiond-test-{uuid.uuid4().hex[:8]}"
        d.mkdir()
        try:
            yield d
        finally:
            shutil.rmtree(d, ignore_errors=True)
        return
    try:
        with mounts.tmpfs(tmp_path / "mnt", "64m") as mnt:
            yield mnt
    except mounts.MountUnavailable as exc:
        pytest.fail(f"no second filesystem: /dev/shm unusable and {exc}")


async def test_moves_across_filesystems_are_copied_verified_and_undone(
    catalog: Catalog, library: Path, other_fs: Path
) -> None:
    made = album(library)
    await scan(catalog, library)
    before = tree(library)
    config = config_from_mapping(
        {
            "library": {"roots": [str(library), str(other_fs)]},
            "organise": {"library": str(other_fs), "auto": False},
        },
        None,
        environ={},
    )
    settings = settings_from_config(config)
    plan_id, steps, _ = await organise(catalog, settings, library)
    audio = [s for s in steps if s.kind == "audio"]
    assert {s.method for s in audio} == {"copy"} and {s.state for s in steps} == {StepState.DONE}
    assert not any(p.exists() for p in made)
    moved = tree(other_fs)
    # The same bytes, nothing lost (the cue sheet's FILE line was rewritten, as it should be).
    unchanged = sorted(v for k, v in before.items() if not k.endswith(".cue"))
    assert sorted(v for k, v in moved.items() if not k.endswith(".cue")) == unchanged
    assert len(moved) == len(before)
    assert not any(name.startswith(".tracktiond") for name in moved)
    rescan = await scan(catalog, other_fs)
    assert (rescan["unchanged"], rescan["new"], rescan["bytes_read"]) == (2, 0, 0)
    await undo(catalog, settings, plan_id)
    assert tree(library) == before and tree(other_fs) == {}
