"""The catalog store: every query tracktiond runs, behind typed methods.

Callers hand in and get back plain dataclasses; connections and transactions never leave this
module. Statements are SQLAlchemy Core so one code path serves SQLite and PostgreSQL.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any

from sqlalchemy import (
    String,
    and_,
    bindparam,
    case,
    delete,
    exists,
    func,
    insert,
    or_,
    select,
    text,
    tuple_,
    type_coerce,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.exc import InterfaceError as SAInterfaceError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from tracktiond.catalog import migrate
from tracktiond.catalog.database import create_engine
from tracktiond.catalog.models import (
    AnalysisState,
    FileState,
    analyses,
    files,
    graph_outbox,
    metadata_entries,
    recordings,
    tracklists,
    utcnow,
)
from tracktiond.config import redact_url
from tracktiond.errors import CatalogUnavailable, FailureClass, FileJobError, FileVanished
from tracktiond.ingest import IngestResult

# How many bound parameters one IN (...) may carry; SQLite's default limit is 32766.
IN_CHUNK = 900

_INT64 = 1 << 63


def to_int64(value: int) -> int:
    """Inode and device numbers are unsigned 64-bit; store them in a signed BIGINT."""
    return value - (1 << 64) if value >= _INT64 else value


@dataclass(frozen=True, slots=True)
class Observed:
    """A file as a directory walk sees it: where it is and what `stat` says."""

    path: str
    dir: str
    size: int
    mtime_ns: int
    ctime_ns: int
    inode: int
    device: int


@dataclass(frozen=True, slots=True)
class KnownFile:
    id: int
    path: str
    size: int
    mtime_ns: int
    ctime_ns: int
    inode: int
    device: int
    state: str
    # The recording id as the driver returned it (hex text on SQLite, a UUID on PostgreSQL):
    # a rescan builds one KnownFile per file and needs the id of almost none of them, so it is
    # parsed on use, not for every row.
    recording_ref: object | None

    @property
    def recording_id(self) -> uuid.UUID | None:
        ref = self.recording_ref
        if ref is None or isinstance(ref, uuid.UUID):
            return ref
        return uuid.UUID(str(ref))

    def same_content_signature(self, seen: Observed) -> bool:
        # size + mtime + inode: what `cp`, editors and taggers all change. ctime is not part
        # of it, because renames and chmod change ctime without touching content.
        return (self.size, self.mtime_ns, self.inode, self.device) == (
            seen.size,
            seen.mtime_ns,
            to_int64(seen.inode),
            to_int64(seen.device),
        )


class Outcome(StrEnum):
    NEW = "new"
    DUPLICATE = "duplicate"  # new path, content already cataloged at another present path
    CHANGED = "changed"
    MOVED = "moved"
    UNCHANGED = "unchanged"
    FAILED = "failed"
    RETRY = "retry"  # transient failure, will be tried again
    MISSING = "missing"


@dataclass(frozen=True, slots=True)
class Job:
    """One pending file handed to the ingest stage."""

    file_id: int
    path: str


@dataclass(frozen=True, slots=True)
class JobResult:
    job: Job
    result: IngestResult | None = None
    error: FileJobError | None = None


@dataclass(frozen=True, slots=True)
class AnalysisJob:
    """One audio stream to analyse, and a present file that holds it."""

    audio_hash: str
    path: str
    duration: float | None


@dataclass(frozen=True, slots=True)
class TagJob:
    """A file whose tags should be brought in line with its recording's analysis."""

    file_id: int
    path: str
    analysis: dict[str, Any]  # AnalysisResult.to_dict()
    fingerprint: str  # analysis settings fingerprint + ":" + tagging options fingerprint


@dataclass(slots=True)
class RecordingProjection:
    """A recording as the graph shows it."""

    id: uuid.UUID
    file_path: str
    file_name: str
    sha256: str
    format: str
    paths: list[str] = field(default_factory=list)  # present file locations
    metadata: dict[str, str] = field(default_factory=dict)  # tags, stream and analysis keys
    tracklists: list[dict[str, Any]] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class Failure:
    path: str
    error_class: str
    reason: str
    at: datetime


@dataclass(frozen=True, slots=True)
class DuplicateGroup:
    recording_id: uuid.UUID
    sha256: str
    size: int
    paths: list[str]


@dataclass(slots=True)
class CatalogStatus:
    files_by_state: dict[str, int] = field(default_factory=dict)
    recordings: int = 0
    duplicate_recordings: int = 0
    duplicate_files: int = 0
    recent_failures: list[Failure] = field(default_factory=list)


_TRANSIENT_DB_ERRORS = (OperationalError, SAInterfaceError, OSError, ConnectionError)


class Catalog:
    """The catalog database. Open with ``await Catalog.open(url)``; close with ``close()``."""

    def __init__(self, engine: AsyncEngine, url: str) -> None:
        self.engine = engine
        self.url = url
        self.dialect = engine.dialect.name

    @classmethod
    async def open(cls, url: str, *, upgrade: bool = True) -> Catalog:
        engine = create_engine(url)
        catalog = cls(engine, url)
        try:
            if upgrade:
                await migrate.upgrade(engine)
            else:
                await catalog.ping()
        except _TRANSIENT_DB_ERRORS as exc:
            await engine.dispose()
            raise CatalogUnavailable(
                f"catalog {redact_url(url)} unreachable: {_reason(exc)}"
            ) from exc
        except DBAPIError as exc:
            await engine.dispose()
            raise CatalogUnavailable(f"catalog {redact_url(url)} unusable: {_reason(exc)}") from exc
        return catalog

    async def close(self) -> None:
        await self.engine.dispose()

    async def ping(self) -> None:
        async with self.engine.connect() as conn:
            await conn.execute(text("SELECT 1"))

    async def schema_revision(self) -> str | None:
        return await migrate.current_revision(self.engine)

    # ---- discovery -------------------------------------------------------------------------

    async def known_in_dirs(self, dirs: Sequence[str]) -> dict[str, KnownFile]:
        known: dict[str, KnownFile] = {}
        async with self.engine.connect() as conn:
            for chunk in _chunks(dirs, IN_CHUNK):
                rows = await conn.execute(_known_select().where(files.c.dir.in_(chunk)))
                for row in rows:
                    k = _known(row)
                    known[k.path] = k
        return known

    async def known_file(self, path: str) -> KnownFile | None:
        async with self.engine.connect() as conn:
            row = (await conn.execute(_known_select().where(files.c.path == path))).first()
        return _known(row) if row else None

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
        """Record that unchanged files were seen; one statement per chunk, no per-file write."""
        now = utcnow()
        async with self.engine.begin() as conn:
            for chunk in _chunks(ids, IN_CHUNK):
                await conn.execute(update(files).where(files.c.id.in_(chunk)).values(last_seen=now))

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

    async def pending_jobs(self, roots: Sequence[str], after_id: int, limit: int) -> list[Job]:
        """Pending rows under ``roots`` (all when empty), in id order, for draining the queue."""
        where = [files.c.state == FileState.PENDING.value, files.c.id > after_id]
        if roots:
            where.append(or_(*[_under(r) for r in roots]))
        async with self.engine.connect() as conn:
            rows = await conn.execute(
                select(files.c.id, files.c.path).where(*where).order_by(files.c.id).limit(limit)
            )
            return [Job(r.id, r.path) for r in rows]

    # ---- the work queue --------------------------------------------------------------------

    async def claim(
        self, owner: str, limit: int, lease: timedelta, roots: Sequence[str] = ()
    ) -> list[Job]:
        """Lease up to ``limit`` pending files to ``owner``.

        One UPDATE ... WHERE id IN (SELECT ... FOR UPDATE SKIP LOCKED): on PostgreSQL several
        instances claim disjoint rows without waiting for each other; on SQLite the statement
        runs under the database write lock, which makes it just as exclusive.
        """
        now = utcnow()
        where = [
            files.c.state == FileState.PENDING.value,
            or_(files.c.lease_expires.is_(None), files.c.lease_expires < now),
            or_(files.c.not_before.is_(None), files.c.not_before <= now),
        ]
        if roots:
            where.append(or_(*[_under(r) for r in roots]))
        candidates = (
            select(files.c.id)
            .where(*where)
            .order_by(files.c.id)
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
        async with self.engine.begin() as conn:
            rows = await conn.execute(
                update(files)
                .where(files.c.id.in_(candidates.scalar_subquery()))
                .values(lease_owner=owner, lease_expires=now + lease)
                .returning(files.c.id, files.c.path)
            )
            jobs = [Job(r.id, r.path) for r in rows]
        return sorted(jobs, key=lambda j: j.file_id)

    async def renew_leases(self, owner: str, lease: timedelta) -> int:
        async with self.engine.begin() as conn:
            result = await conn.execute(
                update(files)
                .where(files.c.lease_owner == owner)
                .values(lease_expires=utcnow() + lease)
            )
            return int(result.rowcount or 0)

    async def release_leases(self, owners: Sequence[str]) -> int:
        """Give leased work back to its queue — files and analyses alike (graceful stop, or
        owners known to be dead)."""
        if not owners:
            return 0
        released = 0
        async with self.engine.begin() as conn:
            for table in (files, analyses):
                result = await conn.execute(
                    update(table)
                    .where(table.c.lease_owner.in_(list(owners)))
                    .values(lease_owner=None, lease_expires=None)
                )
                released += int(result.rowcount or 0)
        return released

    async def lease_owners(self, prefix: str) -> list[str]:
        """Distinct owners of leases in any queue whose id starts with ``prefix`` (this host's)."""
        upper = prefix[:-1] + chr(ord(prefix[-1]) + 1)
        owners: set[str] = set()
        async with self.engine.connect() as conn:
            for table in (files, analyses):
                rows = await conn.execute(
                    select(table.c.lease_owner)
                    .where(table.c.lease_owner >= prefix, table.c.lease_owner < upper)
                    .distinct()
                )
                owners.update(r.lease_owner for r in rows)
        return sorted(owners)

    async def queue_stats(self, roots: Sequence[str] = ()) -> tuple[int, datetime | None]:
        """Pending files and when the oldest of them became pending."""
        where = [files.c.state == FileState.PENDING.value]
        if roots:
            where.append(or_(*[_under(r) for r in roots]))
        async with self.engine.connect() as conn:
            row = (
                await conn.execute(select(func.count(), func.min(files.c.updated_at)).where(*where))
            ).one()
        oldest = row[1]
        if oldest is not None and oldest.tzinfo is None:
            oldest = oldest.replace(tzinfo=UTC)
        return int(row[0]), oldest

    # ---- results ---------------------------------------------------------------------------

    async def record_results(
        self,
        results: Sequence[JobResult],
        *,
        max_attempts: int,
        owner: str | None = None,
        retry_delay: Callable[[int], float] = lambda attempts: 0.0,
    ) -> list[Outcome]:
        """Apply a batch of ingest results in one transaction; returns one outcome per result.

        With ``owner``, a result is applied only while that owner still holds the file's lease
        (after a lease expired, another worker owns the job and its result wins).
        """
        if not results:
            return []
        async with self.engine.begin() as conn:
            outcomes: dict[int, Outcome] = await self._record_new_batch(conn, results, owner)
            return [
                outcomes[i]
                if i in outcomes
                else await self._record_one(conn, r, max_attempts, owner, retry_delay)
                for i, r in enumerate(results)
            ]

    async def _record_new_batch(
        self, conn: AsyncConnection, results: Sequence[JobResult], owner: str | None
    ) -> dict[int, Outcome]:
        """The common case of a first scan in a few statements per batch, not per file: files
        never cataloged before whose content is new to the catalog. Everything else (moves,
        duplicates, changes, failures) goes through _record_one."""
        candidates = [
            (i, jr) for i, jr in enumerate(results) if jr.result is not None and jr.error is None
        ]
        if len(candidates) < 2:
            return {}
        ids = [jr.job.file_id for _, jr in candidates]
        rows = {
            r.id: r
            for r in await conn.execute(
                select(files.c.id, files.c.path, files.c.recording_id, files.c.lease_owner).where(
                    files.c.id.in_(ids)
                )
            )
        }
        shas = list({jr.result.digest.sha256 for _, jr in candidates if jr.result})
        xxhs = list({jr.result.digest.xxh128 for _, jr in candidates if jr.result})
        taken = {
            h
            for r in await conn.execute(
                select(recordings.c.sha256_hash, recordings.c.xxh128_hash).where(
                    or_(recordings.c.sha256_hash.in_(shas), recordings.c.xxh128_hash.in_(xxhs))
                )
            )
            for h in r
        }
        now = utcnow()
        fast: list[tuple[int, JobResult, uuid.UUID]] = []
        for i, jr in candidates:
            res = jr.result
            assert res is not None
            row = rows.get(jr.job.file_id)
            if row is None or row.path != jr.job.path or row.recording_id is not None:
                continue
            if owner is not None and row.lease_owner != owner:
                continue
            d = res.digest
            if d.sha256 in taken or d.xxh128 in taken:
                continue  # a duplicate or a move: decided one by one
            taken.update((d.sha256, d.xxh128))
            fast.append((i, jr, uuid.uuid4()))
        if not fast:
            return {}
        rec_rows = []
        for _, jr, rec_id in fast:
            res = jr.result
            assert res is not None
            rec_rows.append(
                {
                    "id": rec_id,
                    "file_path": jr.job.path,
                    "file_name": os.path.basename(jr.job.path),
                    "sha256_hash": res.digest.sha256,
                    "xxh128_hash": res.digest.xxh128,
                    "size": res.digest.size,
                    "format": res.format.value,
                    "audio_hash": res.audio_hash,
                    "created_at": now,
                    "updated_at": now,
                }
            )
        inserted = {
            r.id
            for r in await conn.execute(
                _dialect_insert(self.dialect, recordings)
                .on_conflict_do_nothing()
                .returning(recordings.c.id),
                rec_rows,
            )
        }
        # Another instance may have inserted the same content a moment ago: those go one by one.
        fast = [f for f in fast if f[2] in inserted]
        if not fast:
            return {}
        meta = []
        analysis_rows: dict[str, dict[str, Any]] = {}
        file_params = []
        for _, jr, rec_id in fast:
            res = jr.result
            assert res is not None
            meta += [
                {"recording_id": rec_id, "key": k, "value": v, "source": "tags"}
                for k, v in res.tags.items()
            ] + [
                {"recording_id": rec_id, "key": k, "value": v, "source": "stream"}
                for k, v in res.stream.items()
            ]
            analysis_rows.setdefault(
                res.audio_hash,
                {
                    "audio_hash": res.audio_hash,
                    "state": AnalysisState.PENDING.value,
                    "attempts": 0,
                    "duration_seconds": _duration(res),
                    "created_at": now,
                    "updated_at": now,
                },
            )
            d = res.digest
            file_params.append(
                {
                    "b_id": jr.job.file_id,
                    "b_recording_id": rec_id,
                    "b_size": d.size,
                    "b_mtime_ns": d.mtime_ns,
                    "b_ctime_ns": d.ctime_ns,
                    "b_inode": to_int64(d.inode),
                    "b_device": to_int64(d.device),
                }
            )
        for chunk in _chunks(meta, 2000):
            await conn.execute(insert(metadata_entries), chunk)
        for _, jr, rec_id in fast:
            if jr.result is not None and jr.result.tracks:
                await _replace_tracklist(conn, rec_id, jr.result)
        await conn.execute(
            _dialect_insert(self.dialect, analyses).on_conflict_do_nothing(),
            list(analysis_rows.values()),
        )
        done_analyses = {
            r.audio_hash: r.results
            for r in await conn.execute(
                select(analyses.c.audio_hash, analyses.c.results).where(
                    analyses.c.audio_hash.in_(list(analysis_rows)),
                    analyses.c.state == AnalysisState.DONE.value,
                )
            )
        }
        for _, jr, rec_id in fast:
            assert jr.result is not None
            results_json = done_analyses.get(jr.result.audio_hash)
            metadata = results_json.get("metadata") if isinstance(results_json, dict) else None
            if isinstance(metadata, dict):  # same audio analysed before (e.g. re-tagged copy)
                await _write_analysis_metadata(
                    conn, rec_id, {str(k): str(v) for k, v in metadata.items()}
                )
        await conn.execute(
            update(files)
            .where(files.c.id == bindparam("b_id"))
            .values(
                recording_id=bindparam("b_recording_id"),
                size=bindparam("b_size"),
                mtime_ns=bindparam("b_mtime_ns"),
                ctime_ns=bindparam("b_ctime_ns"),
                inode=bindparam("b_inode"),
                device=bindparam("b_device"),
                state=FileState.CATALOGED.value,
                error_class=None,
                last_error=None,
                missing_since=None,
                last_seen=now,
                updated_at=now,
                lease_owner=None,
                lease_expires=None,
                not_before=None,
            ),
            file_params,
        )
        await _touch_graph(conn, [rec_id for _, _, rec_id in fast])
        return {i: Outcome.NEW for i, _, _ in fast}

    async def _record_one(
        self,
        conn: AsyncConnection,
        jr: JobResult,
        max_attempts: int,
        owner: str | None,
        retry_delay: Callable[[int], float],
    ) -> Outcome:
        row = (
            await conn.execute(
                _known_select()
                .add_columns(files.c.attempts, files.c.lease_owner)
                .where(files.c.id == jr.job.file_id)
            )
        ).first()
        if row is None or row.path != jr.job.path:
            return Outcome.UNCHANGED  # the row moved or went away meanwhile; its new job covers it
        if owner is not None and row.lease_owner != owner:
            return Outcome.UNCHANGED  # our lease ran out and the job went to another worker
        known = _known(row)
        now = utcnow()
        if jr.error is not None or jr.result is None:
            return await self._record_failure(
                conn, known, row.attempts, jr.error, max_attempts, now, retry_delay
            )
        res = jr.result
        d = res.digest
        stat = {
            "size": d.size,
            "mtime_ns": d.mtime_ns,
            "ctime_ns": d.ctime_ns,
            "inode": to_int64(d.inode),
            "device": to_int64(d.device),
        }
        done = {
            **stat,
            "state": FileState.CATALOGED.value,
            "error_class": None,
            "last_error": None,
            "missing_since": None,
            "last_seen": now,
            "updated_at": now,
            "lease_owner": None,
            "lease_expires": None,
            "not_before": None,
        }
        existing = (
            await conn.execute(
                select(recordings.c.id, recordings.c.file_path, recordings.c.audio_hash).where(
                    recordings.c.sha256_hash == d.sha256
                )
            )
        ).first()
        if existing is not None and existing.audio_hash is None:
            # cataloged before audio identities existed: give it one now
            await conn.execute(
                update(recordings)
                .where(recordings.c.id == existing.id)
                .values(audio_hash=res.audio_hash)
            )
            await _link_analysis(conn, self.dialect, existing.id, res, now)

        if known.recording_id is None:
            if existing is not None:
                source = await self._move_source(conn, existing.id, known.id)
                if source is not None:
                    # Same content vanished from its old place: a move, the file row lives on.
                    await conn.execute(delete(files).where(files.c.id == known.id))
                    await conn.execute(
                        update(files)
                        .where(files.c.id == source.id)
                        .values(path=known.path, dir=os.path.dirname(known.path), **done)
                    )
                    await _point_recording_at(conn, existing.id, known.path, replace=source.path)
                    await _touch_graph(conn, [existing.id])
                    return Outcome.MOVED
                await conn.execute(
                    update(files)
                    .where(files.c.id == known.id)
                    .values(recording_id=existing.id, **done)
                )
                await _touch_graph(conn, [existing.id])
                return Outcome.DUPLICATE
            rec_id = await self._insert_recording(conn, known.path, res, now)
            await conn.execute(
                update(files).where(files.c.id == known.id).values(recording_id=rec_id, **done)
            )
            return Outcome.NEW

        old_id = known.recording_id
        if existing is not None and existing.id == old_id:
            await conn.execute(update(files).where(files.c.id == known.id).values(**done))
            return Outcome.UNCHANGED  # touched, not changed: same bytes
        if existing is not None:
            await conn.execute(
                update(files).where(files.c.id == known.id).values(recording_id=existing.id, **done)
            )
            await _drop_if_orphan(conn, old_id)
            await _repoint_recordings(conn, {old_id})
            await _touch_graph(conn, [old_id, existing.id])
            return Outcome.CHANGED
        others = (
            await conn.execute(
                select(func.count())
                .select_from(files)
                .where(files.c.recording_id == old_id, files.c.id != known.id)
            )
        ).scalar_one()
        if others:
            # Other paths still hold the old content: this path becomes a recording of its own.
            rec_id = await self._insert_recording(conn, known.path, res, now)
            await conn.execute(
                update(files).where(files.c.id == known.id).values(recording_id=rec_id, **done)
            )
            await _repoint_recordings(conn, {old_id})
        else:
            # The only copy was edited (new tags, re-encode): same recording, new content facts.
            old_audio = (
                await conn.execute(select(recordings.c.audio_hash).where(recordings.c.id == old_id))
            ).scalar()
            await conn.execute(
                update(recordings)
                .where(recordings.c.id == old_id)
                .values(
                    sha256_hash=d.sha256,
                    xxh128_hash=d.xxh128,
                    size=d.size,
                    format=res.format.value,
                    file_path=known.path,
                    file_name=os.path.basename(known.path),
                    audio_hash=res.audio_hash,
                    updated_at=now,
                )
            )
            await _replace_metadata(conn, old_id, res)
            if old_audio != res.audio_hash:
                # new audio (not just new tags): its analysis is another one
                await conn.execute(
                    delete(metadata_entries).where(
                        metadata_entries.c.recording_id == old_id,
                        metadata_entries.c.source == "analysis",
                    )
                )
                await _link_analysis(conn, self.dialect, old_id, res, now)
            await conn.execute(update(files).where(files.c.id == known.id).values(**done))
        await _touch_graph(conn, [old_id])
        return Outcome.CHANGED

    async def _record_failure(
        self,
        conn: AsyncConnection,
        known: KnownFile,
        attempts: int,
        error: FileJobError | None,
        max_attempts: int,
        now: datetime,
        retry_delay: Callable[[int], float],
    ) -> Outcome:
        reason = error.reason if error else "no result"
        klass = error.failure_class if error else FailureClass.BUG
        attempts += 1
        if isinstance(error, FileVanished) and not _exists(known.path):
            await conn.execute(
                update(files)
                .where(files.c.id == known.id)
                .values(
                    state=FileState.MISSING.value,
                    missing_since=now,
                    last_error="vanished while being scanned",
                    attempts=attempts,
                    updated_at=now,
                    lease_owner=None,
                    lease_expires=None,
                )
            )
            if known.recording_id is not None:
                await _repoint_recordings(conn, {known.recording_id})
                await _touch_graph(conn, [known.recording_id])
            return Outcome.MISSING
        retry = klass is FailureClass.TRANSIENT and attempts < max_attempts
        await conn.execute(
            update(files)
            .where(files.c.id == known.id)
            .values(
                state=FileState.PENDING.value if retry else FileState.FAILED.value,
                error_class=klass.value,
                last_error=reason,
                attempts=attempts,
                last_seen=now,
                updated_at=now,
                lease_owner=None,
                lease_expires=None,
                not_before=now + timedelta(seconds=retry_delay(attempts)) if retry else None,
            )
        )
        return Outcome.RETRY if retry else Outcome.FAILED

    async def _move_source(
        self, conn: AsyncConnection, recording_id: uuid.UUID, exclude: int
    ) -> KnownFile | None:
        rows = await conn.execute(
            _known_select().where(files.c.recording_id == recording_id, files.c.id != exclude)
        )
        for row in rows:
            candidate = _known(row)
            if candidate.state == FileState.MISSING.value or not _exists(candidate.path):
                return candidate
        return None

    async def _insert_recording(
        self, conn: AsyncConnection, path: str, res: IngestResult, now: datetime
    ) -> uuid.UUID:
        d = res.digest
        stmt = (
            _dialect_insert(self.dialect, recordings)
            .values(
                id=uuid.uuid4(),
                file_path=path,
                file_name=os.path.basename(path),
                sha256_hash=d.sha256,
                xxh128_hash=d.xxh128,
                size=d.size,
                format=res.format.value,
                audio_hash=res.audio_hash,
                created_at=now,
                updated_at=now,
            )
            .on_conflict_do_nothing()
            .returning(recordings.c.id)
        )
        rec_id: uuid.UUID | None = (await conn.execute(stmt)).scalar()
        if rec_id is None:
            # Same sha256 inserted concurrently (another instance) or an xxh128-only collision.
            rec_id = (
                await conn.execute(
                    select(recordings.c.id).where(
                        or_(
                            recordings.c.sha256_hash == d.sha256,
                            recordings.c.xxh128_hash == d.xxh128,
                        )
                    )
                )
            ).scalar_one()
            return rec_id
        await _replace_metadata(conn, rec_id, res)
        await _link_analysis(conn, self.dialect, rec_id, res, now)
        await _touch_graph(conn, [rec_id])
        return rec_id

    # ---- the analysis queue ----------------------------------------------------------------

    async def claim_analyses(
        self, owner: str, limit: int, lease: timedelta, fingerprint: str
    ) -> list[AnalysisJob]:
        """Lease audio streams that need analysing: new ones first, then those analysed with
        other settings or an older version (re-analysed lazily)."""
        now = utcnow()
        present = (
            select(recordings.c.id)
            .join(files, files.c.recording_id == recordings.c.id)
            .where(
                recordings.c.audio_hash == analyses.c.audio_hash,
                files.c.state == FileState.CATALOGED.value,
            )
        )
        stale = and_(
            analyses.c.state.in_((AnalysisState.DONE.value, AnalysisState.FAILED.value)),
            or_(
                analyses.c.settings_fingerprint.is_(None),
                analyses.c.settings_fingerprint != fingerprint,
            ),
        )
        candidates = (
            select(analyses.c.audio_hash)
            .where(
                or_(analyses.c.state == AnalysisState.PENDING.value, stale),
                or_(analyses.c.lease_expires.is_(None), analyses.c.lease_expires < now),
                or_(analyses.c.not_before.is_(None), analyses.c.not_before <= now),
                exists(present),
            )
            .order_by(
                case((analyses.c.state == AnalysisState.PENDING.value, 0), else_=1),
                analyses.c.created_at,
            )
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
        jobs: list[AnalysisJob] = []
        async with self.engine.begin() as conn:
            rows = (
                await conn.execute(
                    update(analyses)
                    .where(analyses.c.audio_hash.in_(candidates.scalar_subquery()))
                    .values(lease_owner=owner, lease_expires=now + lease)
                    .returning(analyses.c.audio_hash, analyses.c.duration_seconds)
                )
            ).all()
            for row in rows:
                path = (
                    await conn.execute(
                        select(files.c.path)
                        .join(recordings, files.c.recording_id == recordings.c.id)
                        .where(
                            recordings.c.audio_hash == row.audio_hash,
                            files.c.state == FileState.CATALOGED.value,
                        )
                        .order_by(files.c.id)
                        .limit(1)
                    )
                ).scalar()
                if path is not None:
                    jobs.append(AnalysisJob(row.audio_hash, path, row.duration_seconds))
        return jobs

    async def record_analysis(
        self,
        job: AnalysisJob,
        owner: str,
        *,
        fingerprint: str,
        version: int,
        results: dict[str, Any] | None = None,
        metadata: dict[str, str] | None = None,
        failure: tuple[FailureClass, str] | None = None,
        elapsed: float = 0.0,
        max_attempts: int = 3,
        retry_delay: Callable[[int], float] = lambda attempts: 60.0,
    ) -> str:
        """Store an analysis outcome for every recording with this audio; returns the state."""
        now = utcnow()
        async with self.engine.begin() as conn:
            row = (
                await conn.execute(
                    select(analyses.c.lease_owner, analyses.c.attempts).where(
                        analyses.c.audio_hash == job.audio_hash
                    )
                )
            ).first()
            if row is None or row.lease_owner != owner:
                return "lost"  # our lease expired and another worker took the job
            common = {
                "lease_owner": None,
                "lease_expires": None,
                "updated_at": now,
                "elapsed_seconds": elapsed,
                "attempts": row.attempts + 1,
            }
            if failure is None:
                await conn.execute(
                    update(analyses)
                    .where(analyses.c.audio_hash == job.audio_hash)
                    .values(
                        state=AnalysisState.DONE.value,
                        settings_fingerprint=fingerprint,
                        version=version,
                        results=results,
                        error_class=None,
                        last_error=None,
                        not_before=None,
                        analysed_at=now,
                        **common,
                    )
                )
                rec_ids = (
                    (
                        await conn.execute(
                            select(recordings.c.id).where(recordings.c.audio_hash == job.audio_hash)
                        )
                    )
                    .scalars()
                    .all()
                )
                for rec_id in rec_ids:
                    await _write_analysis_metadata(conn, rec_id, metadata or {})
                await _touch_graph(conn, rec_ids)
                return AnalysisState.DONE.value
            klass, reason = failure
            retry = klass is FailureClass.TRANSIENT and row.attempts + 1 < max_attempts
            await conn.execute(
                update(analyses)
                .where(analyses.c.audio_hash == job.audio_hash)
                .values(
                    state=AnalysisState.PENDING.value if retry else AnalysisState.FAILED.value,
                    settings_fingerprint=fingerprint,
                    version=version,
                    error_class=klass.value,
                    last_error=reason,
                    not_before=now + timedelta(seconds=retry_delay(row.attempts + 1))
                    if retry
                    else None,
                    **common,
                )
            )
            return AnalysisState.PENDING.value if retry else AnalysisState.FAILED.value

    async def analysis_stats(self, fingerprint: str) -> dict[str, int]:
        """Analysed (with the current settings), pending (incl. stale), failed."""
        current = analyses.c.settings_fingerprint == fingerprint
        kind = case(
            (and_(analyses.c.state == AnalysisState.DONE.value, current), "analysed"),
            (and_(analyses.c.state == AnalysisState.FAILED.value, current), "failed"),
            else_="pending",
        )
        async with self.engine.connect() as conn:
            rows = await conn.execute(select(kind.label("kind"), func.count()).group_by(kind))
            out = {"analysed": 0, "pending": 0, "failed": 0}
            out.update({r[0]: int(r[1]) for r in rows})
            return out

    async def analysis_failures(self, limit: int = 10) -> list[Failure]:
        async with self.engine.connect() as conn:
            rows = await conn.execute(
                select(
                    recordings.c.file_path,
                    analyses.c.error_class,
                    analyses.c.last_error,
                    analyses.c.updated_at,
                )
                .join(recordings, recordings.c.audio_hash == analyses.c.audio_hash)
                .where(analyses.c.state == AnalysisState.FAILED.value)
                .order_by(analyses.c.updated_at.desc())
                .limit(limit)
            )
            return [
                Failure(r.file_path, r.error_class or "", r.last_error or "", r.updated_at)
                for r in rows
            ]

    # ---- tag write-back --------------------------------------------------------------------

    async def claim_tag_writes(
        self, owner: str, limit: int, lease: timedelta, options_fingerprint: str
    ) -> list[TagJob]:
        """Lease cataloged files whose analysis is done but whose tags were not yet brought in
        line with it (or with other tagging options)."""
        now = utcnow()
        wanted = analyses.c.settings_fingerprint + ":" + options_fingerprint
        candidates = (
            select(files.c.id)
            .select_from(
                files.join(recordings, files.c.recording_id == recordings.c.id).join(
                    analyses, analyses.c.audio_hash == recordings.c.audio_hash
                )
            )
            .where(
                files.c.state == FileState.CATALOGED.value,
                analyses.c.state == AnalysisState.DONE.value,
                or_(files.c.tag_fingerprint.is_(None), files.c.tag_fingerprint != wanted),
                or_(files.c.lease_expires.is_(None), files.c.lease_expires < now),
            )
            .order_by(files.c.id)
            .limit(limit)
            .with_for_update(skip_locked=True, of=files)
        )
        async with self.engine.begin() as conn:
            claimed = (
                await conn.execute(
                    update(files)
                    .where(files.c.id.in_(candidates.scalar_subquery()))
                    .values(lease_owner=owner, lease_expires=now + lease)
                    .returning(files.c.id, files.c.path)
                )
            ).all()
            jobs: list[TagJob] = []
            for row in claimed:
                info = (
                    await conn.execute(
                        select(analyses.c.results, analyses.c.settings_fingerprint)
                        .join(recordings, recordings.c.audio_hash == analyses.c.audio_hash)
                        .join(files, files.c.recording_id == recordings.c.id)
                        .where(files.c.id == row.id)
                    )
                ).first()
                if info is not None:
                    result = info.results.get("result") if isinstance(info.results, dict) else None
                    jobs.append(
                        TagJob(
                            file_id=row.id,
                            path=row.path,
                            analysis=result if isinstance(result, dict) else {},
                            fingerprint=f"{info.settings_fingerprint}:{options_fingerprint}",
                        )
                    )
        return sorted(jobs, key=lambda j: j.file_id)

    async def record_tag_write(
        self, job: TagJob, owner: str | None, status: str, error: str | None, *, release: bool
    ) -> bool:
        """Remember that the file's tags are in line with ``job.fingerprint`` (or why not)."""
        values: dict[str, Any] = {
            "tag_fingerprint": job.fingerprint,
            "tag_status": status,
            "tag_error": error,
        }
        if release:
            values |= {"lease_owner": None, "lease_expires": None}
        where = [files.c.id == job.file_id, files.c.path == job.path]
        if owner is not None:
            where.append(files.c.lease_owner == owner)
        async with self.engine.begin() as conn:
            result = await conn.execute(update(files).where(*where).values(**values))
            return bool(result.rowcount)

    async def hold_lease(self, file_id: int, owner: str | None, duration: timedelta) -> None:
        """Keep a file out of every queue for ``duration`` (a backoff before retrying)."""
        where = [files.c.id == file_id]
        if owner is not None:
            where.append(files.c.lease_owner == owner)
        async with self.engine.begin() as conn:
            await conn.execute(
                update(files)
                .where(*where)
                .values(lease_owner=None, lease_expires=utcnow() + duration)
            )

    async def tag_stats(self, options_fingerprint: str) -> dict[str, int]:
        async with self.engine.connect() as conn:
            rows = await conn.execute(
                select(files.c.tag_status, func.count())
                .where(files.c.state == FileState.CATALOGED.value)
                .group_by(files.c.tag_status)
            )
            return {(r[0] or "untagged"): int(r[1]) for r in rows}

    async def tag_problems(self, limit: int = 10) -> list[Failure]:
        """Files whose tags were not written, with the reason (skipped formats, failures)."""
        async with self.engine.connect() as conn:
            rows = await conn.execute(
                select(files.c.path, files.c.tag_status, files.c.tag_error, files.c.updated_at)
                .where(files.c.tag_status.in_(("skipped", "failed")))
                .order_by(files.c.updated_at.desc(), files.c.id.desc())
                .limit(limit)
            )
            return [Failure(r.path, r.tag_status, r.tag_error or "", r.updated_at) for r in rows]

    async def analysis_for_path(self, path: str) -> tuple[int, dict[str, Any], str] | None:
        """(file id, analysis result dict, settings fingerprint) of the file at ``path``."""
        async with self.engine.connect() as conn:
            row = (
                await conn.execute(
                    select(files.c.id, analyses.c.results, analyses.c.settings_fingerprint)
                    .join(recordings, files.c.recording_id == recordings.c.id)
                    .join(analyses, analyses.c.audio_hash == recordings.c.audio_hash)
                    .where(files.c.path == path, analyses.c.state == AnalysisState.DONE.value)
                )
            ).first()
        if row is None or not isinstance(row.results, dict):
            return None
        result = row.results.get("result")
        return (row.id, result, row.settings_fingerprint) if isinstance(result, dict) else None

    # ---- the graph outbox ------------------------------------------------------------------

    async def outbox_batch(self, limit: int) -> list[tuple[int, uuid.UUID]]:
        async with self.engine.connect() as conn:
            rows = await conn.execute(
                select(graph_outbox.c.id, graph_outbox.c.recording_id)
                .order_by(graph_outbox.c.id)
                .limit(limit)
            )
            return [(r.id, r.recording_id) for r in rows]

    async def delete_outbox(self, ids: Sequence[int]) -> None:
        async with self.engine.begin() as conn:
            for chunk in _chunks(ids, IN_CHUNK):
                await conn.execute(delete(graph_outbox).where(graph_outbox.c.id.in_(chunk)))

    async def clear_outbox(self) -> None:
        async with self.engine.begin() as conn:
            await conn.execute(delete(graph_outbox))

    async def outbox_stats(self) -> tuple[int, datetime | None]:
        async with self.engine.connect() as conn:
            row = (
                await conn.execute(select(func.count(), func.min(graph_outbox.c.created_at)))
            ).one()
        oldest = row[1]
        if oldest is not None and oldest.tzinfo is None:
            oldest = oldest.replace(tzinfo=UTC)
        return int(row[0]), oldest

    async def recording_ids(self, after: uuid.UUID | None, limit: int) -> list[uuid.UUID]:
        """Every recording id, in pages (for rebuilding projections)."""
        query = select(recordings.c.id).order_by(recordings.c.id).limit(limit)
        if after is not None:
            query = query.where(recordings.c.id > after)
        async with self.engine.connect() as conn:
            return list((await conn.execute(query)).scalars().all())

    async def recording_projections(
        self, rec_ids: Sequence[uuid.UUID]
    ) -> dict[uuid.UUID, RecordingProjection | None]:
        """What the graph shows of each recording; None for recordings that no longer exist."""
        out: dict[uuid.UUID, RecordingProjection | None] = dict.fromkeys(rec_ids)
        if not rec_ids:
            return out
        async with self.engine.connect() as conn:
            for chunk in _chunks(list(rec_ids), IN_CHUNK):
                for r in await conn.execute(select(recordings).where(recordings.c.id.in_(chunk))):
                    out[r.id] = RecordingProjection(
                        id=r.id,
                        file_path=r.file_path,
                        file_name=r.file_name,
                        sha256=r.sha256_hash,
                        format=r.format,
                    )
                for f in await conn.execute(
                    select(files.c.recording_id, files.c.path)
                    .where(
                        files.c.recording_id.in_(chunk),
                        files.c.state != FileState.MISSING.value,
                    )
                    .order_by(files.c.id)
                ):
                    proj = out.get(f.recording_id)
                    if proj is not None:
                        proj.paths.append(f.path)
                for m in await conn.execute(
                    select(
                        metadata_entries.c.recording_id,
                        metadata_entries.c.key,
                        metadata_entries.c.value,
                    ).where(metadata_entries.c.recording_id.in_(chunk))
                ):
                    proj = out.get(m.recording_id)
                    if proj is not None:
                        proj.metadata[m.key] = m.value
                for t in await conn.execute(
                    select(tracklists).where(tracklists.c.recording_id.in_(chunk))
                ):
                    proj = out.get(t.recording_id)
                    if proj is not None:
                        proj.tracklists.append(
                            {
                                "id": str(t.id),
                                "source": t.source,
                                "cue_file_path": t.cue_file_path,
                                "tracks": t.tracks,
                            }
                        )
        # A recording with no present file is not shown in the graph.
        return {k: (v if v is not None and v.paths else None) for k, v in out.items()}

    # ---- maintenance and reporting ---------------------------------------------------------

    async def purge_missing(self, older_than: timedelta) -> int:
        cutoff = utcnow() - older_than
        async with self.engine.begin() as conn:
            result = await conn.execute(
                delete(files)
                .where(files.c.state == FileState.MISSING.value, files.c.missing_since < cutoff)
                .returning(files.c.recording_id)
            )
            affected = {r.recording_id for r in result if r.recording_id is not None}
            for rec_id in affected:
                await _drop_if_orphan(conn, rec_id)
            await _touch_graph(conn, affected)
            return len(affected)

    async def status(self, failures: int = 10) -> CatalogStatus:
        st = CatalogStatus()
        async with self.engine.connect() as conn:
            rows = await conn.execute(select(files.c.state, func.count()).group_by(files.c.state))
            st.files_by_state = {state.value: 0 for state in FileState}
            st.files_by_state.update({r[0]: r[1] for r in rows})
            st.recordings = (
                await conn.execute(select(func.count()).select_from(recordings))
            ).scalar_one()
            dup = _duplicate_counts().subquery()
            agg = (
                await conn.execute(
                    select(func.count(), func.coalesce(func.sum(dup.c.n), 0)).select_from(dup)
                )
            ).one()
            st.duplicate_recordings, st.duplicate_files = int(agg[0]), int(agg[1])
            rows = await conn.execute(
                select(files.c.path, files.c.error_class, files.c.last_error, files.c.updated_at)
                .where(files.c.state == FileState.FAILED.value)
                .order_by(files.c.updated_at.desc(), files.c.id.desc())
                .limit(failures)
            )
            st.recent_failures = [
                Failure(r.path, r.error_class or "", r.last_error or "", r.updated_at) for r in rows
            ]
        return st

    async def duplicates(self, limit: int = 100) -> list[DuplicateGroup]:
        async with self.engine.connect() as conn:
            dup = _duplicate_counts().limit(limit).subquery()
            rows = await conn.execute(
                select(recordings.c.id, recordings.c.sha256_hash, recordings.c.size, files.c.path)
                .join(dup, dup.c.recording_id == recordings.c.id)
                .join(files, files.c.recording_id == recordings.c.id)
                .where(files.c.state != FileState.MISSING.value)
                .order_by(recordings.c.size.desc(), recordings.c.id, files.c.path)
            )
            groups: dict[uuid.UUID, DuplicateGroup] = {}
            for r in rows:
                g = groups.setdefault(r.id, DuplicateGroup(r.id, r.sha256_hash, r.size, []))
                g.paths.append(r.path)
            return list(groups.values())

    async def recording_for_path(self, path: str) -> dict[str, Any] | None:
        """The recording at ``path`` with its metadata, for `tracktiond show` and tests."""
        async with self.engine.connect() as conn:
            row = (
                await conn.execute(
                    select(
                        files,
                        recordings.c.sha256_hash,
                        recordings.c.xxh128_hash,
                        recordings.c.file_path.label("recording_path"),
                    )
                    .select_from(
                        files.outerjoin(recordings, files.c.recording_id == recordings.c.id)
                    )
                    .where(files.c.path == path)
                )
            ).first()
            if row is None:
                return None
            data = dict(row._mapping)
            meta: dict[str, str] = {}
            if row.recording_id is not None:
                for m in await conn.execute(
                    select(metadata_entries.c.key, metadata_entries.c.value).where(
                        metadata_entries.c.recording_id == row.recording_id
                    )
                ):
                    meta[m.key] = m.value
            data["metadata"] = meta
            return data


# ---- helpers (module-private) ---------------------------------------------------------------


def _reason(exc: BaseException) -> str:
    orig = getattr(exc, "orig", None)
    text_ = str(orig or exc).strip().splitlines()
    return text_[0] if text_ else type(exc).__name__


def _chunks(items: Sequence[Any] | Iterable[Any], size: int) -> Iterable[list[Any]]:
    batch: list[Any] = []
    for item in items:
        batch.append(item)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch


def _under(root: str) -> Any:
    # Path range instead of LIKE: no escaping of % and _, and it uses the unique index.
    root = root.rstrip("/") or "/"
    prefix = root if root == "/" else root + "/"
    upper = prefix[:-1] + chr(ord("/") + 1)
    return or_(files.c.path == root, and_(files.c.path >= prefix, files.c.path < upper))


_KNOWN_COLUMNS = 9


def _known_select() -> Any:
    return select(
        files.c.id,
        files.c.path,
        files.c.size,
        files.c.mtime_ns,
        files.c.ctime_ns,
        files.c.inode,
        files.c.device,
        files.c.state,
        # Raw, not through the Uuid type's result processing: see KnownFile.recording_ref.
        type_coerce(files.c.recording_id, String).label("recording_ref"),
    )


def _known(row: Any) -> KnownFile:
    # Positional: the columns of _known_select(), in the order of KnownFile's fields (a query
    # may add columns after them).
    return KnownFile(*row[:_KNOWN_COLUMNS])


def _stat_values(o: Observed) -> dict[str, int]:
    return {
        "size": o.size,
        "mtime_ns": o.mtime_ns,
        "ctime_ns": o.ctime_ns,
        "inode": to_int64(o.inode),
        "device": to_int64(o.device),
    }


def _dialect_insert(dialect: str, table: Any) -> Any:
    module = postgresql if dialect == "postgresql" else sqlite
    return module.insert(table)


def _duplicate_counts() -> Any:
    return (
        select(files.c.recording_id, func.count().label("n"))
        .where(files.c.recording_id.is_not(None), files.c.state != FileState.MISSING.value)
        .group_by(files.c.recording_id)
        .having(func.count() > 1)
    )


async def _replace_metadata(conn: AsyncConnection, rec_id: uuid.UUID, res: IngestResult) -> None:
    await _replace_tracklist(conn, rec_id, res)
    await conn.execute(
        delete(metadata_entries).where(
            metadata_entries.c.recording_id == rec_id,
            metadata_entries.c.source.in_(("tags", "stream")),
        )
    )
    rows = [
        {"recording_id": rec_id, "key": k, "value": v, "source": "tags"}
        for k, v in res.tags.items()
    ] + [
        {"recording_id": rec_id, "key": k, "value": v, "source": "stream"}
        for k, v in res.stream.items()
    ]
    if rows:
        await conn.execute(insert(metadata_entries), rows)


async def _replace_tracklist(conn: AsyncConnection, rec_id: uuid.UUID, res: IngestResult) -> None:
    """The recording's cue-sheet tracklist, as found next to the file just read."""
    await conn.execute(
        delete(tracklists).where(tracklists.c.recording_id == rec_id, tracklists.c.source == "cue")
    )
    if res.tracks:
        await conn.execute(
            insert(tracklists).values(
                id=uuid.uuid4(),
                recording_id=rec_id,
                source="cue",
                cue_file_path=res.cue_path,
                tracks=res.tracks,
                created_at=utcnow(),
            )
        )


async def _point_recording_at(
    conn: AsyncConnection, rec_id: uuid.UUID, path: str, *, replace: str
) -> None:
    await conn.execute(
        update(recordings)
        .where(recordings.c.id == rec_id, recordings.c.file_path == replace)
        .values(file_path=path, file_name=os.path.basename(path), updated_at=utcnow())
    )


async def _repoint_recordings(conn: AsyncConnection, rec_ids: Iterable[uuid.UUID]) -> None:
    """Keep each recording's file_path on a present file when its current one went away."""
    for rec_id in rec_ids:
        current = (
            await conn.execute(select(recordings.c.file_path).where(recordings.c.id == rec_id))
        ).scalar()
        if current is None:
            continue
        present = (
            (
                await conn.execute(
                    select(files.c.path)
                    .where(files.c.recording_id == rec_id, files.c.state != FileState.MISSING.value)
                    .order_by(files.c.id)
                )
            )
            .scalars()
            .all()
        )
        if present and current not in present:
            await conn.execute(
                update(recordings)
                .where(recordings.c.id == rec_id)
                .values(file_path=present[0], file_name=os.path.basename(present[0]))
            )


async def _drop_if_orphan(conn: AsyncConnection, rec_id: uuid.UUID) -> None:
    remaining = (
        await conn.execute(
            select(func.count()).select_from(files).where(files.c.recording_id == rec_id)
        )
    ).scalar_one()
    if remaining == 0:
        await conn.execute(delete(recordings).where(recordings.c.id == rec_id))


def _exists(path: str) -> bool:
    # One lstat while deciding move-versus-copy inside a short transaction; cheap on local
    # disks, and the alternative (deciding outside) would race with the disk changing.
    return os.path.lexists(path)


def _duration(res: IngestResult) -> float | None:
    try:
        return float(res.stream.get("duration", "")) or None
    except ValueError:
        return None


async def _link_analysis(
    conn: AsyncConnection, dialect: str, rec_id: uuid.UUID, res: IngestResult, now: datetime
) -> None:
    """Make sure the recording's audio has an analysis row; copy finished results over."""
    duration = _duration(res)
    await conn.execute(
        _dialect_insert(dialect, analyses)
        .values(
            audio_hash=res.audio_hash,
            state=AnalysisState.PENDING.value,
            attempts=0,
            duration_seconds=duration,
            created_at=now,
            updated_at=now,
        )
        .on_conflict_do_nothing()
    )
    row = (
        await conn.execute(
            select(analyses.c.state, analyses.c.results).where(
                analyses.c.audio_hash == res.audio_hash
            )
        )
    ).first()
    if row is not None and row.state == AnalysisState.DONE.value and row.results:
        metadata = row.results.get("metadata") if isinstance(row.results, dict) else None
        if isinstance(metadata, dict):
            await _write_analysis_metadata(
                conn, rec_id, {str(k): str(v) for k, v in metadata.items()}
            )


async def _write_analysis_metadata(
    conn: AsyncConnection, rec_id: uuid.UUID, metadata: dict[str, str]
) -> None:
    await conn.execute(
        delete(metadata_entries).where(
            metadata_entries.c.recording_id == rec_id, metadata_entries.c.source == "analysis"
        )
    )
    rows = [
        {"recording_id": rec_id, "key": k, "value": v, "source": "analysis"}
        for k, v in metadata.items()
    ]
    if rows:
        await conn.execute(insert(metadata_entries), rows)


async def _touch_graph(conn: AsyncConnection, rec_ids: Iterable[uuid.UUID | None]) -> None:
    """Queue the recordings for the graph, in the transaction that changed them."""
    now = utcnow()
    rows = [{"recording_id": r, "created_at": now} for r in set(rec_ids) if r is not None]
    if rows:
        await conn.execute(insert(graph_outbox), rows)
