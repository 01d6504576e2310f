"""The progress bars. The scan's: the walk's spinner stops at its final count once the walk is
over (it used to keep spinning at "walking 2452/?" while the files were read). identify's: the
fingerprinting spinner finishes, the matching bar follows the seconds done."""

from __future__ import annotations

from tracktiond.catalog.store import Outcome
from tracktiond.cli.progress import IdentifyProgress, ScanProgressBar


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


def test_identify_bars_finish_fingerprinting_and_follow_matching() -> None:
    with IdentifyProgress(enabled=True) as bar:
        done = bar.fingerprinting("set.flac")
        progress = bar._progress
        assert progress is not None
        [spinner] = progress.tasks
        assert spinner.total is None and "set.flac" in spinner.description
        done()
        assert progress.tasks[0].finished
        advance = bar.matching(7200.0)
        advance(1800.0)
        matching = progress.tasks[1]
        assert (matching.completed, matching.total) == (1800.0, 7200.0)
        assert matching.fields["detail"] == "30 of 120 min"


def test_disabled_identify_bars_take_every_call() -> None:
    with IdentifyProgress(enabled=False) as bar:
        bar.fingerprinting("set.flac")()
        bar.matching(60.0)(30.0)
