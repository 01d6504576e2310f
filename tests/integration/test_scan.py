"""Scanning a real library on disk into a real catalog (SQLite and PostgreSQL)."""

from __future__ import annotations

import os
import pwd
import shutil
import time
import traceback
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import anyio
import pytest
from sqlalchemy import select, update

from tests.support import audiogen
from tracktiond.catalog import Catalog
from tracktiond.catalog.models import files, utcnow
from tracktiond.catalog.store import Outcome
from tracktiond.media import probe as ingest_module
from tracktiond.pipeline.reconcile import ScanSummary
from tracktiond.pipeline.scan import Scanner

pytestmark = pytest.mark.anyio

TAGS = {
    "title": "Night Drive",
    "artist": "Kollektiv Süd",
    "album": "Autobahn Sessions",
    "albumartist": "Various Artists",
    "genre": "Techno",
    "date": "2019-05-17",
    "tracknumber": "3/12",
    "discnumber": "1/2",
    "bpm": "128",
    "initialkey": "Am",
    "replaygain_track_gain": "-7.50 dB",
    "replaygain_track_peak": "0.988000",
}


async def scan(catalog: Catalog, *paths: Path, **kwargs: Any) -> ScanSummary:
    return await Scanner(catalog, concurrency=4, **kwargs).scan([str(p) for p in paths])


async def info(catalog: Catalog, path: Path) -> dict[str, Any]:
    data = await catalog.recording_for_path(str(path))
    assert data is not None, f"{path} is not in the catalog"
    return data


@pytest.fixture
def count_reads(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Record every file the scanner reads (the ingest stage is the only reader)."""
    calls: list[str] = []
    real = ingest_module.ingest_file

    def counting(path: str) -> Any:
        calls.append(path)
        return real(path)

    monkeypatch.setattr(ingest_module, "ingest_file", counting)
    return calls


@pytest.mark.parametrize("fmt", audiogen.FORMATS)
async def test_every_format_is_cataloged_with_tags_and_stream_properties(
    catalog: Catalog, library: Path, fmt: str
) -> None:
    path = audiogen.make_audio(library / f"song{audiogen.EXTENSIONS[fmt]}", seconds=1.0, tags=TAGS)
    summary = await scan(catalog, library)
    assert summary.counts["new"] == 1, summary.as_dict()
    data = await info(catalog, path)
    assert data["state"] == "cataloged"
    meta = data["metadata"]
    expected_tags = dict(TAGS)
    for key, value in expected_tags.items():
        assert meta.get(key) == value, (fmt, key, meta)
    assert float(meta["duration"]) > 0
    assert int(meta["channels"]) >= 1
    assert meta["codec"]
    assert len(data["sha256_hash"]) == 64 and len(data["xxh128_hash"]) == 32
    assert data["sha256_hash"] == __import__("hashlib").sha256(path.read_bytes()).hexdigest()


async def test_rescan_of_unchanged_library_reads_nothing(
    catalog: Catalog, library: Path, count_reads: list[str]
) -> None:
    paths = audiogen.make_library(library, 12, seconds=0.3)
    first = await scan(catalog, library)
    assert first.counts["new"] == len(paths)
    assert sorted(count_reads) == sorted(str(p) for p in paths)
    count_reads.clear()
    second = await scan(catalog, library)
    assert count_reads == []
    assert second.counts["unchanged"] == len(paths)
    assert second.counts["new"] == second.counts["changed"] == 0


async def test_rescan_refreshes_last_seen_only_when_it_is_stale(
    catalog: Catalog, library: Path
) -> None:
    fresh, stale = (
        audiogen.make_audio(library / name, seconds=0.3, seed=seed)
        for name, seed in (("fresh.flac", 1), ("stale.mp3", 2))
    )
    await scan(catalog, library)

    async def last_seen() -> dict[str, datetime]:
        async with catalog.engine.connect() as conn:
            rows = await conn.execute(select(files.c.path, files.c.last_seen))
            return {r.path: r.last_seen for r in rows}

    two_hours_ago = utcnow() - timedelta(hours=2)
    async with catalog.engine.begin() as conn:
        await conn.execute(
            update(files).where(files.c.path == str(stale)).values(last_seen=two_hours_ago)
        )
    before = await last_seen()
    second = await scan(catalog, library)
    assert second.counts["unchanged"] == 2
    after = await last_seen()
    # Seen within the hour: not rewritten. Seen two hours ago: brought up to date.
    assert after[str(fresh)] == before[str(fresh)]
    assert after[str(stale)] > two_hours_ago + timedelta(hours=1)


async def test_rename_and_move_keep_the_recording_without_reading(
    catalog: Catalog, library: Path, count_reads: list[str]
) -> None:
    a = audiogen.make_audio(library / "a" / "one.flac", seconds=0.5, seed=1)
    b = audiogen.make_audio(library / "a" / "two.mp3", seconds=0.5, seed=2)
    await scan(catalog, library)
    rec_a = (await info(catalog, a))["recording_id"]
    rec_b = (await info(catalog, b))["recording_id"]
    count_reads.clear()

    renamed = a.with_name("one (remaster).flac")
    a.rename(renamed)
    (library / "b").mkdir()
    moved = library / "b" / "two.mp3"
    b.rename(moved)
    summary = await scan(catalog, library)

    assert count_reads == []  # same inode, size and mtime: no read needed
    assert summary.counts["moved"] == 2
    assert summary.counts["missing"] == 0
    assert (await info(catalog, renamed))["recording_id"] == rec_a
    assert (await info(catalog, moved))["recording_id"] == rec_b
    assert await catalog.recording_for_path(str(a)) is None
    status = await catalog.status()
    assert status.files_by_state["missing"] == 0
    assert status.recordings == 2


async def test_directory_moved_as_a_whole(catalog: Catalog, library: Path) -> None:
    album = library / "Artist" / "Album"
    files = [audiogen.make_audio(album / f"{i}.ogg", seconds=0.3, seed=i) for i in range(3)]
    await scan(catalog, library)
    ids = [(await info(catalog, f))["recording_id"] for f in files]
    target = library / "Sorted" / "Artist - Album"
    target.parent.mkdir()
    album.rename(target)
    summary = await scan(catalog, library)
    assert summary.counts["moved"] == 3
    for i, rec in enumerate(ids):
        assert (await info(catalog, target / f"{i}.ogg"))["recording_id"] == rec


async def test_copy_across_filesystem_then_delete_is_a_move_by_content(
    catalog: Catalog, library: Path
) -> None:
    # A copy gets a new inode (like a move between filesystems); the hash identifies it.
    src = audiogen.make_audio(library / "in" / "set.opus", seconds=0.5)
    await scan(catalog, library)
    rec = (await info(catalog, src))["recording_id"]
    dst = library / "out" / "set.opus"
    dst.parent.mkdir()
    shutil.copyfile(src, dst)
    src.unlink()
    summary = await scan(catalog, library)
    assert summary.counts["moved"] == 1
    assert (await info(catalog, dst))["recording_id"] == rec
    status = await catalog.status()
    assert status.files_by_state["missing"] == 0
    assert status.recordings == 1


async def test_deleted_file_is_marked_missing_and_comes_back(
    catalog: Catalog, library: Path, count_reads: list[str]
) -> None:
    path = audiogen.make_audio(library / "gone.wav", seconds=0.3)
    keep = library / "keep.wav.bak"
    await scan(catalog, library)
    rec = (await info(catalog, path))["recording_id"]
    shutil.copy2(path, keep)
    path.unlink()
    summary = await scan(catalog, library)
    assert summary.counts["missing"] == 1
    data = await info(catalog, path)
    assert data["state"] == "missing" and data["missing_since"] is not None
    assert data["recording_id"] == rec  # kept, not deleted

    count_reads.clear()
    os.replace(keep, path)  # back, byte-identical, same mtime (copy2), new inode
    summary = await scan(catalog, library)
    data = await info(catalog, path)
    assert data["state"] == "cataloged" and data["recording_id"] == rec
    assert (await catalog.status()).recordings == 1


async def test_deleted_directory_marks_all_its_files_missing(
    catalog: Catalog, library: Path
) -> None:
    for i in range(4):
        audiogen.make_audio(library / "doomed" / "cd1" / f"{i}.mp3", seconds=0.3, seed=i)
    audiogen.make_audio(library / "stays.mp3", seconds=0.3, seed=99)
    await scan(catalog, library)
    shutil.rmtree(library / "doomed")
    summary = await scan(catalog, library)
    assert summary.counts["missing"] == 4
    status = await catalog.status()
    assert status.files_by_state["missing"] == 4
    assert status.files_by_state["cataloged"] == 1


async def test_missing_root_marks_nothing_missing(catalog: Catalog, library: Path) -> None:
    audiogen.make_audio(library / "x.flac", seconds=0.3)
    await scan(catalog, library)
    moved_away = library.with_name("unmounted")
    library.rename(moved_away)  # like an unplugged drive
    summary = await scan(catalog, library)
    assert any("not found" in w for w in summary.warnings)
    assert (await catalog.status()).files_by_state["missing"] == 0


async def test_changed_content_is_rehashed_and_reread(
    catalog: Catalog, library: Path, count_reads: list[str]
) -> None:
    path = audiogen.make_audio(library / "edit.flac", seconds=0.5, tags={"title": "Old"})
    await scan(catalog, library)
    before = await info(catalog, path)
    count_reads.clear()
    audiogen.make_audio(path, seconds=0.5, tags={"title": "New Title"})
    os.utime(path, ns=(before["mtime_ns"] + 10**9, before["mtime_ns"] + 10**9))
    summary = await scan(catalog, library)
    assert count_reads == [str(path)]
    assert summary.counts["changed"] == 1
    after = await info(catalog, path)
    assert after["recording_id"] == before["recording_id"]  # the only copy was edited
    assert after["sha256_hash"] != before["sha256_hash"]
    assert after["metadata"]["title"] == "New Title"


async def test_touched_file_is_reread_but_unchanged(
    catalog: Catalog, library: Path, count_reads: list[str]
) -> None:
    path = audiogen.make_audio(library / "touch.mp3", seconds=0.3)
    await scan(catalog, library)
    count_reads.clear()
    os.utime(path, ns=(1, 2))
    summary = await scan(catalog, library)
    assert count_reads == [str(path)]
    assert summary.counts["unchanged"] == 1 and summary.counts["changed"] == 0
    count_reads.clear()
    await scan(catalog, library)
    assert count_reads == []  # the new mtime was recorded


async def test_identical_copies_are_one_recording_and_queryable(
    catalog: Catalog, library: Path
) -> None:
    a = audiogen.make_audio(library / "a" / "dup.flac", seconds=0.5, seed=7)
    (library / "b").mkdir()
    (library / "c").mkdir()
    b = library / "b" / "dup copy.flac"
    c = library / "c" / "dup.flac"
    shutil.copyfile(a, b)
    shutil.copyfile(a, c)
    summary = await scan(catalog, library)
    assert summary.counts["new"] == 1 and summary.counts["duplicate"] == 2
    recs = {(await info(catalog, p))["recording_id"] for p in (a, b, c)}
    assert len(recs) == 1
    groups = await catalog.duplicates()
    assert len(groups) == 1
    assert sorted(groups[0].paths) == sorted(str(p) for p in (a, b, c))
    status = await catalog.status()
    assert (status.duplicate_recordings, status.duplicate_files) == (1, 3)

    # Editing one copy splits it off into a recording of its own; the others stay together.
    audiogen.make_audio(b, seconds=0.5, seed=8)
    await scan(catalog, library)
    assert (await info(catalog, b))["recording_id"] not in recs
    assert (await info(catalog, c))["recording_id"] in recs
    groups = await catalog.duplicates()
    assert sorted(groups[0].paths) == sorted(str(p) for p in (a, c))


@pytest.mark.parametrize(
    ("kind", "name", "reason"),
    [
        ("zero", "empty.mp3", "empty file"),
        ("garbage", "noise.flac", "not an audio file"),
        ("text", "notes.mp3", "plain text"),
        ("truncated", "cut.flac", "truncated"),
        ("truncated", "cut.wav", "truncated"),
        ("truncated", "cut.ogg", "truncated"),
        ("truncated", "cut.m4a", "truncated"),
        ("truncated", "cut.wv", "truncated"),
        ("truncated", "cut.aiff", "truncated"),
        ("truncated", "cut.opus", "truncated"),
        ("truncated", "cut.wma", "truncated"),
    ],
)
async def test_unreadable_files_are_recorded_with_a_reason(
    catalog: Catalog, library: Path, kind: str, name: str, reason: str
) -> None:
    good = audiogen.make_audio(library / "good.mp3", seconds=0.3)
    bad = audiogen.make_broken(library / name, kind)
    # A damaged file that has sat in the library; a cut-short file modified a moment ago is
    # taken for one still being written (test_arriving_files.py).
    an_hour_ago = time.time() - 3600
    os.utime(bad, (an_hour_ago, an_hour_ago))
    summary = await scan(catalog, library)
    assert summary.counts["new"] == 1 and summary.counts["failed"] == 1, summary.as_dict()
    data = await info(catalog, bad)
    assert data["state"] == "failed"
    assert data["error_class"] == "bad_input"
    assert reason in data["last_error"], data["last_error"]
    assert (await info(catalog, good))["state"] == "cataloged"
    failures = (await catalog.status()).recent_failures
    assert [f.path for f in failures] == [str(bad)]


async def test_lying_extension_is_identified_by_content(catalog: Catalog, library: Path) -> None:
    path = audiogen.make_broken(library / "actually_wave.ogg", "wrong_extension")
    await scan(catalog, library)
    data = await info(catalog, path)
    assert data["state"] == "cataloged"
    assert data["metadata"]["container"] == "wav"
    assert "extension_mismatch" in data["metadata"]


async def test_multichannel_file_is_cataloged(catalog: Catalog, library: Path) -> None:
    path = audiogen.make_broken(library / "surround.flac", "multichannel")
    await scan(catalog, library)
    data = await info(catalog, path)
    assert data["state"] == "cataloged"
    assert data["metadata"]["channels"] == "6"


async def test_bad_names_links_and_loops(catalog: Catalog, library: Path) -> None:
    audiogen.make_audio(library / "ok.mp3", seconds=0.3)
    raw = os.fsencode(library) + b"/caf\xe9 \xff.mp3"  # Latin-1 bytes: not UTF-8
    with open(raw, "wb") as fh:
        fh.write((library / "ok.mp3").read_bytes())
    (library / "dangling.flac").symlink_to(library / "nowhere.flac")
    (library / "loop_a.flac").symlink_to(library / "loop_b.flac")
    (library / "loop_b.flac").symlink_to(library / "loop_a.flac")
    (library / "sub").mkdir()
    (library / "sub" / "back_to_top").symlink_to(library)  # a directory loop
    summary = await scan(catalog, library)
    assert summary.counts["new"] == 1
    reasons = {f.path: f.reason for f in (await catalog.status(failures=20)).recent_failures}
    assert reasons[str(library / "dangling.flac")] == "broken symbolic link"
    assert reasons[str(library / "loop_a.flac")] == "symbolic link loop"
    assert reasons[str(library / "loop_b.flac")] == "symbolic link loop"
    bad_name = [p for p in reasons if "caf" in p]
    assert len(bad_name) == 1 and reasons[bad_name[0]] == "file name is not valid UTF-8"
    assert "\\xe9" in bad_name[0]
    # rescanning is stable: the same failures, nothing new, no crash
    again = await scan(catalog, library)
    assert again.counts["new"] == 0 and again.counts["unchanged"] == 1


async def test_file_vanishing_mid_scan_is_recorded(catalog: Catalog, library: Path) -> None:
    victims = [audiogen.make_audio(library / f"v{i}.mp3", seconds=0.3, seed=i) for i in range(3)]

    class DeleteWhenQueued:
        def discovered(self, files: int) -> None:
            pass

        def queued(self, jobs: int) -> None:
            for v in victims[:2]:  # after the walk saw them, before they are read
                v.unlink(missing_ok=True)

        def processed(self, outcome: Outcome, size: int) -> None:
            pass

        def analysed(self, outcome: str) -> None:
            pass

        def walked(self) -> None:
            pass

    summary = await scan(catalog, library, progress=DeleteWhenQueued())
    assert summary.counts["new"] == 1
    assert summary.counts["missing"] == 2
    for v in victims[:2]:
        data = await info(catalog, v)
        assert data["state"] == "missing"
        assert data["last_error"] == "vanished while being scanned"


async def test_scan_of_a_single_file(catalog: Catalog, library: Path) -> None:
    path = audiogen.make_audio(library / "one.m4a", seconds=0.3, tags={"title": "Solo"})
    other = audiogen.make_audio(library / "other.m4a", seconds=0.3, seed=3)
    summary = await scan(catalog, path)
    assert summary.counts["new"] == 1
    assert (await info(catalog, path))["metadata"]["title"] == "Solo"
    assert await catalog.recording_for_path(str(other)) is None


async def test_purge_missing_is_a_config_option(catalog: Catalog, library: Path) -> None:
    from datetime import timedelta

    path = audiogen.make_audio(library / "old.flac", seconds=0.3)
    await scan(catalog, library)
    path.unlink()
    await scan(catalog, library)  # marked missing, kept
    assert (await catalog.status()).files_by_state["missing"] == 1
    await scan(catalog, library, purge_missing_after=timedelta(seconds=0))
    status = await catalog.status()
    assert status.files_by_state["missing"] == 0
    assert status.recordings == 0


def _scan_as(user: str | None, db_url: str, root: Path) -> None:
    """Scan in a forked child that drops root first (root reads every file regardless of mode)."""

    async def body() -> None:
        cat = await Catalog.open(db_url)
        try:
            await scan(cat, root)
        finally:
            await cat.close()

    if user is None:
        anyio.run(body)
        return
    pw = pwd.getpwnam(user)

    async def warm_up() -> None:
        cat = await Catalog.open(db_url)  # loads the lazily imported driver modules
        try:
            await cat.status()
        finally:
            await cat.close()

    anyio.run(warm_up)
    pid = os.fork()
    if pid == 0:  # child: no exec, so unreadable interpreter paths under /root do not matter
        code = 1
        try:
            os.setgroups([])
            os.setgid(pw.pw_gid)
            os.setuid(pw.pw_uid)
            os.environ["HOME"] = str(root.parent)  # libpq-style lookups of ~/.postgresql
            anyio.run(body)
            code = 0
        except BaseException:
            traceback.print_exc()
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0


def test_permission_denied_file_is_recorded(db_url: str, tmp_path: Path, library: Path) -> None:
    user = "nobody" if os.geteuid() == 0 else None
    secret = audiogen.make_audio(library / "secret.flac", seconds=0.3)
    audiogen.make_audio(library / "open.flac", seconds=0.3, seed=5)
    _scan_as(None, db_url, library)  # cataloged while readable
    if user is not None:
        # the library and the catalog's SQLite files must be usable by the unprivileged user
        uid = pwd.getpwnam(user).pw_uid
        for path in [tmp_path, *tmp_path.rglob("*")]:
            os.chown(path, uid, -1)
        for parent in tmp_path.parents:  # pytest's base temp dir is private to root
            if parent == Path("/tmp") or parent == parent.parent:
                break
            parent.chmod(parent.stat().st_mode | 0o005)
    secret.chmod(0o000)
    os.utime(secret, ns=(1, 10**9))  # a change, so the next scan reads it again
    _scan_as(user, db_url, library)

    async def check() -> dict[str, Any]:
        cat = await Catalog.open(db_url)
        try:
            return await info(cat, secret)
        finally:
            await cat.close()

    data = anyio.run(check)
    assert data["state"] == "failed"
    assert data["last_error"] == "permission denied"
