"""Progress bars for long CLI work (drawn on stderr, only on a terminal): the walk, the files
read, and with `scan --analyze` the recordings analysed."""

from __future__ import annotations

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
            self._progress = Progress(
                SpinnerColumn(),
                TextColumn("[bold]{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("{task.fields[detail]}"),
                TimeElapsedColumn(),
                console=Console(stderr=True),
                transient=False,
            )
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
