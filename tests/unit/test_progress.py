"""The scan's progress bars: the walk's spinner stops at its final count once the walk is over
(it used to keep spinning at "walking 2452/?" while the files were read)."""

from __future__ import annotations

from tracktiond.catalog.store import Outcome
from tracktiond.cli.progress import ScanProgressBar


def test_the_walk_bar_is_complete_once_walked_and_reading_goes_on() -> None:
    with ScanProgressBar(enabled=True) as bar:
        bar.discovered(3)
        bar.discovered(2)
        progress = bar._progress
        assert progress is not None and bar._walk is not None and bar._read is not None
        walk = progress.tasks[bar._walk]
        assert walk.total is None and not walk.finished
        bar.walked()
        walk = progress.tasks[bar._walk]
        assert walk.total == 5 and walk.completed == 5 and walk.finished
        bar.queued(5)
        bar.processed(Outcome.NEW, 1000)
        read = progress.tasks[bar._read]
        assert (read.completed, read.total) == (1, 5)


def test_a_disabled_bar_takes_every_call() -> None:
    with ScanProgressBar(enabled=False) as bar:
        bar.discovered(1)
        bar.walked()
        bar.queued(1)
        bar.processed(Outcome.NEW, 1)
        bar.analysed("done")
