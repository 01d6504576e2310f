"""Fingerprinting tracks into the index, and identifying the library's tracks inside sets.

Two stages on the stage contract:

- ``FingerprintStage`` claims audio streams (``catalog.work.FingerprintQueue``, seeded with
  every stream a cataloged file holds) and fingerprints each in the crash-isolated worker
  processes (``analysis.fingerprinting``: decoded once as a stream at 8 kHz). A recording
  shorter than ``track_max_seconds`` is a *track*: its index hashes go into the catalog's
  index, a batch per write. A longer one is a *set*: its peaks are kept for identification.
- ``IdentifyStage`` claims sets not identified against the index's current generation, once
  the index has been quiet for the debounce (so a library being indexed does not re-identify
  every set after every batch), and stores what it finds as the set's tracklist with source
  "auto". Tracks are named by the library's own tags; stretches no indexed track explains are
  entries marked unknown ("ID"), never a guess.

``identify_peaks`` is the query both the stage and ``tracktiond identify`` run: a thread reads
the index batch by batch from the catalog (``fingerprint.postings.StoredIndex``).
"""

from __future__ import annotations

import base64
import logging
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, replace
from datetime import timedelta

import anyio
import anyio.from_thread

from tracktiond.analysis.pool import AnalysisFailed, AnalysisPool
from tracktiond.catalog.fingerprints import Fingerprinted, IndexSnapshot
from tracktiond.catalog.leases import Backoff
from tracktiond.catalog.models import utcnow
from tracktiond.catalog.store import Catalog
from tracktiond.catalog.tracklistvalues import (
    EntryDraft,
    EntryMatch,
    LibraryTrack,
    TracklistDraft,
)
from tracktiond.catalog.values import FingerprintJob, IdentifyJob
from tracktiond.catalog.work import FingerprintQueue, IdentifyClaim, IdentifyQueue
from tracktiond.config import Config
from tracktiond.errors import FailureClass
from tracktiond.fingerprint.identify import (
    Fingerprint,
    FingerprintSettings,
    identify_set,
    settings_id,
)
from tracktiond.fingerprint.postings import Batch, StoredIndex, decode_peaks
from tracktiond.fingerprint.segments import Segment
from tracktiond.pipeline.stage import Finished, Stage, StageEvent

log = logging.getLogger(__name__)

RETRY_BACKOFF = Backoff(base=10.0, cap=600.0)
# A stretch at least this long that no indexed track explains is an unknown ("ID") entry.
UNKNOWN_GAP_SECONDS = 30.0
_FANOUT_STEP = {"low": -1, "normal": 0, "high": 1}


def fingerprint_settings(config: Config) -> FingerprintSettings:
    """The fingerprinter's settings for ``config`` (its density sets the index fan-out)."""
    base = FingerprintSettings()
    fanout = max(2, base.triplets.index_fanout + _FANOUT_STEP[config.fingerprint.density])
    return replace(base, triplets=replace(base.triplets, index_fanout=fanout))


def track_max_seconds(config: Config) -> float:
    return config.fingerprint.track_max_seconds or config.analysis.long_recording_seconds


# -- the query ---------------------------------------------------------------------------------


def _batches(catalog: Catalog, ids: Sequence[int]) -> Callable[[], Iterator[Batch]]:
    """Reads the batches one at a time from the event loop (the caller is a worker thread)."""

    def read() -> Iterator[Batch]:
        for batch_id in ids:
            batch = anyio.from_thread.run(catalog.load_batch, batch_id)
            if batch is not None:
                yield batch

    return read


async def identify_peaks(
    catalog: Catalog,
    fp: Fingerprint,
    settings: FingerprintSettings,
    progress: Callable[[float], None] | None = None,
) -> tuple[list[Segment], IndexSnapshot]:
    """The indexed tracks ``fp`` plays (the query runs on a worker thread)."""
    snapshot = await catalog.index_snapshot()
    index = StoredIndex(_batches(catalog, snapshot.batch_ids), snapshot.frames)

    def query() -> list[Segment]:
        return identify_set(fp, index, settings, progress)

    return await anyio.to_thread.run_sync(query), snapshot


async def tracklist_of(
    catalog: Catalog,
    segments: Sequence[Segment],
    snapshot: IndexSnapshot,
    frames: int,
    settings: FingerprintSettings,
) -> tuple[TracklistDraft, list[EntryMatch], dict[uuid.UUID, LibraryTrack]]:
    """The "auto" tracklist of a set: identified tracks named by their tags, unknown gaps; and
    the library tracks it names (their paths, for whoever shows the list)."""
    audio = {
        seg.track: snapshot.audio[seg.track] for seg in segments if seg.track in snapshot.audio
    }
    recordings = await catalog.recordings_of_audio(list(set(audio.values())))
    tracks = await catalog.library_tracks(recordings.values())
    total = frames * settings.spectrum.frame_seconds
    entries: list[EntryDraft] = []
    matches: list[EntryMatch] = []

    def unknown(start: float, end: float) -> None:
        entries.append(
            EntryDraft(len(entries) + 1, start=round(start, 2), end=round(end, 2), unknown=True)
        )
        matches.append(EntryMatch("unknown"))

    heard = 0.0
    for seg in segments:
        rec = recordings.get(audio.get(seg.track, ""))
        if rec is None:  # the track left the library since the snapshot
            continue
        if seg.start - heard >= UNKNOWN_GAP_SECONDS:
            unknown(heard, seg.start)
        lib = tracks.get(rec)
        entries.append(
            EntryDraft(
                len(entries) + 1,
                start=round(seg.start, 2),
                end=round(seg.end, 2),
                artist=lib.artist if lib else None,
                title=lib.title if lib else None,
                confidence=seg.confidence,
                extra={
                    "speed": round(seg.speed, 4),
                    "pitch_semitones": round(seg.pitch, 2),
                    "aligned_hashes": seg.aligned,
                    # the aligned hashes weighed by how rare their keys are in the index: what
                    # the entry threshold and the confidence are computed from
                    "weight": round(seg.weight, 1),
                },
            )
        )
        matches.append(EntryMatch("matched", rec, seg.confidence, method="fingerprint"))
        heard = max(heard, seg.end)
    if segments and total - heard >= UNKNOWN_GAP_SECONDS:
        unknown(heard, total)
    draft = TracklistDraft(source="auto", format="auto", entries=tuple(entries))
    return draft, matches, tracks


# -- the fingerprint stage ---------------------------------------------------------------------


class FingerprintStage(Stage[FingerprintJob, Fingerprinted]):
    name = "fingerprint"

    def __init__(self, catalog: Catalog, config: Config, pool: AnalysisPool | None = None) -> None:
        self.catalog = catalog
        self.reconfigure(config)
        self.concurrency = config.fingerprint.workers
        self.pool = pool or AnalysisPool(
            self.concurrency,
            memory_limit_bytes=config.analysis.memory_limit_mb * 1024 * 1024,
            timeout_base=config.analysis.timeout_base,
            timeout_factor=config.analysis.timeout_factor,
        )

    def reconfigure(self, config: Config) -> None:
        self.config = config
        self.settings = fingerprint_settings(config)
        self.settings_id = settings_id(self.settings)
        self.track_max = track_max_seconds(config)

    @property
    def queue(self) -> FingerprintQueue:
        return self.catalog.fingerprint_queue

    def describe(self, job: FingerprintJob) -> tuple[int | str, str]:
        return job.audio_hash, job.path

    async def claim(self, owner: str, limit: int, lease: timedelta) -> list[FingerprintJob]:
        await self.catalog.seed_fingerprints()
        return await self.catalog.fingerprint_queue.claim(owner, limit, self.settings_id, lease)

    async def drained(self) -> bool:
        await self.catalog.seed_fingerprints()
        return await self.catalog.fingerprint_queue.due_count(self.settings_id) == 0

    async def process(self, job: FingerprintJob) -> Fingerprinted:
        started = time.monotonic()
        try:
            made = await self.pool.fingerprint(job.path, job.duration)
        except AnalysisFailed as exc:
            log.warning(
                "fingerprinting %s failed: %s",
                job.path,
                exc.reason,
                extra={"path": job.path, "job_id": job.audio_hash},
            )
            return Fingerprinted(job, self.settings_id, failure=(exc.failure_class, exc.reason))
        return await anyio.to_thread.run_sync(self._shape, job, made, time.monotonic() - started)

    def _shape(self, job: FingerprintJob, made: dict[str, object], elapsed: float) -> Fingerprinted:
        """A worker's peaks into a track's index hashes or a set's stored peaks."""
        frames = int(made["frames"])  # type: ignore[call-overload]
        seconds = float(made["seconds"])  # type: ignore[arg-type]
        blob = base64.b64decode(str(made["peaks"]))
        if seconds >= self.track_max:
            return Fingerprinted(
                job, self.settings_id, frames, seconds, "set", peaks=blob, elapsed=elapsed
            )
        fp = Fingerprint(decode_peaks(blob), frames)
        return Fingerprinted(
            job,
            self.settings_id,
            frames,
            seconds,
            "track",
            hashes=fp.index_hashes(self.settings),
            elapsed=elapsed,
        )

    def crashed(self, job: FingerprintJob, exc: Exception) -> Fingerprinted:
        reason = f"internal error: {type(exc).__name__}: {exc}"
        return Fingerprinted(job, self.settings_id, failure=(FailureClass.BUG, reason))

    async def record(
        self, owner: str, done: Sequence[Finished[FingerprintJob, Fingerprinted]]
    ) -> list[StageEvent]:
        states = await self.catalog.record_fingerprints(
            owner,
            [f.result for f in done],
            max_attempts=self.config.fingerprint.max_attempts,
            backoff=RETRY_BACKOFF,
        )
        events = []
        for f, state in zip(done, states, strict=True):
            r = f.result
            outcome = r.kind if state == "done" and r.kind else state
            events.append(
                StageEvent(
                    stage=self.name,
                    job_id=f.job.audio_hash,
                    path=f.job.path,
                    outcome=outcome,
                    seconds=f.seconds,
                    failure_class=r.failure[0].value if r.failure else None,
                    reason=r.failure[1] if r.failure else None,
                    final=state != "pending",
                    audio_seconds=r.seconds,
                )
            )
        return events

    async def aclose(self) -> None:
        await self.pool.aclose()


# -- the identification stage ------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Identified:
    lists: tuple[tuple[uuid.UUID, TracklistDraft, tuple[EntryMatch, ...]], ...] = ()
    entries: int = 0
    audio_seconds: float = 0.0
    failure: str | None = None


class IdentifyStage(Stage[IdentifyJob, Identified]):
    name = "identify"

    def __init__(self, catalog: Catalog, config: Config) -> None:
        self.catalog = catalog
        self.reconfigure(config)

    def reconfigure(self, config: Config) -> None:
        self.config = config
        self.settings = fingerprint_settings(config)
        self.settings_id = settings_id(self.settings)

    @property
    def queue(self) -> IdentifyQueue:
        return self.catalog.identify_queue

    def describe(self, job: IdentifyJob) -> tuple[int | str, str]:
        return job.audio_hash, job.path

    def claim_context(self) -> IdentifyClaim:
        quiet = utcnow() - timedelta(seconds=self.config.fingerprint.identify_debounce_seconds)
        return IdentifyClaim(self.settings_id, quiet)

    async def claim(self, owner: str, limit: int, lease: timedelta) -> list[IdentifyJob]:
        return await self.catalog.identify_queue.claim(owner, limit, self.claim_context(), lease)

    async def process(self, job: IdentifyJob) -> Identified:
        fp = Fingerprint(decode_peaks(job.peaks), job.frames)
        segments, snapshot = await identify_peaks(self.catalog, fp, self.settings)
        if not segments:
            # Nothing of the library plays here: no tracklist, unless an earlier one named
            # tracks that are gone; that one is replaced by the empty truth.
            stale = [r for r in job.recording_ids if await self.catalog.has_auto_tracklist(r)]
            draft = TracklistDraft(source="auto", format="auto", entries=())
            none: tuple[EntryMatch, ...] = ()
            return Identified(tuple((r, draft, none) for r in stale), 0, fp.seconds(self.settings))
        draft, matches, _ = await tracklist_of(
            self.catalog, segments, snapshot, job.frames, self.settings
        )
        found = sum(1 for e in draft.entries if not e.unknown)
        lists = tuple((r, draft, tuple(matches)) for r in job.recording_ids)
        return Identified(lists, found, fp.seconds(self.settings))

    def crashed(self, job: IdentifyJob, exc: Exception) -> Identified:
        return Identified(failure=f"internal error: {type(exc).__name__}: {exc}")

    async def record(
        self, owner: str, done: Sequence[Finished[IdentifyJob, Identified]]
    ) -> list[StageEvent]:
        events = []
        for f in done:
            r = f.result
            outcome = await self.catalog.record_identification(
                f.job, owner, lists=r.lists, failure=r.failure
            )
            if outcome in ("new", "unchanged"):
                log.info(
                    "identified %d track(s) in %s in %.1f s",
                    r.entries,
                    f.job.path,
                    f.seconds,
                    extra={"path": f.job.path, "job_id": f.job.audio_hash},
                )
            events.append(
                StageEvent(
                    stage=self.name,
                    job_id=f.job.audio_hash,
                    path=f.job.path,
                    outcome=outcome,
                    seconds=f.seconds,
                    failure_class=FailureClass.BUG.value if r.failure else None,
                    reason=r.failure,
                    audio_seconds=r.audio_seconds,
                    entries=r.entries,
                )
            )
        return events
