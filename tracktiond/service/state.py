"""The daemon's run state: one value instead of a handful of flags.

    STARTING ──> RECONCILING ──> AWAITING_WATCHERS ──> READY
        └────────────┴──────────────────┴────────────────┴──> STOPPING

STARTING: connecting to the catalog, starting the stages and the watchers. RECONCILING: the
first walk of every root. AWAITING_WATCHERS: walked, but a watcher is still setting up its
inotify watches. READY: READY=1 was sent and /readyz answers 200 while the catalog is up.
STOPPING: a stop signal came; nothing leaves it.
"""

from __future__ import annotations

from enum import StrEnum


class RunState(StrEnum):
    STARTING = "starting"
    RECONCILING = "reconciling"
    AWAITING_WATCHERS = "awaiting_watchers"
    READY = "ready"
    STOPPING = "stopping"


_ORDER = list(RunState)


class Lifecycle:
    """The run state, moved only forward (STOPPING from anywhere, and never left)."""

    def __init__(self) -> None:
        self.state = RunState.STARTING

    def advance(self, to: RunState) -> bool:
        """Move to ``to`` if that is forward from here; returns whether it moved."""
        if self.state is RunState.STOPPING or _ORDER.index(to) <= _ORDER.index(self.state):
            return False
        self.state = to
        return True

    @property
    def stopping(self) -> bool:
        return self.state is RunState.STOPPING

    @property
    def walked(self) -> bool:
        """The first reconciliation of every root is over."""
        return self.state in (RunState.AWAITING_WATCHERS, RunState.READY)
