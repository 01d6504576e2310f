"""The stages' work queues, each a :class:`~tracktiond.catalog.leases.LeaseQueue`.

- ``IngestQueue``: pending file rows (``files.lease_*``), in id order, optionally under some
  roots; a job is the file's id and path.
- ``AnalysisQueue``: one row per audio stream (``analyses``): new streams first, then those
  analysed with other settings or an older version (re-analysed lazily); a job also names one
  present file that holds the stream.
- ``TagQueue``: cataloged files whose analysis is done but whose tags were not yet brought in
  line with it or with the tagging options (``files.tag_lease_*``: its own lease columns, so
  the ingest lease of a file and its tag lease never extend each other).
- ``OrganiseQueue``: files that arrived in an inbox root, cataloged (and analysed, when the
  naming patterns use analysis fields), not yet moved into the library (``organise_queue``).
- ``FingerprintQueue``: one row per audio stream (``fingerprints``, seeded from ``analyses``):
  streams not fingerprinted yet, or with other settings; a job names one present file.
- ``IdentifyQueue``: fingerprinted sets not identified against the index's current generation,
  once the index has been quiet for the debounce (``fingerprints.identify_*``: its own lease
  columns); a job carries the set's stored peaks.
- ``TracklistQueue``: tracklist sources (``tracklist_sources``): new or changed sheets and lists,
  gone ones (to retire their tracklists), and ones waiting for their audio (or failed) once a
  file in their directory was cataloged after they were last looked at.

A new stage adds its queue here: its table and lease columns, what is due, and what a job is."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Column, Select, and_, case, exists, or_, select
from sqlalchemy.engine import Row
from sqlalchemy.ext.asyncio import AsyncConnection

from tracktiond.catalog.base import _under
from tracktiond.catalog.leases import LeaseQueue
from tracktiond.catalog.models import (
    AnalysisState,
    FileState,
    FingerprintState,
    TracklistSourceState,
    analyses,
    files,
    fingerprint_index,
    fingerprints,
    recordings,
    tracklist_sources,
)
from tracktiond.catalog.plans import InboxClaim, InboxJob, organise_queue
from tracktiond.catalog.tracklistvalues import SourceJob
from tracktiond.catalog.values import AnalysisJob, FingerprintJob, IdentifyJob, Job, TagJob


class IngestQueue(LeaseQueue[Sequence[str], Job]):
    """Pending files; the claim context is the roots to stay under (all when empty)."""

    name = "ingest"
    table = files
    key = files.c.id
    owner = files.c.lease_owner
    expires = files.c.lease_expires
    not_before = files.c.not_before
    attempts = files.c.attempts

    def due(self, context: Sequence[str]) -> Select[Any]:
        where = [files.c.state == FileState.PENDING.value]
        if context:
            where.append(or_(*[_under(r) for r in context]))
        return select(files.c.id).where(*where).order_by(files.c.id)

    def returning(self) -> Sequence[Column[Any]]:
        return (files.c.id, files.c.path)

    async def jobs(
        self, conn: AsyncConnection, rows: Sequence[Row[Any]], context: Sequence[str]
    ) -> list[Job]:
        return sorted((Job(r.id, r.path) for r in rows), key=lambda j: j.file_id)


@dataclass(frozen=True, slots=True)
class AnalysisClaim:
    """What an analysis claim asks for: streams not analysed with these settings, held by a
    present file under ``roots`` (anywhere when empty: the daemon; a one-shot scan narrows)."""

    fingerprint: str
    roots: Sequence[str] = ()


class AnalysisQueue(LeaseQueue[AnalysisClaim | str, AnalysisJob]):
    """Audio streams to analyse; the claim context is an ``AnalysisClaim`` (or just the
    current settings fingerprint)."""

    name = "analysis"
    table = analyses
    key = analyses.c.audio_hash
    owner = analyses.c.lease_owner
    expires = analyses.c.lease_expires
    not_before = analyses.c.not_before
    attempts = analyses.c.attempts

    def due(self, context: AnalysisClaim | str) -> Select[Any]:
        claim = context if isinstance(context, AnalysisClaim) else AnalysisClaim(context)
        held = [
            recordings.c.audio_hash == analyses.c.audio_hash,
            files.c.state == FileState.CATALOGED.value,
        ]
        if claim.roots:
            held.append(or_(*[_under(r) for r in claim.roots]))
        present = (
            select(recordings.c.id)
            .join(files, files.c.recording_id == recordings.c.id)
            .where(*held)
        )
        stale = and_(
            analyses.c.state.in_((AnalysisState.DONE.value, AnalysisState.FAILED.value)),
            or_(
                analyses.c.settings_fingerprint.is_(None),
                analyses.c.settings_fingerprint != claim.fingerprint,
            ),
        )
        return (
            select(analyses.c.audio_hash)
            .where(or_(analyses.c.state == AnalysisState.PENDING.value, stale), exists(present))
            .order_by(
                case((analyses.c.state == AnalysisState.PENDING.value, 0), else_=1),
                analyses.c.created_at,
            )
        )

    def returning(self) -> Sequence[Column[Any]]:
        return (analyses.c.audio_hash, analyses.c.duration_seconds)

    async def jobs(
        self, conn: AsyncConnection, rows: Sequence[Row[Any]], context: AnalysisClaim | str
    ) -> list[AnalysisJob]:
        # One present file per stream, the oldest row first: one query for all claimed streams.
        holders = await conn.execute(
            select(recordings.c.audio_hash, files.c.path)
            .join(recordings, files.c.recording_id == recordings.c.id)
            .where(
                recordings.c.audio_hash.in_([r.audio_hash for r in rows]),
                files.c.state == FileState.CATALOGED.value,
            )
            .order_by(files.c.id)
        )
        path_of: dict[str, str] = {}
        for audio_hash, path in holders:
            path_of.setdefault(audio_hash, path)
        # A stream whose last file went away between the claim's check and now keeps its lease
        # until it runs out; by then it is no longer due.
        return [
            AnalysisJob(r.audio_hash, path_of[r.audio_hash], r.duration_seconds)
            for r in rows
            if r.audio_hash in path_of
        ]


class TagQueue(LeaseQueue[str, TagJob]):
    """Files whose tags lag their analysis; the claim context is the tagging options'
    fingerprint (a job's fingerprint is the analysis settings' plus that)."""

    name = "tags"
    table = files
    key = files.c.id
    owner = files.c.tag_lease_owner
    expires = files.c.tag_lease_expires
    not_before = files.c.tag_not_before
    attempts = files.c.tag_attempts

    def due(self, context: str) -> Select[Any]:
        wanted = analyses.c.settings_fingerprint + ":" + context
        return (
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
            )
            .order_by(files.c.id)
        )

    async def jobs(
        self, conn: AsyncConnection, rows: Sequence[Row[Any]], context: str
    ) -> list[TagJob]:
        info = await conn.execute(
            select(files.c.id, files.c.path, analyses.c.results, analyses.c.settings_fingerprint)
            .join(recordings, files.c.recording_id == recordings.c.id)
            .join(analyses, analyses.c.audio_hash == recordings.c.audio_hash)
            .where(files.c.id.in_([r.id for r in rows]))
            .order_by(files.c.id)
        )
        jobs = []
        for r in info:
            result = r.results.get("result") if isinstance(r.results, dict) else None
            jobs.append(
                TagJob(
                    file_id=r.id,
                    path=r.path,
                    analysis=result if isinstance(result, dict) else {},
                    fingerprint=f"{r.settings_fingerprint}:{context}",
                )
            )
        return jobs


class OrganiseQueue(LeaseQueue[InboxClaim, InboxJob]):
    """Inbox files waiting to be moved into the library; the claim context names the inbox
    roots and whether to wait for a file's analysis (a pattern that uses ``{bpm}`` does)."""

    name = "organise"
    table = organise_queue
    key = organise_queue.c.file_id
    owner = organise_queue.c.lease_owner
    expires = organise_queue.c.lease_expires
    not_before = organise_queue.c.not_before
    attempts = organise_queue.c.attempts

    def due(self, context: InboxClaim) -> Select[Any]:
        where = [
            organise_queue.c.state == "pending",
            files.c.state == FileState.CATALOGED.value,
            or_(*[_under(r) for r in context.inboxes]) if context.inboxes else files.c.id < 0,
        ]
        if context.wait_for_analysis:
            analysed = (
                select(analyses.c.audio_hash)
                .join(recordings, recordings.c.audio_hash == analyses.c.audio_hash)
                .where(
                    recordings.c.id == files.c.recording_id,
                    analyses.c.state.in_((AnalysisState.DONE.value, AnalysisState.FAILED.value)),
                )
            )
            where.append(exists(analysed))
        return (
            select(organise_queue.c.file_id)
            .join(files, files.c.id == organise_queue.c.file_id)
            .where(*where)
            .order_by(organise_queue.c.file_id)
        )

    def returning(self) -> Sequence[Column[Any]]:
        return (organise_queue.c.file_id, organise_queue.c.attempts)

    async def jobs(
        self, conn: AsyncConnection, rows: Sequence[Row[Any]], context: InboxClaim
    ) -> list[InboxJob]:
        attempts = {r.file_id: r.attempts for r in rows}
        found = await conn.execute(
            select(files.c.id, files.c.path).where(files.c.id.in_(list(attempts)))
        )
        return sorted(
            (InboxJob(r.id, r.path, attempts[r.id]) for r in found), key=lambda j: j.file_id
        )


def _held(audio_hash: Any) -> Any:
    """A cataloged file holds the audio stream ``audio_hash``."""
    return exists(
        select(recordings.c.id)
        .join(files, files.c.recording_id == recordings.c.id)
        .where(recordings.c.audio_hash == audio_hash, files.c.state == FileState.CATALOGED.value)
    )


async def _holders(conn: AsyncConnection, hashes: Sequence[str]) -> dict[str, list[Any]]:
    """(recording id, present path) pairs per audio stream, oldest file first."""
    rows = await conn.execute(
        select(recordings.c.audio_hash, recordings.c.id, files.c.path)
        .join(recordings, files.c.recording_id == recordings.c.id)
        .where(
            recordings.c.audio_hash.in_(list(hashes)),
            files.c.state == FileState.CATALOGED.value,
        )
        .order_by(files.c.id)
    )
    out: dict[str, list[Any]] = {}
    for r in rows:
        out.setdefault(r.audio_hash, []).append((r.id, r.path))
    return out


class FingerprintQueue(LeaseQueue[str, FingerprintJob]):
    """Audio streams to fingerprint; the claim context is the settings id
    (``fingerprint.identify.settings_id``)."""

    name = "fingerprint"
    table = fingerprints
    key = fingerprints.c.audio_hash
    owner = fingerprints.c.lease_owner
    expires = fingerprints.c.lease_expires
    not_before = fingerprints.c.not_before
    attempts = fingerprints.c.attempts

    def due(self, context: str) -> Select[Any]:
        fp = fingerprints
        stale = and_(
            fp.c.state.in_((FingerprintState.DONE.value, FingerprintState.FAILED.value)),
            or_(fp.c.settings.is_(None), fp.c.settings != context),
        )
        return (
            select(fp.c.audio_hash)
            .where(
                or_(fp.c.state == FingerprintState.PENDING.value, stale),
                _held(fp.c.audio_hash),
            )
            .order_by(
                case((fp.c.state == FingerprintState.PENDING.value, 0), else_=1), fp.c.created_at
            )
        )

    def returning(self) -> Sequence[Column[Any]]:
        return (fingerprints.c.audio_hash, fingerprints.c.attempts)

    async def jobs(
        self, conn: AsyncConnection, rows: Sequence[Row[Any]], context: str
    ) -> list[FingerprintJob]:
        hashes = [r.audio_hash for r in rows]
        holders = await _holders(conn, hashes)
        durations = dict(
            (
                await conn.execute(
                    select(analyses.c.audio_hash, analyses.c.duration_seconds).where(
                        analyses.c.audio_hash.in_(hashes)
                    )
                )
            ).all()
        )
        return [
            FingerprintJob(
                r.audio_hash, holders[r.audio_hash][0][1], durations.get(r.audio_hash), r.attempts
            )
            for r in rows
            if r.audio_hash in holders
        ]


@dataclass(frozen=True, slots=True)
class IdentifyClaim:
    """What an identification claim asks for: sets fingerprinted with ``settings``, once the
    index has not changed since ``quiet_since`` (now minus the debounce)."""

    settings: str
    quiet_since: datetime


class IdentifyQueue(LeaseQueue[IdentifyClaim, IdentifyJob]):
    """Sets to identify against the index (again, once it changed)."""

    name = "identify"
    table = fingerprints
    key = fingerprints.c.audio_hash
    owner = fingerprints.c.identify_owner
    expires = fingerprints.c.identify_expires
    not_before = fingerprints.c.identify_not_before
    attempts = fingerprints.c.identify_attempts

    def due(self, context: IdentifyClaim) -> Select[Any]:
        fp, ix = fingerprints, fingerprint_index
        generation = select(ix.c.generation).where(ix.c.id == 1).scalar_subquery()
        quiet = ~exists(select(ix.c.id).where(ix.c.id == 1, ix.c.changed_at > context.quiet_since))
        return (
            select(fp.c.audio_hash)
            .where(
                fp.c.kind == "set",
                fp.c.state == FingerprintState.DONE.value,
                fp.c.settings == context.settings,
                or_(fp.c.identified_generation.is_(None), fp.c.identified_generation < generation),
                quiet,
                _held(fp.c.audio_hash),
            )
            .order_by(fp.c.created_at)
        )

    def returning(self) -> Sequence[Column[Any]]:
        fp = fingerprints
        return (fp.c.audio_hash, fp.c.frames, fp.c.peaks, fp.c.identify_attempts)

    async def jobs(
        self, conn: AsyncConnection, rows: Sequence[Row[Any]], context: IdentifyClaim
    ) -> list[IdentifyJob]:
        holders = await _holders(conn, [r.audio_hash for r in rows])
        generation = (
            await conn.execute(
                select(fingerprint_index.c.generation).where(fingerprint_index.c.id == 1)
            )
        ).scalar_one()
        jobs = []
        for r in rows:
            held = holders.get(r.audio_hash)
            if not held or r.peaks is None:
                continue
            jobs.append(
                IdentifyJob(
                    r.audio_hash,
                    tuple(dict.fromkeys(rec for rec, _ in held)),
                    held[0][1],
                    int(r.frames or 0),
                    bytes(r.peaks),
                    int(generation),
                    r.identify_attempts,
                )
            )
        return jobs


class TracklistQueue(LeaseQueue[None, SourceJob]):
    """Tracklist sources to read (or retire); no claim context."""

    name = "tracklists"
    table = tracklist_sources
    key = tracklist_sources.c.id
    owner = tracklist_sources.c.lease_owner
    expires = tracklist_sources.c.lease_expires
    not_before = tracklist_sources.c.not_before
    attempts = tracklist_sources.c.attempts

    def due(self, context: None) -> Select[Any]:
        t = tracklist_sources
        state = TracklistSourceState
        # A sheet whose audio was not cataloged yet (or that names a file not there) looks
        # again once a file of its directory was cataloged since: no polling, and no re-read
        # of sheets that wait for nothing new.
        woken = and_(
            t.c.state.in_((state.WAITING.value, state.FAILED.value)),
            exists(
                select(files.c.id).where(
                    files.c.dir == t.c.dir,
                    files.c.state == FileState.CATALOGED.value,
                    or_(t.c.checked_at.is_(None), files.c.updated_at > t.c.checked_at),
                )
            ),
        )
        return (
            select(t.c.id)
            .where(or_(t.c.state.in_((state.PENDING.value, state.GONE.value)), woken))
            .order_by(t.c.id)
        )

    def returning(self) -> Sequence[Column[Any]]:
        t = tracklist_sources
        return (
            t.c.id,
            t.c.path,
            t.c.kind,
            t.c.state,
            t.c.recording_id,
            t.c.embedded_text,
            t.c.encoding_override,
            t.c.attempts,
        )

    async def jobs(
        self, conn: AsyncConnection, rows: Sequence[Row[Any]], context: None
    ) -> list[SourceJob]:
        return sorted(
            (
                SourceJob(
                    r.id,
                    r.path,
                    r.kind,
                    r.state,
                    r.recording_id,
                    r.embedded_text,
                    r.encoding_override,
                    r.attempts,
                )
                for r in rows
            ),
            key=lambda j: j.id,
        )
