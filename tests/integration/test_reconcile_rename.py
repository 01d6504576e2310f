"""A directory renamed is reported as what it is: files moved, none missing.

The watcher sees a rename as the old path gone and the new one come, handed over together;
whichever order they come in, the walk reports "moved", not "missing" and "moved" for the same
files (which read, in the daemon's log, as if a folder had been lost).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support import audiogen
from tracktiond.catalog import Catalog
from tracktiond.pipeline.reconcile import Reconciler, ScanSummary
from tracktiond.pipeline.scan import Scanner

pytestmark = pytest.mark.anyio


@pytest.mark.parametrize("old_first", [True, False], ids=["old-path-first", "new-path-first"])
async def test_a_renamed_directory_is_moved_not_missing(
    catalog: Catalog, library: Path, old_first: bool
) -> None:
    album = library / "Album"
    for i in range(3):
        audiogen.make_audio(album / f"{i}.flac", seconds=0.2, seed=i)
    assert (await Scanner(catalog, concurrency=2).scan([str(library)])).counts["new"] == 3
    renamed = library / "Album (2019)"
    album.rename(renamed)
    summary = ScanSummary()
    paths = [str(album), str(renamed)] if old_first else [str(renamed), str(album)]
    await Reconciler(catalog, summary=summary).reconcile(paths)
    counts = {k: v for k, v in summary.counts.items() if v}
    assert counts == {"moved": 3}, counts
    status = await catalog.status()
    assert status.files_by_state.get("missing", 0) == 0
    assert status.files_by_state.get("cataloged") == 3
