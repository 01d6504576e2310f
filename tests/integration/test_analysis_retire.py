"""Unfinished analyses of audio no present file holds are retired, so "pending" can reach zero.

A version replaced while it was being written, a file deleted before it was analysed: their
analysis rows can never run. They used to stay pending for ever, so an idle daemon reported a
backlog and an alert on it never cleared.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support import audiogen
from tracktiond.analysis.settings import AnalysisSettings
from tracktiond.catalog import Catalog
from tracktiond.pipeline.scan import Scanner

pytestmark = pytest.mark.anyio

FINGERPRINT = AnalysisSettings().fingerprint()


async def _pending(catalog: Catalog) -> int:
    return (await catalog.analysis_stats(FINGERPRINT))["pending"]


async def test_deleted_and_replaced_audio_is_retired_and_finished_results_stay(
    catalog: Catalog, library: Path
) -> None:
    kept = audiogen.make_audio(library / "kept.flac", seconds=0.3, freq=440.0)
    gone = audiogen.make_audio(library / "gone.flac", seconds=0.3, freq=550.0)
    replaced = audiogen.make_audio(library / "replaced.flac", seconds=0.3, freq=660.0)
    await Scanner(catalog, concurrency=2).scan([str(library)])
    assert await _pending(catalog) == 3
    # One stream is analysed: its result must survive retirement even once its file is gone.
    jobs = await catalog.analysis_queue.claim("t", 3, FINGERPRINT)
    [job] = [j for j in jobs if j.path == str(kept)]
    assert (
        await catalog.record_analysis(
            job, "t", fingerprint=FINGERPRINT, version=1, results={"result": {}}, metadata={}
        )
        == "done"
    )
    await catalog.release_leases(["t"])
    assert await catalog.retire_orphaned_analyses() == 0, "nothing is orphaned yet"

    gone.unlink()
    audiogen.make_audio(replaced, seconds=0.3, freq=770.0)  # new audio under the same name
    kept.unlink()
    await Scanner(catalog, concurrency=2).scan([str(library)])
    # gone's and replaced's old audio can never be analysed; replaced's new audio can.
    assert await catalog.retire_orphaned_analyses() == 2
    assert await _pending(catalog) == 1
    assert (await catalog.analysis_stats(FINGERPRINT))["analysed"] == 1  # kept's result stays
    assert await catalog.retire_orphaned_analyses() == 0
