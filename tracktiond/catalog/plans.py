"""Organise plans and their journal: the tables, and every query on them.

A *plan* (``organise_plans``) is one run of ``tracktiond organise`` (or one file moved by the
daemon's inbox flow): its *steps* (``organise_steps``) say what moves where, or why a file is
skipped, and each step's ``state`` is the journal::

    planned ─> moving ─> done ─> undoing ─> undone
       │          └────> failed (with the reason; the source is intact)
       └─> skipped (decided at planning, with the reason)

``moving`` and ``undoing`` are written (committed) *before* the filesystem is touched, and the
outcome after, so after a kill -9 or a power cut the steps left in those states are exactly the
ones whose outcome must be read from the disk (``organise.journal`` settles them). A plan being
applied or undone names its ``owner`` (host:pid:nonce, as the lease queues do) and beats a
``heartbeat``: a plan whose owner is dead is taken over at the next start.

Recording a finished move brings the catalog along in the same transaction: the file row takes
its new path and stat (its recording, analysis, tracklist and graph node stay: identity follows
content), a moved sheet or list its tracklist source row and its tracklists' path (a sheet
embedded in a moved file likewise), and the graph outbox is told. So the
reconcile that follows the move finds the file known and unchanged: nothing is read again.

The daemon's inbox queue (``organise_queue``, ``catalog.work.OrganiseQueue``): one row per file
that arrived in an inbox root, with its own lease columns.
"""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field, fields
from datetime import datetime, timedelta
from typing import Any, cast

from sqlalchemy import (
    BigInteger,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Table,
    Text,
    bindparam,
    delete,
    exists,
    func,
    insert,
    literal_column,
    or_,
    select,
    type_coerce,
    update,
)
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.orm import Mapped, mapped_column

from tracktiond.catalog.base import IN_CHUNK, StoreBase, _chunks, _under
from tracktiond.catalog.leases import dead_local_owners
from tracktiond.catalog.models import (
    Base,
    FileState,
    JSONVariant,
    UTCDateTime,
    files,
    metadata_entries,
    recordings,
    tracklist_sources,
    tracklists,
    utcnow,
)
from tracktiond.catalog.upkeep import _drop_if_orphan, _touch_graph
from tracktiond.catalog.values import to_int64

# A plan whose owner has not beaten for this long (on another host) is taken over.
PLAN_LEASE = timedelta(minutes=5)


class PlanState:
    APPLYING = "applying"
    APPLIED = "applied"
    UNDOING = "undoing"
    UNDONE = "undone"


class StepState:
    PLANNED = "planned"
    SKIPPED = "skipped"
    MOVING = "moving"
    DONE = "done"
    FAILED = "failed"
    UNDOING = "undoing"
    UNDONE = "undone"
    KEPT = "kept"  # undo refused for this step (the file changed place or identity): reason says


class OrganisePlan(Base):
    __tablename__ = "organise_plans"
    __table_args__ = (Index("ix_organise_plans_state", "state"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    kind: Mapped[str] = mapped_column(String(16))  # "organise" (the command) or "inbox"
    state: Mapped[str] = mapped_column(String(16))
    paths: Mapped[Any] = mapped_column(JSONVariant)  # what was asked to be organised
    summary: Mapped[Any] = mapped_column(JSONVariant)  # counts and options, for the report
    owner: Mapped[str | None] = mapped_column(String(96), nullable=True)
    heartbeat: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    undone_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)


class OrganiseStep(Base):
    __tablename__ = "organise_steps"
    __table_args__ = (
        Index("ix_organise_steps_plan_id_seq", "plan_id", "seq"),
        Index("ix_organise_steps_plan_id_state", "plan_id", "state"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    plan_id: Mapped[int] = mapped_column(
        Integer, ForeignKey("organise_plans.id", ondelete="CASCADE")
    )
    seq: Mapped[int] = mapped_column(Integer)
    kind: Mapped[str] = mapped_column(String(16))  # audio, sidecar, cover, cue
    # The step this one travels with (a sidecar's audio step): skipped if that one did not move.
    follows: Mapped[int | None] = mapped_column(Integer, nullable=True)
    file_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    source: Mapped[str] = mapped_column(Text)
    target: Mapped[str] = mapped_column(Text)
    state: Mapped[str] = mapped_column(String(16))
    reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    note: Mapped[str | None] = mapped_column(Text, nullable=True)  # e.g. "numbered: x exists"
    method: Mapped[str | None] = mapped_column(String(16), nullable=True)
    # The source as the plan saw it (checked again before the step).
    size: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    mtime_ns: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    ctime_ns: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    inode: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    device: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    sha256: Mapped[str | None] = mapped_column(String(64), nullable=True)
    # The file at its target after the move (what undo checks before moving it back).
    moved_inode: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    moved_device: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    created_dirs: Mapped[Any] = mapped_column(JSONVariant, nullable=True)
    removed_dirs: Mapped[Any] = mapped_column(JSONVariant, nullable=True)
    details: Mapped[Any] = mapped_column(JSONVariant, nullable=True)  # cue: the references
    original: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)  # cue bytes before
    rewritten_sha256: Mapped[str | None] = mapped_column(String(64), nullable=True)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class OrganiseQueueEntry(Base):
    """A file that arrived in an inbox root: the daemon's organise stage's queue."""

    __tablename__ = "organise_queue"
    __table_args__ = (Index("ix_organise_queue_lease_owner", "lease_owner"),)

    file_id: Mapped[int] = mapped_column(
        Integer, ForeignKey("files.id", ondelete="CASCADE"), primary_key=True
    )
    state: Mapped[str] = mapped_column(String(16))  # pending, done, skipped, failed, undone
    reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    plan_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    lease_owner: Mapped[str | None] = mapped_column(String(96), nullable=True)
    lease_expires: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    not_before: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


organise_plans = cast(Table, OrganisePlan.__table__)
organise_steps = cast(Table, OrganiseStep.__table__)
organise_queue = cast(Table, OrganiseQueueEntry.__table__)


# -- what callers hand in and get back ---------------------------------------------------------


@dataclass(frozen=True, slots=True)
class InboxClaim:
    """What the inbox queue is claimed with."""

    inboxes: tuple[str, ...]
    wait_for_analysis: bool = False


@dataclass(frozen=True, slots=True)
class InboxJob:
    """One inbox file for the daemon's organise stage."""

    file_id: int
    path: str
    attempts: int = 0


@dataclass(frozen=True, slots=True)
class OrganiseSource:
    """A file the planner may place: its row, its recording's format, hash and metadata."""

    file_id: int
    path: str
    state: str
    last_error: str | None
    size: int
    mtime_ns: int
    inode: int
    device: int
    format: str
    sha256: str | None
    metadata: dict[str, str]


@dataclass(slots=True)
class StepRow:
    """One step of a plan, as planned (``id`` is None until stored) or as stored."""

    seq: int
    kind: str
    source: str
    target: str
    state: str
    reason: str | None = None
    note: str | None = None
    follows: int | None = None  # seq of the step this one travels with
    file_id: int | None = None
    size: int | None = None
    mtime_ns: int | None = None
    ctime_ns: int | None = None
    inode: int | None = None
    device: int | None = None
    sha256: str | None = None
    details: dict[str, Any] | None = None
    id: int | None = None
    method: str | None = None
    moved_inode: int | None = None
    moved_device: int | None = None
    created_dirs: list[str] | None = None
    removed_dirs: list[str] | None = None
    original: bytes | None = None
    rewritten_sha256: str | None = None


@dataclass(slots=True)
class StepOutcome:
    """What the journal records for a step after touching the disk."""

    step: StepRow
    state: str
    reason: str | None = None
    method: str | None = None
    stat: tuple[int, int, int, int, int] | None = None  # size, mtime, ctime, inode, device
    removed_dirs: list[str] = field(default_factory=list)
    created_dirs: list[str] = field(default_factory=list)
    rewritten_sha256: str | None = None


@dataclass(frozen=True, slots=True)
class PlanInfo:
    id: int
    kind: str
    state: str
    paths: list[str]
    summary: dict[str, Any]
    owner: str | None
    created_at: datetime
    finished_at: datetime | None
    undone_at: datetime | None
    counts: dict[str, int]


_STEP_COLUMNS = tuple(f.name for f in fields(StepRow))


def _step(row: Any) -> StepRow:
    data = {k: getattr(row, k) for k in _STEP_COLUMNS}
    return StepRow(**data)


class OrganiseMixin(StoreBase):
    """Plans, their steps (the journal) and the inbox queue."""

    # -- what the planner reads ------------------------------------------------------------

    async def organise_sources(
        self, paths: Sequence[str], chunk: int = 2000
    ) -> AsyncIterator[list[OrganiseSource]]:
        """Present files at or under ``paths``, in id order, a chunk at a time, each with its
        recording's metadata: one query per chunk, one row per file.

        The metadata rows (about eight per file: tags and stream properties) are folded into
        one JSON object per file by the database — the tags' object merged over the one of
        everything else, so tags win over stream properties of the same name — and parsed by
        ``json.loads``: a plan reads 100,000 files, and a Row object per metadata row was most
        of the time it took to read them."""
        where = [files.c.state != FileState.MISSING.value]
        if paths:
            where.append(or_(*[_under(p) for p in paths]))
        m = metadata_entries.alias("m")
        postgres = self.dialect == "postgresql"
        agg = func.jsonb_object_agg if postgres else func.json_group_object

        def fold(*condition: Any) -> Any:
            return (
                select(agg(m.c.key, m.c.value))
                .where(m.c.recording_id == files.c.recording_id, *condition)
                .scalar_subquery()
            )

        # Merged in the database, the tags' object patched over the rest's: one object to parse.
        rest, tags = fold(m.c.source != "tags"), fold(m.c.source == "tags")
        merged: Any
        if postgres:
            empty: Any = literal_column("'{}'::jsonb")
            merged = func.coalesce(rest, empty).op("||")(func.coalesce(tags, empty)).cast(Text)
        else:
            merged = func.json_patch(rest, tags)  # json_group_object of no rows is '{}'

        query = select(
            files.c.id,
            files.c.path,
            files.c.state,
            files.c.last_error,
            files.c.size,
            files.c.mtime_ns,
            files.c.inode,
            files.c.device,
            recordings.c.format,
            recordings.c.sha256_hash,
            type_coerce(merged, String),
        ).select_from(files.outerjoin(recordings, files.c.recording_id == recordings.c.id))
        last_id = 0
        while True:
            # A connection per chunk: no read transaction held open while the planner works
            # (on SQLite one would hold back the WAL checkpoint).
            async with self.engine.connect() as conn:
                rows = (
                    await conn.execute(
                        query.where(*where, files.c.id > last_id).order_by(files.c.id).limit(chunk)
                    )
                ).all()
            if not rows:
                return
            last_id = rows[-1][0]
            out = []
            for fid, path, state, error, size, mtime, inode, device, fmt, sha, metadata in rows:
                out.append(
                    OrganiseSource(
                        file_id=fid,
                        path=path,
                        state=state,
                        last_error=error,
                        size=size,
                        mtime_ns=mtime,
                        inode=inode,
                        device=device,
                        format=fmt or "",
                        sha256=sha,
                        metadata=json.loads(metadata) if metadata else {},
                    )
                )
            yield out

    # -- plans -----------------------------------------------------------------------------

    async def create_plan(
        self,
        kind: str,
        paths: Sequence[str],
        steps: Sequence[StepRow],
        summary: dict[str, Any],
        owner: str,
    ) -> int:
        """Store a plan and its steps, owned by ``owner`` and ready to apply; returns its id."""
        now = utcnow()
        async with self.engine.begin() as conn:
            plan_id = (
                await conn.execute(
                    insert(organise_plans)
                    .values(
                        kind=kind,
                        state=PlanState.APPLYING,
                        paths=list(paths),
                        summary=summary,
                        owner=owner,
                        heartbeat=now,
                        created_at=now,
                    )
                    .returning(organise_plans.c.id)
                )
            ).scalar_one()
            rows = [
                {
                    "plan_id": plan_id,
                    "seq": s.seq,
                    "kind": s.kind,
                    "follows": s.follows,
                    "file_id": s.file_id,
                    "source": s.source,
                    "target": s.target,
                    "state": s.state,
                    "reason": s.reason,
                    "note": s.note,
                    "size": s.size,
                    "mtime_ns": s.mtime_ns,
                    "ctime_ns": s.ctime_ns,
                    "inode": None if s.inode is None else to_int64(s.inode),
                    "device": None if s.device is None else to_int64(s.device),
                    "sha256": s.sha256,
                    "details": s.details,
                    "updated_at": now,
                }
                for s in steps
            ]
            for batch in _chunks(rows, 500):
                await conn.execute(insert(organise_steps), batch)
        return int(plan_id)

    async def plan_info(self, plan_id: int) -> PlanInfo | None:
        async with self.engine.connect() as conn:
            row = (
                await conn.execute(select(organise_plans).where(organise_plans.c.id == plan_id))
            ).first()
            if row is None:
                return None
            counts = {
                r[0]: int(r[1])
                for r in await conn.execute(
                    select(organise_steps.c.state, func.count())
                    .where(organise_steps.c.plan_id == plan_id)
                    .group_by(organise_steps.c.state)
                )
            }
        return PlanInfo(
            id=row.id,
            kind=row.kind,
            state=row.state,
            paths=list(row.paths or []),
            summary=dict(row.summary or {}),
            owner=row.owner,
            created_at=row.created_at,
            finished_at=row.finished_at,
            undone_at=row.undone_at,
            counts=counts,
        )

    async def latest_plan(self, states: Sequence[str], kind: str | None = None) -> int | None:
        """The newest plan in one of ``states`` (of ``kind`` when given)."""
        where: list[Any] = [organise_plans.c.state.in_(list(states))]
        if kind is not None:
            where.append(organise_plans.c.kind == kind)
        async with self.engine.connect() as conn:
            plan_id = (
                await conn.execute(
                    select(organise_plans.c.id)
                    .where(*where)
                    .order_by(organise_plans.c.id.desc())
                    .limit(1)
                )
            ).scalar()
        return None if plan_id is None else int(plan_id)

    async def plans(self, limit: int = 20) -> list[PlanInfo]:
        async with self.engine.connect() as conn:
            ids = (
                await conn.execute(
                    select(organise_plans.c.id).order_by(organise_plans.c.id.desc()).limit(limit)
                )
            ).scalars()
            plan_ids = list(ids)
        infos = [await self.plan_info(i) for i in plan_ids]
        return [i for i in infos if i is not None]

    async def plan_steps(
        self,
        plan_id: int,
        states: Sequence[str] | None = None,
        *,
        limit: int | None = None,
        after_seq: int | None = None,
        descending: bool = False,
    ) -> list[StepRow]:
        where: list[Any] = [organise_steps.c.plan_id == plan_id]
        if states is not None:
            where.append(organise_steps.c.state.in_(list(states)))
        if after_seq is not None:
            where.append(
                organise_steps.c.seq < after_seq if descending else organise_steps.c.seq > after_seq
            )
        order = organise_steps.c.seq.desc() if descending else organise_steps.c.seq
        stmt = select(organise_steps).where(*where).order_by(order)
        if limit is not None:
            stmt = stmt.limit(limit)
        async with self.engine.connect() as conn:
            return [_step(r) for r in await conn.execute(stmt)]

    async def step_states(self, plan_id: int, seqs: Sequence[int]) -> dict[int, tuple[str, str]]:
        """(state, target) of the steps ``seqs`` of a plan."""
        out: dict[int, tuple[str, str]] = {}
        async with self.engine.connect() as conn:
            for chunk in _chunks(sorted(set(seqs)), IN_CHUNK):
                for r in await conn.execute(
                    select(
                        organise_steps.c.seq, organise_steps.c.state, organise_steps.c.target
                    ).where(organise_steps.c.plan_id == plan_id, organise_steps.c.seq.in_(chunk))
                ):
                    out[r.seq] = (r.state, r.target)
        return out

    async def take_plan(self, plan_id: int, owner: str, state: str) -> bool:
        """Make ``owner`` the plan's applier (or undoer) in ``state``: only when nobody else
        holds it, or its holder is dead (a process of this host that no longer runs, or silent
        for PLAN_LEASE)."""
        now = utcnow()
        async with self.engine.begin() as conn:
            row = (
                await conn.execute(
                    select(organise_plans.c.owner, organise_plans.c.heartbeat).where(
                        organise_plans.c.id == plan_id
                    )
                )
            ).first()
            if row is None:
                return False
            holder = row.owner
            if holder not in (None, owner):
                silent = row.heartbeat is None or row.heartbeat < now - PLAN_LEASE
                if not (dead_local_owners([holder]) or silent):
                    return False
            await conn.execute(
                update(organise_plans)
                .where(organise_plans.c.id == plan_id)
                .values(owner=owner, heartbeat=now, state=state)
            )
        return True

    async def finish_plan(self, plan_id: int, owner: str, state: str) -> None:
        now = utcnow()
        values: dict[str, Any] = {"owner": None, "heartbeat": None, "state": state}
        values["undone_at" if state == PlanState.UNDONE else "finished_at"] = now
        async with self.engine.begin() as conn:
            await conn.execute(
                update(organise_plans)
                .where(organise_plans.c.id == plan_id, organise_plans.c.owner == owner)
                .values(**values)
            )

    async def abandoned_plans(self) -> list[int]:
        """Plans being applied or undone whose owner is dead (kill -9, power loss)."""
        now = utcnow()
        async with self.engine.connect() as conn:
            rows = (
                await conn.execute(
                    select(
                        organise_plans.c.id, organise_plans.c.owner, organise_plans.c.heartbeat
                    ).where(organise_plans.c.state.in_((PlanState.APPLYING, PlanState.UNDOING)))
                )
            ).all()
        dead = set(dead_local_owners([r.owner for r in rows if r.owner]))
        return [
            r.id
            for r in rows
            if r.owner is None
            or r.owner in dead
            or r.heartbeat is None
            or r.heartbeat < now - PLAN_LEASE
        ]

    # -- the journal -----------------------------------------------------------------------

    async def begin_steps(
        self,
        plan_id: int,
        owner: str,
        state: str,
        steps: Sequence[StepRow],
    ) -> bool:
        """Record that ``steps`` are about to touch the disk (``moving`` or ``undoing``), with a
        cue sheet's original bytes; committed before the first system call. False when the
        plan is no longer ``owner``'s (taken over)."""
        now = utcnow()
        async with self.engine.begin() as conn:
            held = await conn.execute(
                update(organise_plans)
                .where(organise_plans.c.id == plan_id, organise_plans.c.owner == owner)
                .values(heartbeat=now)
            )
            if not held.rowcount:
                return False
            ids = [s.id for s in steps]
            for chunk in _chunks(ids, IN_CHUNK):
                await conn.execute(
                    update(organise_steps)
                    .where(organise_steps.c.id.in_(chunk))
                    .values(state=state, updated_at=now)
                )
            for s in steps:
                if s.original is not None:
                    await conn.execute(
                        update(organise_steps)
                        .where(organise_steps.c.id == s.id)
                        .values(original=s.original)
                    )
        return True

    async def finish_steps(self, plan_id: int, owner: str, outcomes: Sequence[StepOutcome]) -> None:
        """Record what the disk now says for each step, and bring the catalog along: a moved
        audio file's row takes its new place, a moved sheet or list its tracklist source row and
        its tracklists' path (an undo moves them back). A few
        statements per batch, whatever its size: per-row round trips would dominate."""
        if not outcomes:
            return
        now = utcnow()
        params = []
        moves: list[tuple[int, str, str, tuple[int, int, int, int, int]]] = []
        sheets: list[tuple[str, str]] = []  # every moved sidecar: any may be a tracklist source
        for o in outcomes:
            s = o.step
            done = o.state == StepState.DONE and o.stat is not None
            params.append(
                {
                    "b_id": s.id,
                    "b_state": o.state,
                    "b_reason": o.reason,
                    "b_method": o.method or s.method,
                    "b_rewritten": o.rewritten_sha256 or s.rewritten_sha256,
                    "b_removed": o.removed_dirs or s.removed_dirs,
                    "b_created": o.created_dirs or s.created_dirs,
                    "b_inode": to_int64(o.stat[3]) if done and o.stat else s.moved_inode,
                    "b_device": to_int64(o.stat[4]) if done and o.stat else s.moved_device,
                }
            )
            moved_to = {StepState.DONE: s.target, StepState.UNDONE: s.source}.get(o.state)
            if moved_to is None or s.source == s.target:
                continue
            moved_from = s.source if o.state == StepState.DONE else s.target
            if s.kind == "audio" and s.file_id is not None and o.stat is not None:
                moves.append((s.file_id, moved_from, moved_to, o.stat))
            elif s.kind == "sidecar":
                sheets.append((moved_from, moved_to))
        step_update = (
            update(organise_steps)
            .where(organise_steps.c.id == bindparam("b_id"))
            .values(
                state=bindparam("b_state"),
                reason=bindparam("b_reason"),
                method=bindparam("b_method"),
                rewritten_sha256=bindparam("b_rewritten"),
                removed_dirs=bindparam("b_removed", type_=JSONVariant),
                created_dirs=bindparam("b_created", type_=JSONVariant),
                moved_inode=bindparam("b_inode"),
                moved_device=bindparam("b_device"),
                updated_at=now,
            )
        )
        async with self.engine.begin() as conn:
            await conn.execute(
                update(organise_plans)
                .where(organise_plans.c.id == plan_id, organise_plans.c.owner == owner)
                .values(heartbeat=now)
            )
            await conn.execute(step_update, params)
            touched = await _move_file_rows(conn, moves)
            touched |= await _move_sidecar_sources(conn, sheets)
            await _touch_graph(conn, touched)

    # -- the inbox queue -------------------------------------------------------------------

    async def enqueue_inbox(self, inboxes: Sequence[str]) -> int:
        """Queue the cataloged files under ``inboxes`` that are not queued yet; returns how many."""
        if not inboxes:
            return 0
        now = utcnow()
        queued = select(organise_queue.c.file_id).where(organise_queue.c.file_id == files.c.id)
        candidates = select(files.c.id).where(
            or_(*[_under(p) for p in inboxes]),
            files.c.state == FileState.CATALOGED.value,
            ~exists(queued),
        )
        async with self.engine.begin() as conn:
            # A file skipped (a field without a value) or put back by an undo is tried again
            # once it changed: re-read after a tag edit, its row was updated.
            changed = select(files.c.id).where(
                files.c.id == organise_queue.c.file_id,
                files.c.updated_at > organise_queue.c.updated_at,
                files.c.state == FileState.CATALOGED.value,
            )
            await conn.execute(
                update(organise_queue)
                .where(organise_queue.c.state.in_(("skipped", "undone")), exists(changed))
                .values(state="pending", attempts=0, updated_at=now)
            )
            ids = [r[0] for r in await conn.execute(candidates)]
            for chunk in _chunks(ids, 500):
                await conn.execute(
                    insert(organise_queue),
                    [
                        {"file_id": i, "state": "pending", "attempts": 0, "updated_at": now}
                        for i in chunk
                    ],
                )
        return len(ids)

    async def record_inbox(
        self,
        file_id: int,
        owner: str,
        state: str,
        reason: str | None,
        plan_id: int | None,
        values: dict[str, Any],
    ) -> bool:
        """Record what became of an inbox file (``values``: the queue's done()/failed()).
        False when the lease went to someone else meanwhile."""
        async with self.engine.begin() as conn:
            result = await conn.execute(
                update(organise_queue)
                .where(organise_queue.c.file_id == file_id, organise_queue.c.lease_owner == owner)
                .values(state=state, reason=reason, plan_id=plan_id, updated_at=utcnow(), **values)
            )
            return bool(result.rowcount)

    async def inbox_entry(self, file_id: int) -> dict[str, Any] | None:
        async with self.engine.connect() as conn:
            row = (
                await conn.execute(
                    select(organise_queue).where(organise_queue.c.file_id == file_id)
                )
            ).first()
        return dict(row._mapping) if row is not None else None

    async def mark_inbox_undone(self, plan_id: int) -> None:
        """An undone inbox plan put its file back in the inbox: do not move it again until it
        changes (a new row is queued when the file is cataloged anew)."""
        async with self.engine.begin() as conn:
            await conn.execute(
                update(organise_queue)
                .where(organise_queue.c.plan_id == plan_id)
                .values(state="undone", updated_at=utcnow())
            )


async def _move_file_rows(
    conn: AsyncConnection, moves: Sequence[tuple[int, str, str, tuple[int, int, int, int, int]]]
) -> set[uuid.UUID]:
    """Each file row ``file_id`` is now at its new path: path, directory and stat, same
    recording (whose primary path follows when it was the old one)."""
    if not moves:
        return set()
    now = utcnow()
    touched: set[uuid.UUID] = set()
    ids = [m[0] for m in moves]
    # A row already at a new path is a location record of something no longer there (a file
    # deleted long ago, or the walk of a racing reconcile that saw the file arrive): the file at
    # that place now is this one.
    for chunk in _chunks(moves, IN_CHUNK // 2):
        others = (
            await conn.execute(
                delete(files)
                .where(
                    files.c.path.in_([m[2] for m in chunk]),
                    files.c.id.not_in([m[0] for m in chunk]),
                )
                .returning(files.c.recording_id)
            )
        ).all()
        for r in others:
            if r.recording_id is not None:
                await _drop_if_orphan(conn, r.recording_id)
                touched.add(r.recording_id)
    recording_of: dict[int, Any] = {}
    for chunk in _chunks(ids, IN_CHUNK):
        for r in await conn.execute(
            select(files.c.id, files.c.recording_id).where(files.c.id.in_(chunk))
        ):
            recording_of[r.id] = r.recording_id
    await conn.execute(
        update(files)
        .where(files.c.id == bindparam("b_id"))
        .values(
            path=bindparam("b_path"),
            dir=bindparam("b_dir"),
            size=bindparam("b_size"),
            mtime_ns=bindparam("b_mtime"),
            ctime_ns=bindparam("b_ctime"),
            inode=bindparam("b_inode"),
            device=bindparam("b_device"),
            state=FileState.CATALOGED.value,
            missing_since=None,
            last_seen=now,
            updated_at=now,
        ),
        [
            {
                "b_id": file_id,
                "b_path": new,
                "b_dir": os.path.dirname(new),
                "b_size": st[0],
                "b_mtime": st[1],
                "b_ctime": st[2],
                "b_inode": to_int64(st[3]),
                "b_device": to_int64(st[4]),
            }
            for file_id, _old, new, st in moves
        ],
    )
    primaries = [
        {
            "b_rec": recording_of[file_id],
            "b_old": old,
            "b_new": new,
            "b_name": os.path.basename(new),
        }
        for file_id, old, new, _st in moves
        if recording_of.get(file_id) is not None
    ]
    if primaries:
        await conn.execute(
            update(recordings)
            .where(
                recordings.c.id == bindparam("b_rec"), recordings.c.file_path == bindparam("b_old")
            )
            .values(file_path=bindparam("b_new"), file_name=bindparam("b_name"), updated_at=now),
            primaries,
        )
    touched |= {p["b_rec"] for p in primaries}
    if primaries:
        await _follow_embedded_sheets(conn, primaries, now)
    return touched


async def _follow_embedded_sheets(
    conn: AsyncConnection, primaries: list[dict[str, Any]], now: datetime
) -> None:
    """A sheet embedded in a moved file is a source named by the file's path: it follows, so
    the path names the sheet for people and a later file at the old path (whose own embedded
    sheet replaces any source row left there) cannot take this recording's source away. One
    query finds the few moved recordings that have one; nothing more is done for the rest."""
    having: set[uuid.UUID] = set()
    for chunk in _chunks([p["b_rec"] for p in primaries], IN_CHUNK):
        rows = await conn.execute(
            select(tracklist_sources.c.recording_id).where(
                tracklist_sources.c.kind == "embedded",
                tracklist_sources.c.recording_id.in_(chunk),
            )
        )
        having |= {r.recording_id for r in rows}
    moving = [p for p in primaries if p["b_rec"] in having]
    if not moving:
        return
    await _clear_sources_at(
        conn, [p["b_new"] for p in moving], embedded=True, keep={p["b_rec"] for p in moving}
    )
    await conn.execute(
        update(tracklist_sources)
        .where(
            tracklist_sources.c.recording_id == bindparam("b_rec"),
            tracklist_sources.c.path == bindparam("b_old"),
            tracklist_sources.c.kind == "embedded",
        )
        .values(path=bindparam("b_new"), dir=bindparam("b_dir"), updated_at=now),
        [p | {"b_dir": os.path.dirname(p["b_new"])} for p in moving],
    )
    await conn.execute(
        update(tracklists)
        .where(
            tracklists.c.recording_id == bindparam("b_rec"),
            tracklists.c.cue_file_path == bindparam("b_old"),
            tracklists.c.source == "embedded_cue",
        )
        .values(cue_file_path=bindparam("b_new")),
        [{k: p[k] for k in ("b_rec", "b_old", "b_new")} for p in moving],
    )


async def _move_sidecar_sources(
    conn: AsyncConnection, moves: Sequence[tuple[str, str]]
) -> set[uuid.UUID]:
    """Each moved sidecar (old path, new path) that is a tracklist source (a sheet or list read
    by the tracklist stage) takes its source row along, and the tracklists read from it their
    path: the walk then finds the sheet where the catalog says it is (no new source read as new,
    no old one retired as gone). The recordings whose tracklists changed path are returned."""
    if not moves:
        return set()
    now = utcnow()
    touched = await _clear_sources_at(conn, [new for _old, new in moves], embedded=False)
    olds = [old for old, _new in moves]
    for chunk in _chunks(olds, IN_CHUNK):
        rows = await conn.execute(
            select(tracklists.c.recording_id).where(tracklists.c.cue_file_path.in_(chunk))
        )
        touched |= {r.recording_id for r in rows}
    params = [{"b_old": old, "b_new": new, "b_dir": os.path.dirname(new)} for old, new in moves]
    await conn.execute(
        update(tracklist_sources)
        .where(
            tracklist_sources.c.path == bindparam("b_old"),
            tracklist_sources.c.kind != "embedded",
        )
        .values(path=bindparam("b_new"), dir=bindparam("b_dir"), updated_at=now),
        params,
    )
    await conn.execute(
        update(tracklists)
        .where(tracklists.c.cue_file_path == bindparam("b_old"))
        .values(cue_file_path=bindparam("b_new")),
        [{"b_old": p["b_old"], "b_new": p["b_new"]} for p in params],
    )
    return touched


async def _clear_sources_at(
    conn: AsyncConnection,
    paths: Sequence[str],
    *,
    embedded: bool,
    keep: set[uuid.UUID] | frozenset[uuid.UUID] = frozenset(),
) -> set[uuid.UUID]:
    """Delete the source rows (sidecar, or ``embedded``) at ``paths`` a move is about to take:
    a move never overwrites, so such a row describes a file no longer there (gone, or not yet
    noticed gone), and the unique (path, kind) would refuse the moving row. Their current
    tracklists are retired first (kept as history), as a vanished source's are. ``keep``:
    recordings whose embedded rows are the ones moving. Returns the recordings touched."""
    t = tracklist_sources
    kind = t.c.kind == "embedded" if embedded else t.c.kind != "embedded"
    stale: list[int] = []
    for chunk in _chunks(paths, IN_CHUNK):
        rows = await conn.execute(select(t.c.id, t.c.recording_id).where(t.c.path.in_(chunk), kind))
        stale += [r.id for r in rows if r.recording_id is None or r.recording_id not in keep]
    touched: set[uuid.UUID] = set()
    for chunk in _chunks(stale, IN_CHUNK):
        retired = await conn.execute(
            update(tracklists)
            .where(tracklists.c.source_id.in_(chunk), tracklists.c.superseded_at.is_(None))
            .values(superseded_at=utcnow())
            .returning(tracklists.c.recording_id)
        )
        touched |= {r.recording_id for r in retired}
        await conn.execute(delete(t).where(t.c.id.in_(chunk)))
    return touched
