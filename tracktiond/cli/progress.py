"""Progress bars for long CLI work (drawn on stderr, only on a terminal): the walk, the files
read, and with `scan --analyze` the recordings analysed; `identify`'s fingerprinting and
matching."""

from __future__ import annotations

from collections.abc import Callable
from types import TracebackType

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)

from tracktiond.catalog.store import Outcome


def _bars(*, counted: bool) -> Progress:
    """The one layout of every bar: spinner, description, bar, (done/total), detail, time."""
    count = (MofNCompleteColumn(),) if counted else ()
    return Progress(
        SpinnerColumn(),
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        *count,
        TextColumn("{task.fields[detail]}"),
        TimeElapsedColumn(),
        console=Console(stderr=True),
        transient=False,
    )


class ScanProgressBar:
    """Implements scanner.ScanProgress: files found by the walk, then files read and hashed."""

    def __init__(self, *, enabled: bool) -> None:
        self.enabled = enabled
        self._progress: Progress | None = None
        self._walk: TaskID | None = None
        self._read: TaskID | None = None
        self._analyse: TaskID | None = None
        self._queued = 0
        self._bytes = 0

    def __enter__(self) -> ScanProgressBar:
        if self.enabled:
            self._progress = _bars(counted=True)
            self._progress.start()
            self._walk = self._progress.add_task("walking", total=None, detail="")
            self._read = self._progress.add_task("reading", total=0, detail="")
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._progress is not None:
            self._progress.stop()

    def discovered(self, files: int) -> None:
        if self._progress is not None and self._walk is not None:
            self._progress.update(self._walk, advance=files, detail="files found")

    def queued(self, jobs: int) -> None:
        self._queued += jobs
        if self._progress is not None and self._read is not None:
            self._progress.update(self._read, total=self._queued)

    def walked(self) -> None:
        # The spinner stops at the final count instead of "walking 2452/?" while files are read.
        if self._progress is not None and self._walk is not None:
            found = self._progress.tasks[self._walk].completed
            self._progress.update(self._walk, total=found, completed=found, detail="files found")

    def analysed(self, outcome: str) -> None:
        if self._progress is None:
            return
        if self._analyse is None:
            self._analyse = self._progress.add_task("analysing", total=None, detail="")
        if outcome in ("done", "failed"):
            self._progress.update(self._analyse, advance=1, detail="recordings analysed")

    def processed(self, outcome: Outcome, size: int) -> None:
        self._bytes += size
        if self._progress is not None and self._read is not None:
            self._progress.update(
                self._read, advance=1, detail=f"{self._bytes / 1e6:,.0f} MB new or changed"
            )


class IdentifyProgress:
    """`identify`'s bars: fingerprinting a set (a spinner), then matching it (its minutes)."""

    def __init__(self, *, enabled: bool) -> None:
        self.enabled = enabled
        self._progress: Progress | None = None

    def __enter__(self) -> IdentifyProgress:
        if self.enabled:
            self._progress = _bars(counted=False)
            self._progress.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._progress is not None:
            self._progress.stop()

    def fingerprinting(self, name: str) -> Callable[[], None]:
        """Shows a spinner while the worker decodes ``name``; call the result when it is done."""
        progress = self._progress
        if progress is None:
            return lambda: None
        task = progress.add_task(f"fingerprinting {name}", total=None, detail="")
        return lambda: progress.update(task, total=1, completed=1)

    def matching(self, seconds: float) -> Callable[[float], None]:
        """A bar over the set's ``seconds``; the result is told the seconds done (any thread)."""
        progress = self._progress
        if progress is None:
            return lambda done: None
        task = progress.add_task("matching", total=max(seconds, 1.0), detail="")

        def advance(done: float) -> None:
            detail = f"{done / 60:,.0f} of {seconds / 60:,.0f} min"
            progress.update(task, completed=done, detail=detail)

        return advance
