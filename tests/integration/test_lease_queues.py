"""The lease-queue contract, for every stage's queue on both backends.

Each queue (ingest, analysis, tag write-back) is one ``catalog.leases.LeaseQueue``; this suite
holds each to the same promises, on a real catalog of real files: claims are exclusive across
two owners (on PostgreSQL through two engines, claiming at the same time), a renewed lease is
kept past its first expiry, an expired lease is claimed again and the first owner's late result
is refused, released work is due at once, a failed attempt waits out its backoff, and a job
that keeps failing is dead after ``max_attempts``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import anyio
import pytest

from tests.support import audiogen
from tracktiond.catalog.leases import Backoff, LeaseQueue
from tracktiond.catalog.models import AnalysisState, FileState, analyses, files, tracklist_sources
from tracktiond.catalog.sources import SidecarSeen
from tracktiond.catalog.store import AnalysisJob, Catalog, Job, JobResult, Outcome, TagJob
from tracktiond.catalog.tracklistvalues import SourceJob
from tracktiond.errors import FailureClass, TransientFileError
from tracktiond.media import probe
from tracktiond.pipeline.reconcile import Reconciler
from tracktiond.pipeline.scan import Scanner

pytestmark = pytest.mark.anyio

FILES = 6
TAG_OPTIONS = "contract-options"
FINGERPRINT = "contract-settings"


@dataclass(frozen=True)
class QueueCase:
    """How to drive one queue through the contract."""

    name: str
    queue: Callable[[Catalog], LeaseQueue[Any, Any]]
    context: Any
    seed: Callable[[Catalog, Path], Awaitable[None]]
    key: Callable[[Any], Any]
    # Record a success as ``owner``; True when the catalog accepted it.
    succeed: Callable[[Catalog, str, Any], Awaitable[bool]]
    # Record a retryable failure as ``owner``.
    fail: Callable[[Catalog, str, Any, int, Backoff], Awaitable[None]]
    is_dead: Callable[[Catalog, Any], Awaitable[bool]]


def _library(root: Path) -> None:
    for i in range(FILES):
        audiogen.make_audio(root / f"t{i}.flac", seconds=0.2, freq=220.0 + 40 * i, seed=i)


# -- ingest ----------------------------------------------------------------------------------


async def _seed_ingest(catalog: Catalog, root: Path) -> None:
    _library(root)
    await Reconciler(catalog).reconcile_roots([str(root)])


async def _ingest_succeed(catalog: Catalog, owner: str, job: Job) -> bool:
    result = JobResult(job, result=probe.ingest_file(job.path))
    [outcome] = await catalog.record_results([result], max_attempts=3, owner=owner)
    return outcome is not Outcome.UNCHANGED


async def _ingest_fail(
    catalog: Catalog, owner: str, job: Job, max_attempts: int, backoff: Backoff
) -> None:
    error = JobResult(job, error=TransientFileError("file changed while it was being read"))
    await catalog.record_results([error], max_attempts=max_attempts, owner=owner, backoff=backoff)


async def _ingest_dead(catalog: Catalog, key: int) -> bool:
    async with catalog.engine.connect() as conn:
        state = (await conn.execute(files.select().where(files.c.id == key))).one().state
    return bool(state == FileState.FAILED.value)


# -- analysis --------------------------------------------------------------------------------


async def _seed_analysis(catalog: Catalog, root: Path) -> None:
    _library(root)
    summary = await Scanner(catalog, concurrency=2).scan([str(root)])
    assert summary.counts["new"] == FILES


async def _analysis_succeed(catalog: Catalog, owner: str, job: AnalysisJob) -> bool:
    state = await catalog.record_analysis(
        job,
        owner,
        fingerprint=FINGERPRINT,
        version=1,
        results={"result": {"bpm": 120.0}},
        metadata={"bpm": "120.0"},
    )
    return state != "lost"


async def _analysis_fail(
    catalog: Catalog, owner: str, job: AnalysisJob, max_attempts: int, backoff: Backoff
) -> None:
    await catalog.record_analysis(
        job,
        owner,
        fingerprint=FINGERPRINT,
        version=1,
        failure=(FailureClass.TRANSIENT, "worker lost"),
        max_attempts=max_attempts,
        backoff=backoff,
    )


async def _analysis_dead(catalog: Catalog, key: str) -> bool:
    async with catalog.engine.connect() as conn:
        row = (await conn.execute(analyses.select().where(analyses.c.audio_hash == key))).one()
    return bool(row.state == AnalysisState.FAILED.value)


# -- tag write-back --------------------------------------------------------------------------


async def _seed_tags(catalog: Catalog, root: Path) -> None:
    await _seed_analysis(catalog, root)
    jobs = await catalog.analysis_queue.claim("seed", 100, FINGERPRINT)
    assert len(jobs) == FILES
    for job in jobs:
        assert await _analysis_succeed(catalog, "seed", job)


async def _tags_succeed(catalog: Catalog, owner: str, job: TagJob) -> bool:
    return await catalog.record_tag_write(job, owner, "unchanged", None) is not None


async def _tags_fail(
    catalog: Catalog, owner: str, job: TagJob, max_attempts: int, backoff: Backoff
) -> None:
    await catalog.record_tag_write(
        job,
        owner,
        "retry",
        "file changed during the write",
        max_attempts=max_attempts,
        backoff=backoff,
    )


async def _tags_dead(catalog: Catalog, key: int) -> bool:
    async with catalog.engine.connect() as conn:
        row = (await conn.execute(files.select().where(files.c.id == key))).one()
    return bool(row.tag_status == "failed")


# -- tracklist sources ------------------------------------------------------------------------


async def _seed_tracklists(catalog: Catalog, root: Path) -> None:
    seen = [
        SidecarSeen(str(root / f"set{i}.cue"), str(root), "cue", 100 + i, i) for i in range(FILES)
    ]
    assert await catalog.sync_sidecars([str(root)], seen) == FILES


async def _tracklists_succeed(catalog: Catalog, owner: str, job: SourceJob) -> bool:
    # "waiting": read, its audio not cataloged; not due again until a file of its dir is
    return await catalog.record_source(job, owner, state="waiting") is not None


async def _tracklists_fail(
    catalog: Catalog, owner: str, job: SourceJob, max_attempts: int, backoff: Backoff
) -> None:
    await catalog.record_source(
        job,
        owner,
        state="failed",
        error="vanished while being read",
        retry=True,
        max_attempts=max_attempts,
        backoff=backoff,
    )


async def _tracklists_dead(catalog: Catalog, key: int) -> bool:
    async with catalog.engine.connect() as conn:
        row = (
            await conn.execute(tracklist_sources.select().where(tracklist_sources.c.id == key))
        ).one()
    return bool(row.state == "failed")


CASES = [
    QueueCase(
        "ingest",
        lambda c: c.ingest_queue,
        (),
        _seed_ingest,
        lambda j: j.file_id,
        _ingest_succeed,
        _ingest_fail,
        _ingest_dead,
    ),
    QueueCase(
        "analysis",
        lambda c: c.analysis_queue,
        FINGERPRINT,
        _seed_analysis,
        lambda j: j.audio_hash,
        _analysis_succeed,
        _analysis_fail,
        _analysis_dead,
    ),
    QueueCase(
        "tags",
        lambda c: c.tag_queue,
        TAG_OPTIONS,
        _seed_tags,
        lambda j: j.file_id,
        _tags_succeed,
        _tags_fail,
        _tags_dead,
    ),
    QueueCase(
        "tracklists",
        lambda c: c.tracklist_queue,
        None,
        _seed_tracklists,
        lambda j: j.id,
        _tracklists_succeed,
        _tracklists_fail,
        _tracklists_dead,
    ),
]


@pytest.fixture(params=CASES, ids=[c.name for c in CASES])
def case(request: pytest.FixtureRequest) -> QueueCase:
    case: QueueCase = request.param
    return case


@pytest.fixture
async def other(db_url: str, catalog: Catalog) -> AsyncIterator[Catalog]:
    """A second catalog connection: another instance sharing the same database."""
    second = await Catalog.open(db_url)
    try:
        yield second
    finally:
        await second.close()


async def _seeded(case: QueueCase, catalog: Catalog, tmp_path: Path) -> LeaseQueue[Any, Any]:
    root = tmp_path / "music"
    root.mkdir()
    await case.seed(catalog, root)
    return case.queue(catalog)


async def test_claims_are_exclusive_across_two_owners(
    case: QueueCase, catalog: Catalog, other: Catalog, tmp_path: Path
) -> None:
    await _seeded(case, catalog, tmp_path)
    claimed: dict[str, list[Any]] = {"a": [], "b": []}

    async def drain(owner: str, cat: Catalog) -> None:
        while jobs := await case.queue(cat).claim(owner, 2, case.context):
            claimed[owner] += [case.key(j) for j in jobs]
            await anyio.sleep(0)

    async with anyio.create_task_group() as tg:
        tg.start_soon(drain, "a", catalog)
        tg.start_soon(drain, "b", other)
    a, b = set(claimed["a"]), set(claimed["b"])
    assert len(claimed["a"]) == len(a) and len(claimed["b"]) == len(b), claimed
    assert not a & b, f"claimed by both owners: {a & b}"
    assert len(a | b) == FILES
    holders = await case.queue(catalog).owners("a") | await case.queue(catalog).owners("b")
    assert holders == {owner for owner, keys in (("a", a), ("b", b)) if keys}


async def test_renewed_lease_outlives_its_first_expiry_and_an_expired_one_is_claimed_again(
    case: QueueCase, catalog: Catalog, other: Catalog, tmp_path: Path
) -> None:
    queue = await _seeded(case, catalog, tmp_path)
    lease = timedelta(seconds=1.0)
    jobs = await queue.claim("a", FILES, case.context, lease)
    assert len(jobs) == FILES
    assert await case.queue(other).claim("b", FILES, case.context, lease) == []
    for _ in range(4):  # 2 s of heartbeats: twice the lease
        await anyio.sleep(0.5)
        assert await queue.renew("a", lease) == FILES
        assert await case.queue(other).claim("b", FILES, case.context, lease) == []
    await anyio.sleep(1.3)  # no more beats: the lease runs out
    taken = await case.queue(other).claim("b", FILES, case.context, lease)
    assert sorted(map(case.key, taken)) == sorted(map(case.key, jobs))
    # The first owner's late result is refused; the new owner's is accepted.
    assert not await case.succeed(catalog, "a", jobs[0])
    assert await case.succeed(other, "b", taken[0])


async def test_released_work_is_due_at_once(
    case: QueueCase, catalog: Catalog, other: Catalog, tmp_path: Path
) -> None:
    queue = await _seeded(case, catalog, tmp_path)
    jobs = await queue.claim("a", FILES, case.context)
    assert len(jobs) == FILES
    assert await catalog.release_leases(["a"]) >= FILES
    assert len(await case.queue(other).claim("b", FILES, case.context)) == FILES


async def test_a_failed_attempt_waits_out_its_backoff_and_is_dead_after_max_attempts(
    case: QueueCase, catalog: Catalog, tmp_path: Path
) -> None:
    queue = await _seeded(case, catalog, tmp_path)
    backoff = Backoff(base=0.6, cap=0.6)
    [job] = await queue.claim("a", 1, case.context)
    await case.fail(catalog, "a", job, 2, backoff)
    assert not await case.is_dead(catalog, case.key(job))
    due = {case.key(j) for j in await queue.claim("b", FILES, case.context)}
    assert case.key(job) not in due, "claimed again before its backoff ran out"
    await catalog.release_leases(["b"])
    await anyio.sleep(0.8)
    again = [j for j in await queue.claim("a", FILES, case.context) if case.key(j) == case.key(job)]
    assert again, "not due again after its backoff"
    await case.fail(catalog, "a", again[0], 2, backoff)  # the second of two attempts
    assert await case.is_dead(catalog, case.key(job))
    await catalog.release_leases(["a"])
    await anyio.sleep(0.8)
    due = {case.key(j) for j in await queue.claim("b", FILES, case.context)}
    assert case.key(job) not in due, "a dead job was claimed again"
    assert len(due) == FILES - 1


async def test_leases_of_dead_local_processes_are_released(
    case: QueueCase, catalog: Catalog, tmp_path: Path
) -> None:
    import socket

    queue = await _seeded(case, catalog, tmp_path)
    dead_owner = f"{socket.gethostname()}:999999999:deadbeef"  # no such pid
    assert len(await queue.claim(dead_owner, FILES, case.context)) == FILES
    assert dead_owner in await catalog.lease_owners(f"{socket.gethostname()}:")
    assert await catalog.release_dead_local_leases() == FILES
    assert len(await queue.claim("alive", FILES, case.context)) == FILES
