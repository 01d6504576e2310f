"""The fingerprint index in the catalog: fingerprints per audio stream, posting batches, sets.

Writes (each one transaction, so a kill -9 leaves either all of a write or none of it):

- ``seed_fingerprints``: every audio stream a cataloged file holds gets a pending row (the
  queue, ``work.FingerprintQueue``); moves, renames and tag edits keep the audio identity, so
  they never fingerprint again;
- ``record_fingerprints``: what the stage found for a group of streams. Tracks get a new track
  number each and their postings go into one new batch; a track fingerprinted before (other
  settings) has its old postings counted dead. Sets keep their peaks. Any change bumps the
  index's generation, so sets are identified again once the index is quiet;
- ``record_identification``: a set's tracklist (source "auto", one version per change) and the
  generation it was identified against;
- ``retire_orphaned_fingerprints``: streams no file holds any more leave the index.

Batches stay few and large: small batches are merged once ``MERGE_COUNT`` of them exist, and a
batch more than half dead is rewritten without its dead postings — a track is removed or
re-indexed without touching any batch but its own.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import anyio
from sqlalchemy import delete, exists, func, literal, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from tracktiond.catalog.base import StoreBase, _dialect_insert
from tracktiond.catalog.leases import DEFAULT_BACKOFF, Backoff
from tracktiond.catalog.models import (
    FileState,
    FingerprintState,
    UTCDateTime,
    analyses,
    files,
    fingerprint_batches,
    fingerprint_index,
    fingerprints,
    recordings,
    tracklists,
    utcnow,
)
from tracktiond.catalog.tracklists import _save
from tracktiond.catalog.tracklistvalues import EntryMatch, TracklistDraft
from tracktiond.catalog.values import FingerprintJob, IdentifyJob
from tracktiond.catalog.work import FingerprintQueue, IdentifyQueue
from tracktiond.errors import FailureClass

if TYPE_CHECKING:
    # The fingerprinter's numeric stack (SciPy's filters: ~0.5 s) is imported when postings
    # are first packed or read, not by every command that opens the catalog.
    from tracktiond.fingerprint.postings import Batch
    from tracktiond.fingerprint.triplets import Hashes

SMALL_BATCH = 1 << 19  # postings: below this a batch is merged with others
MERGE_COUNT = 4  # small batches that trigger a merge
S = FingerprintState


@dataclass(frozen=True, slots=True)
class Fingerprinted:
    """What the stage made of one stream: its length, and either a track's index hashes or a
    set's encoded peaks; or the failure."""

    job: FingerprintJob
    settings: str
    frames: int = 0
    seconds: float = 0.0
    kind: str | None = None  # "track" or "set"
    hashes: Hashes | None = None  # a track's
    peaks: bytes | None = None  # a set's
    failure: tuple[FailureClass, str] | None = None
    elapsed: float = 0.0


@dataclass(frozen=True, slots=True)
class IndexSnapshot:
    """What a query reads the index with: the batches, and the live tracks' lengths and audio."""

    generation: int
    batch_ids: tuple[int, ...]
    frames: dict[int, int]  # track number -> frames
    audio: dict[int, str]  # track number -> audio hash


@dataclass(frozen=True, slots=True)
class IndexStats:
    tracks: int
    sets: int
    sets_identified: int
    pending: int
    failed: int
    postings: int
    index_bytes: int
    indexed_seconds: float
    batches: int
    generation: int


async def _bump(conn: AsyncConnection) -> None:
    await conn.execute(
        update(fingerprint_index)
        .where(fingerprint_index.c.id == 1)
        .values(generation=fingerprint_index.c.generation + 1, changed_at=utcnow())
    )


async def _kill_postings(conn: AsyncConnection, batch_id: int | None, postings: int | None) -> None:
    if batch_id is not None and postings:
        await conn.execute(
            update(fingerprint_batches)
            .where(fingerprint_batches.c.id == batch_id)
            .values(dead_postings=fingerprint_batches.c.dead_postings + postings)
        )


async def _insert_batch(conn: AsyncConnection, batch: Batch, tracks: int) -> int:
    keys, postings = await anyio.to_thread.run_sync(batch.encode)
    result = await conn.execute(
        fingerprint_batches.insert()
        .values(
            keys=keys,
            postings=postings,
            n_postings=len(batch),
            n_tracks=tracks,
            dead_postings=0,
            created_at=utcnow(),
        )
        .returning(fingerprint_batches.c.id)
    )
    return int(result.scalar_one())


async def _rewrite(conn: AsyncConnection, batch_ids: Sequence[int]) -> None:
    """Replace ``batch_ids`` by one batch holding their live postings."""
    from tracktiond.fingerprint.postings import Batch

    fb, fp = fingerprint_batches, fingerprints
    live = dict(
        (
            await conn.execute(
                select(fp.c.track_no, fp.c.batch_id).where(fp.c.batch_id.in_(list(batch_ids)))
            )
        ).all()
    )
    parts = []
    query = select(fb.c["keys"], fb.c.postings).where(fb.c.id.in_(batch_ids))
    for keys, postings in await conn.execute(query):
        parts.append(Batch.decode(bytes(keys), bytes(postings)))

    def merged() -> Batch:
        batch = Batch.merge(parts)
        keep = set(live)
        return batch.without({int(t) for t in set(batch.tracks().tolist()) - keep})

    batch = await anyio.to_thread.run_sync(merged)
    await conn.execute(delete(fb).where(fb.c.id.in_(list(batch_ids))))
    if not live:
        return
    new_id = await _insert_batch(conn, batch, len(live))
    await conn.execute(update(fp).where(fp.c.batch_id.in_(list(batch_ids))).values(batch_id=new_id))


async def _compact(conn: AsyncConnection) -> None:
    fb = fingerprint_batches
    rows = (await conn.execute(select(fb.c.id, fb.c.n_postings, fb.c.dead_postings))).all()
    for r in rows:
        if r.n_postings >= SMALL_BATCH and r.dead_postings * 2 > r.n_postings:
            await _rewrite(conn, [r.id])
    small = [r.id for r in rows if r.n_postings < SMALL_BATCH]
    if len(small) >= MERGE_COUNT:
        await _rewrite(conn, small)


class FingerprintsMixin(StoreBase):
    """The fingerprint index: tracks indexed once per audio stream, sets identified."""

    async def seed_fingerprints(self) -> int:
        """A pending row for every audio stream a cataloged file holds and that has none."""
        fp = fingerprints
        held = (
            select(recordings.c.id)
            .join(files, files.c.recording_id == recordings.c.id)
            .where(
                recordings.c.audio_hash == analyses.c.audio_hash,
                files.c.state == FileState.CATALOGED.value,
            )
        )
        now = literal(utcnow(), UTCDateTime())
        missing = select(
            analyses.c.audio_hash,
            literal(S.PENDING.value),
            literal(0),
            literal(0),
            now,
            now,
        ).where(
            ~exists(select(fp.c.audio_hash).where(fp.c.audio_hash == analyses.c.audio_hash)),
            exists(held),
        )
        statement = (
            _dialect_insert(self.dialect, fp)
            .from_select(
                [
                    "audio_hash",
                    "state",
                    "attempts",
                    "identify_attempts",
                    "created_at",
                    "updated_at",
                ],
                missing,
            )
            .on_conflict_do_nothing()
        )
        async with self.engine.begin() as conn:
            result = await conn.execute(statement)
            return int(result.rowcount or 0)

    async def record_fingerprints(
        self,
        owner: str,
        done: Sequence[Fingerprinted],
        *,
        max_attempts: int = 3,
        backoff: Backoff = DEFAULT_BACKOFF,
    ) -> list[str]:
        """Store what the stage found; per stream the state ("done", "pending" for a retry,
        "failed", or "lost" when ``owner`` no longer holds its lease)."""
        fp = fingerprints
        now = utcnow()
        states: list[str] = []
        async with self.engine.begin() as conn:
            current = {
                r.audio_hash: r
                for r in await conn.execute(
                    select(
                        fp.c.audio_hash, fp.c.lease_owner, fp.c.attempts, fp.c.track_no,
                        fp.c.batch_id, fp.c.postings,
                    ).where(fp.c.audio_hash.in_([d.job.audio_hash for d in done]))
                )
            }  # fmt: skip
            new_tracks: list[tuple[Fingerprinted, Hashes]] = []
            changed = False
            for d in done:
                row = current.get(d.job.audio_hash)
                if row is None or row.lease_owner != owner:
                    states.append("lost")
                    continue
                where = fp.c.audio_hash == d.job.audio_hash
                if d.failure is not None:
                    klass, reason = d.failure
                    attempt = FingerprintQueue.failed(
                        row.attempts,
                        retryable=klass is FailureClass.TRANSIENT,
                        max_attempts=max_attempts,
                        now=now,
                        backoff=backoff,
                    )
                    state = S.PENDING if attempt.retry else S.FAILED
                    await conn.execute(
                        update(fp)
                        .where(where)
                        .values(
                            state=state.value,
                            settings=d.settings,
                            error_class=klass.value,
                            last_error=reason,
                            elapsed_seconds=d.elapsed,
                            updated_at=now,
                            **attempt.values,
                        )
                    )
                    states.append(state.value)
                    continue
                if row.track_no is not None:  # fingerprinted before: its old postings go
                    await _kill_postings(conn, row.batch_id, row.postings)
                    changed = True
                values: dict[str, Any] = {
                    "state": S.DONE.value,
                    "settings": d.settings,
                    "kind": d.kind,
                    "frames": d.frames,
                    "seconds": d.seconds,
                    "error_class": None,
                    "last_error": None,
                    "elapsed_seconds": d.elapsed,
                    "updated_at": now,
                    "track_no": None,
                    "batch_id": None,
                    "postings": None,
                    "peaks": d.peaks if d.kind == "set" else None,
                    "identified_generation": None,
                    **FingerprintQueue.done(),
                }
                await conn.execute(update(fp).where(where).values(**values))
                if d.kind == "track" and d.hashes is not None and len(d.hashes):
                    new_tracks.append((d, d.hashes))
                states.append(S.DONE.value)
            if new_tracks:
                await self._index_tracks(conn, new_tracks)
                changed = True
            if changed:
                await _bump(conn)
                await _compact(conn)
        return states

    async def _index_tracks(
        self, conn: AsyncConnection, tracks: list[tuple[Fingerprinted, Hashes]]
    ) -> None:
        from tracktiond.fingerprint.postings import MAX_TRACK, Batch

        ix = fingerprint_index
        first = (
            await conn.execute(
                update(ix)
                .where(ix.c.id == 1)
                .values(next_track=ix.c.next_track + len(tracks))
                .returning(ix.c.next_track)
            )
        ).scalar_one() - len(tracks)
        if first + len(tracks) - 1 > MAX_TRACK:
            raise OverflowError("the fingerprint index has run out of track numbers")
        numbered = [(first + i, d, h) for i, (d, h) in enumerate(tracks)]
        batch = await anyio.to_thread.run_sync(
            lambda: Batch.merge([Batch.of(n, h) for n, _, h in numbered])
        )
        batch_id = await _insert_batch(conn, batch, len(numbered))
        for n, d, h in numbered:
            await conn.execute(
                update(fingerprints)
                .where(fingerprints.c.audio_hash == d.job.audio_hash)
                .values(track_no=n, batch_id=batch_id, postings=len(h))
            )

    # -- the query side ------------------------------------------------------------------------

    async def index_snapshot(self) -> IndexSnapshot:
        fp = fingerprints
        async with self.engine.connect() as conn:
            generation = (
                await conn.execute(
                    select(fingerprint_index.c.generation).where(fingerprint_index.c.id == 1)
                )
            ).scalar_one()
            ids = tuple(
                (await conn.execute(select(fingerprint_batches.c.id).order_by("id"))).scalars()
            )
            rows = (
                await conn.execute(
                    select(fp.c.track_no, fp.c.frames, fp.c.audio_hash).where(
                        fp.c.track_no.is_not(None), fp.c.batch_id.is_not(None)
                    )
                )
            ).all()
        return IndexSnapshot(
            int(generation),
            ids,
            {r.track_no: int(r.frames or 0) for r in rows},
            {r.track_no: r.audio_hash for r in rows},
        )

    async def load_batch(self, batch_id: int) -> Batch | None:
        """One batch of postings, decoded (None: merged away since the snapshot)."""
        from tracktiond.fingerprint.postings import Batch

        fb = fingerprint_batches
        async with self.engine.connect() as conn:
            row = (
                await conn.execute(select(fb.c["keys"], fb.c.postings).where(fb.c.id == batch_id))
            ).first()
        if row is None:
            return None
        return await anyio.to_thread.run_sync(Batch.decode, bytes(row[0]), bytes(row[1]))

    async def recordings_of_audio(self, hashes: Sequence[str]) -> dict[str, uuid.UUID]:
        """One recording per audio stream, one with a present file first."""
        async with self.engine.connect() as conn:
            rows = await conn.execute(
                select(recordings.c.audio_hash, recordings.c.id)
                .join(files, files.c.recording_id == recordings.c.id)
                .where(
                    recordings.c.audio_hash.in_(list(hashes)),
                    files.c.state == FileState.CATALOGED.value,
                )
                .order_by(files.c.id)
            )
            out: dict[str, uuid.UUID] = {}
            for r in rows:
                out.setdefault(r.audio_hash, r.id)
            return out

    async def set_fingerprint(self, recording_id: uuid.UUID) -> tuple[str, int, bytes] | None:
        """(audio hash, frames, peaks) of a recording fingerprinted as a set, if it is."""
        fp = fingerprints
        async with self.engine.connect() as conn:
            row = (
                await conn.execute(
                    select(fp.c.audio_hash, fp.c.frames, fp.c.peaks)
                    .join(recordings, recordings.c.audio_hash == fp.c.audio_hash)
                    .where(recordings.c.id == recording_id, fp.c.state == S.DONE.value)
                )
            ).first()
        if row is None or row.peaks is None:
            return None
        return row.audio_hash, int(row.frames or 0), bytes(row.peaks)

    async def record_identification(
        self,
        job: IdentifyJob,
        owner: str | None,
        *,
        lists: Sequence[tuple[uuid.UUID, TracklistDraft, Sequence[EntryMatch]]] = (),
        failure: str | None = None,
        max_attempts: int = 3,
        backoff: Backoff = DEFAULT_BACKOFF,
    ) -> str:
        """The set's "auto" tracklists (one per recording of its audio) and the generation it
        was identified against; "new" / "unchanged", "failed" / "pending", or "lost"."""
        fp = fingerprints
        now = utcnow()
        async with self.engine.begin() as conn:
            row = (
                await conn.execute(
                    select(fp.c.identify_owner, fp.c.identify_attempts).where(
                        fp.c.audio_hash == job.audio_hash
                    )
                )
            ).first()
            if row is None or (owner is not None and row.identify_owner != owner):
                return "lost"
            where = fp.c.audio_hash == job.audio_hash
            if failure is not None:
                attempt = IdentifyQueue.failed(
                    row.identify_attempts,
                    retryable=False,
                    max_attempts=max_attempts,
                    now=now,
                    backoff=backoff,
                )
                # A set that cannot be identified now is tried again with the next generation.
                await conn.execute(
                    update(fp)
                    .where(where)
                    .values(
                        identified_generation=job.generation,
                        identify_error=failure,
                        identified_at=now,
                        **attempt.values,
                    )
                )
                return "failed"
            changed = False
            for recording_id, draft, matches in lists:
                _, _, new = await _save(conn, recording_id, draft, matches, None)
                changed = changed or new
            await conn.execute(
                update(fp)
                .where(where)
                .values(
                    identified_generation=job.generation,
                    identified_at=now,
                    identify_error=None,
                    **IdentifyQueue.done(),
                )
            )
            return "new" if changed else "unchanged"

    async def has_auto_tracklist(self, recording_id: uuid.UUID) -> bool:
        async with self.engine.connect() as conn:
            row = (
                await conn.execute(
                    select(tracklists.c.id).where(
                        tracklists.c.recording_id == recording_id,
                        tracklists.c.source == "auto",
                        tracklists.c.superseded_at.is_(None),
                    )
                )
            ).first()
        return row is not None

    # -- upkeep and figures --------------------------------------------------------------------

    async def retire_orphaned_fingerprints(self) -> int:
        """Fingerprints of audio no cataloged or pending file holds leave the index (their
        postings count dead; the batch is rewritten once mostly dead). Returns how many."""
        fp = fingerprints
        held = (
            select(recordings.c.id)
            .join(files, files.c.recording_id == recordings.c.id)
            .where(
                recordings.c.audio_hash == fp.c.audio_hash,
                files.c.state.in_((FileState.CATALOGED.value, FileState.PENDING.value)),
            )
        )
        async with self.engine.begin() as conn:
            gone = (
                await conn.execute(
                    select(fp.c.audio_hash, fp.c.batch_id, fp.c.postings, fp.c.track_no).where(
                        ~exists(held), fp.c.lease_owner.is_(None), fp.c.identify_owner.is_(None)
                    )
                )
            ).all()
            if not gone:
                return 0
            for r in gone:
                await _kill_postings(conn, r.batch_id, r.postings)
            await conn.execute(delete(fp).where(fp.c.audio_hash.in_([r.audio_hash for r in gone])))
            if any(r.track_no is not None for r in gone):
                await _bump(conn)
                await _compact(conn)
            return len(gone)

    async def index_stats(self) -> IndexStats:
        fp, fb = fingerprints, fingerprint_batches
        async with self.engine.connect() as conn:
            counts = {
                (r.kind, r.state): (r.n, r.seconds or 0.0, r.postings or 0)
                for r in await conn.execute(
                    select(
                        fp.c.kind,
                        fp.c.state,
                        func.count().label("n"),
                        func.sum(fp.c.seconds).label("seconds"),
                        func.sum(fp.c.postings).label("postings"),
                    ).group_by(fp.c.kind, fp.c.state)
                )
            }
            identified = (
                await conn.execute(
                    select(func.count()).where(
                        fp.c.kind == "set", fp.c.identified_generation.is_not(None)
                    )
                )
            ).scalar_one()
            size, batches = (
                await conn.execute(
                    select(
                        func.coalesce(
                            func.sum(func.length(fb.c["keys"]) + func.length(fb.c.postings)), 0
                        ),
                        func.count(),
                    )
                )
            ).one()
            generation = (
                await conn.execute(
                    select(fingerprint_index.c.generation).where(fingerprint_index.c.id == 1)
                )
            ).scalar_one()
        done = S.DONE.value
        track = counts.get(("track", done), (0, 0.0, 0))
        return IndexStats(
            tracks=track[0],
            sets=counts.get(("set", done), (0, 0.0, 0))[0],
            sets_identified=int(identified),
            pending=sum(n for (_, state), (n, _, _) in counts.items() if state == S.PENDING.value),
            failed=sum(n for (_, state), (n, _, _) in counts.items() if state == S.FAILED.value),
            postings=int(track[2]),
            index_bytes=int(size),
            indexed_seconds=float(track[1]),
            batches=int(batches),
            generation=int(generation),
        )
