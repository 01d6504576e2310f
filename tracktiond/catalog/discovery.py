"""Reconciling the catalog with a directory walk.

The walk asks what is known in the directories it lists (and by inode, to recognise renames
without reading a file); it hands back new files (queued as pending work), changed files
(re-queued), renames, files that came back or went missing, unchanged files (touched in chunks)
and entries it could not even stat (recorded as failed)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta

from sqlalchemy import bindparam, select, tuple_, update

from tracktiond.catalog.base import (
    IN_CHUNK,
    StoreBase,
    _chunks,
    _dialect_insert,
    _known,
    _known_select,
    _stat_values,
    _under,
)
from tracktiond.catalog.models import FileState, files, utcnow
from tracktiond.catalog.upkeep import _point_recording_at, _repoint_recordings, _touch_graph
from tracktiond.catalog.values import Job, KnownFile, Observed, to_int64
from tracktiond.errors import FailureClass

# How fresh files.last_seen is kept by reconciles of unchanged files (see DiscoveryMixin.touch).
LAST_SEEN_RESOLUTION = timedelta(hours=1)


class DiscoveryMixin(StoreBase):
    """File rows as directory walks find them."""

    async def known_in_dirs(self, dirs: Sequence[str]) -> dict[str, KnownFile]:
        known: dict[str, KnownFile] = {}
        async with self.engine.connect() as conn:
            for chunk in _chunks(dirs, IN_CHUNK):
                rows = await conn.execute(_known_select().where(files.c.dir.in_(chunk)))
                for row in rows:
                    k = _known(row)
                    known[k.path] = k
        return known

    async def known_files(self, paths: Sequence[str]) -> dict[str, KnownFile]:
        """The catalog's rows for ``paths`` (those it has), by path: one query per chunk."""
        found: dict[str, KnownFile] = {}
        async with self.engine.connect() as conn:
            for chunk in _chunks(paths, IN_CHUNK):
                for row in await conn.execute(_known_select().where(files.c.path.in_(chunk))):
                    known = _known(row)
                    found[known.path] = known
        return found

    async def dirs_under(self, root: str) -> set[str]:
        """Directories (as recorded) of files under ``root`` that are not already missing."""
        async with self.engine.connect() as conn:
            rows = await conn.execute(
                select(files.c.dir)
                .where(_under(root), files.c.state != FileState.MISSING.value)
                .distinct()
            )
            return {r.dir for r in rows}

    async def by_inode(
        self, observed: Sequence[Observed]
    ) -> dict[tuple[int, int], list[KnownFile]]:
        keys = list({(to_int64(o.device), to_int64(o.inode)) for o in observed})
        found: dict[tuple[int, int], list[KnownFile]] = {}
        async with self.engine.connect() as conn:
            for chunk in _chunks(keys, IN_CHUNK // 2):
                rows = await conn.execute(
                    _known_select().where(tuple_(files.c.device, files.c.inode).in_(chunk))
                )
                for row in rows:
                    found.setdefault((row.device, row.inode), []).append(_known(row))
        return found

    async def add_pending(self, observed: Sequence[Observed]) -> list[Job]:
        """Insert newly discovered files as pending work; returns their jobs.

        One multi-row statement per batch: per-row round trips dominate a first scan otherwise.
        """
        if not observed:
            return []
        now = utcnow()
        rows = [
            _stat_values(o)
            | {
                "path": o.path,
                "dir": o.dir,
                "state": FileState.PENDING.value,
                "attempts": 0,
                "first_seen": now,
                "last_seen": now,
                "updated_at": now,
            }
            for o in observed
        ]
        stmt = (
            _dialect_insert(self.dialect, files)
            .on_conflict_do_nothing(index_elements=["path"])
            .returning(files.c.id, files.c.path)
        )
        jobs: list[Job] = []
        async with self.engine.begin() as conn:
            for chunk in _chunks(rows, 500):
                # a path another instance inserted first is not returned: that one owns the job
                result = await conn.execute(stmt, chunk)
                jobs += [Job(r.id, r.path) for r in result]
        return sorted(jobs, key=lambda j: j.file_id)

    async def mark_changed(self, changes: Sequence[tuple[KnownFile, Observed]]) -> list[Job]:
        """Files whose stat changed (or that came back): back to pending, attempts reset."""
        if not changes:
            return []
        now = utcnow()
        stmt = (
            update(files)
            .where(files.c.id == bindparam("b_id"))
            .values(
                size=bindparam("b_size"),
                mtime_ns=bindparam("b_mtime_ns"),
                ctime_ns=bindparam("b_ctime_ns"),
                inode=bindparam("b_inode"),
                device=bindparam("b_device"),
                state=FileState.PENDING.value,
                attempts=0,
                error_class=None,
                last_error=None,
                missing_since=None,
                not_before=None,
                last_seen=now,
                updated_at=now,
            )
        )
        params = [
            {"b_id": known.id} | {f"b_{k}": v for k, v in _stat_values(o).items()}
            for known, o in changes
        ]
        async with self.engine.begin() as conn:
            for chunk in _chunks(params, 500):
                await conn.execute(stmt, chunk)
        return [Job(k.id, o.path) for k, o in changes]

    async def restore(self, ids: Sequence[int]) -> None:
        """Missing files that came back unchanged: cataloged again without a read."""
        now = utcnow()
        async with self.engine.begin() as conn:
            for chunk in _chunks(ids, IN_CHUNK):
                result = await conn.execute(
                    update(files)
                    .where(files.c.id.in_(chunk))
                    .values(
                        state=FileState.CATALOGED.value,
                        missing_since=None,
                        last_error=None,
                        last_seen=now,
                        updated_at=now,
                    )
                    .returning(files.c.recording_id)
                )
                await _touch_graph(conn, {r.recording_id for r in result if r.recording_id})

    async def relocate(self, moves: Sequence[tuple[KnownFile, Observed]]) -> list[Job]:
        """Same inode, same size and mtime, old path gone: a rename. No read needed.

        Returns jobs for moved rows that still need processing (never cataloged yet)."""
        if not moves:
            return []
        now = utcnow()
        jobs: list[Job] = []
        async with self.engine.begin() as conn:
            for known, o in moves:
                if known.recording_id is not None and known.state in (
                    FileState.MISSING.value,
                    FileState.CATALOGED.value,
                ):
                    state = FileState.CATALOGED.value
                elif known.state == FileState.FAILED.value:
                    state = known.state
                else:  # pending, or went missing before it was ever read
                    state = FileState.PENDING.value
                    jobs.append(Job(known.id, o.path))
                await conn.execute(
                    update(files)
                    .where(files.c.id == known.id)
                    .values(
                        path=o.path,
                        dir=o.dir,
                        **_stat_values(o),
                        missing_since=None,
                        last_seen=now,
                        updated_at=now,
                        state=state,
                        lease_owner=None,
                        lease_expires=None,
                    )
                )
                if known.recording_id is not None:
                    await _point_recording_at(conn, known.recording_id, o.path, replace=known.path)
                    await _touch_graph(conn, [known.recording_id])
        return jobs

    async def touch(self, ids: Sequence[int]) -> None:
        """Record that unchanged files were seen; one statement per chunk, no per-file write.

        ``last_seen`` is kept to LAST_SEEN_RESOLUTION: rows seen more recently are not written
        again. A daemon reconciling every few minutes would otherwise rewrite every row of a
        500,000-file catalog each time, for a timestamp nobody needs to the second.
        """
        if not ids:
            return
        now = utcnow()
        stale = now - LAST_SEEN_RESOLUTION
        async with self.engine.begin() as conn:
            for chunk in _chunks(ids, IN_CHUNK):
                await conn.execute(
                    update(files)
                    .where(files.c.id.in_(chunk), files.c.last_seen < stale)
                    .values(last_seen=now)
                )

    async def mark_missing(self, ids: Sequence[int], reason: str | None = None) -> int:
        if not ids:
            return 0
        now = utcnow()
        count = 0
        async with self.engine.begin() as conn:
            for chunk in _chunks(ids, IN_CHUNK):
                result = await conn.execute(
                    update(files)
                    .where(files.c.id.in_(chunk), files.c.state != FileState.MISSING.value)
                    .values(
                        state=FileState.MISSING.value,
                        missing_since=now,
                        last_error=reason,
                        updated_at=now,
                    )
                    .returning(files.c.recording_id)
                )
                changed_rows = result.all()
                affected = {r.recording_id for r in changed_rows if r.recording_id is not None}
                count += len(changed_rows)
                await _repoint_recordings(conn, affected)
                await _touch_graph(conn, affected)
        return count

    async def record_walk_failures(self, failures: Sequence[tuple[str, str, str]]) -> None:
        """Entries the walk could not even stat (broken links, loops, bad names): failed rows."""
        now = utcnow()
        async with self.engine.begin() as conn:
            for path, directory, reason in failures:
                values = {
                    "path": path,
                    "dir": directory,
                    "size": 0,
                    "mtime_ns": 0,
                    "ctime_ns": 0,
                    "inode": 0,
                    "device": 0,
                    "state": FileState.FAILED.value,
                    "error_class": FailureClass.BAD_INPUT.value,
                    "last_error": reason,
                    "attempts": 1,
                    "first_seen": now,
                    "last_seen": now,
                    "updated_at": now,
                }
                stmt = _dialect_insert(self.dialect, files).values(**values)
                stmt = stmt.on_conflict_do_update(
                    index_elements=["path"],
                    set_={
                        "state": FileState.FAILED.value,
                        "error_class": FailureClass.BAD_INPUT.value,
                        "last_error": reason,
                        "missing_since": None,
                        "last_seen": now,
                        "updated_at": now,
                    },
                )
                await conn.execute(stmt)

    async def files_under(self, path: str) -> list[KnownFile]:
        """Present files at ``path`` or anywhere below it."""
        async with self.engine.connect() as conn:
            rows = await conn.execute(
                _known_select().where(_under(path), files.c.state != FileState.MISSING.value)
            )
            return [_known(r) for r in rows]

    async def files_in_dirs(self, dirs: Sequence[str]) -> list[KnownFile]:
        out: list[KnownFile] = []
        async with self.engine.connect() as conn:
            for chunk in _chunks(dirs, IN_CHUNK):
                rows = await conn.execute(
                    _known_select().where(
                        files.c.dir.in_(chunk), files.c.state != FileState.MISSING.value
                    )
                )
                out.extend(_known(r) for r in rows)
        return out
