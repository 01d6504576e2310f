"""The stage loop and its heartbeat, on the analysis queue of a real catalog.

The regression this pins: an analysis used to hold a 30-minute lease that nothing renewed, while
a 3-hour recording may take 46 minutes; a second instance then analysed the same audio again.
Here two instances (two engines, two owners, one catalog) run the analysis stage with a lease
far shorter than each job: with the heartbeat, every stream is analysed exactly once; without
it (the control), the same streams are analysed twice — so the test can tell the difference.
"""

from __future__ import annotations

from collections import Counter
from datetime import timedelta
from pathlib import Path

import anyio
import pytest

from tests.support import audiogen
from tracktiond.analysis.settings import AnalysisSettings
from tracktiond.catalog.leases import make_owner_id
from tracktiond.catalog.store import AnalysisJob, Catalog
from tracktiond.config import AnalysisConfig
from tracktiond.pipeline.analyse import Analysed, AnalysisStage
from tracktiond.pipeline.scan import Scanner
from tracktiond.pipeline.stage import Heartbeat, StageEvent, StageLoop

pytestmark = pytest.mark.anyio

STREAMS = 4
LEASE = timedelta(seconds=1.0)
JOB_SECONDS = 2.5  # each job runs well past its lease


class SlowAnalysis(AnalysisStage):
    """The analysis stage with the worker process replaced by a slow, countable one: what is
    under test is who gets to run a job, not what essentia says."""

    def __init__(self, catalog: Catalog, runs: Counter[str]) -> None:
        super().__init__(catalog, AnalysisConfig(workers=2), cpus=2)
        self.runs = runs

    async def process(self, job: AnalysisJob) -> Analysed:
        self.runs[job.audio_hash] += 1
        await anyio.sleep(JOB_SECONDS)
        return Analysed(self.settings, results={"result": {"bpm": 120.0}}, metadata={})


async def _run_two_instances(
    db_url: str, catalog: Catalog, tmp_path: Path, renew_every: timedelta
) -> tuple[Counter[str], list[StageEvent]]:
    root = tmp_path / "music"
    for i in range(STREAMS):
        audiogen.make_audio(root / f"t{i}.flac", seconds=0.2, freq=300.0 + 50 * i, seed=i)
    assert (await Scanner(catalog, concurrency=2).scan([str(root)])).counts["new"] == STREAMS
    runs: Counter[str] = Counter()
    events: list[StageEvent] = []
    second = await Catalog.open(db_url)
    fingerprint = AnalysisSettings().fingerprint()
    try:
        loops = []
        beats = []
        for cat in (catalog, second):
            beat = Heartbeat(make_owner_id(), lease=LEASE, renew_every=renew_every)
            stage = SlowAnalysis(cat, runs)
            assert stage.settings.fingerprint() == fingerprint
            loops.append(
                StageLoop(
                    stage,
                    beat,
                    concurrency=2,
                    max_in_flight=2,
                    idle_poll=0.2,
                    on_event=events.append,
                )
            )
            beats.append(beat)

        async def until_done() -> None:
            with anyio.fail_after(60):
                while True:
                    stats = await catalog.analysis_stats(fingerprint)
                    idle = all(loop.in_flight == 0 for loop in loops)
                    if stats["pending"] == 0 and idle:
                        break
                    await anyio.sleep(0.2)
            for loop in loops:
                loop.stop_claiming()

        async with anyio.create_task_group() as tg:
            for beat in beats:
                tg.start_soon(beat.run)
            async with anyio.create_task_group() as running:
                for loop in loops:
                    running.start_soon(loop.run)
                running.start_soon(until_done)
            tg.cancel_scope.cancel()
    finally:
        await second.close()
    return runs, events


@pytest.mark.parametrize("db_url", ["postgres"], indirect=True)
async def test_a_job_running_past_its_lease_is_never_claimed_twice(
    db_url: str, catalog: Catalog, tmp_path: Path
) -> None:
    runs, events = await _run_two_instances(
        db_url, catalog, tmp_path, renew_every=timedelta(seconds=0.25)
    )
    assert len(runs) == STREAMS
    assert set(runs.values()) == {1}, f"analysed more than once: {runs}"
    assert sorted(e.outcome for e in events) == ["done"] * STREAMS


@pytest.mark.parametrize("db_url", ["postgres"], indirect=True)
async def test_control_without_a_heartbeat_the_lease_runs_out_mid_job(
    db_url: str, catalog: Catalog, tmp_path: Path
) -> None:
    runs, events = await _run_two_instances(
        db_url, catalog, tmp_path, renew_every=timedelta(hours=1)
    )
    assert max(runs.values()) >= 2, f"the control never ran a job twice: {runs}"
    # The owner that lost its lease has its late result refused, not written over the other's.
    assert "lost" in {e.outcome for e in events}
