"""The console script's entry point: what runs before anything heavy is imported.

`tracktiond run` handles SIGTERM, SIGINT and SIGHUP in its event loop, but importing the daemon
takes a second or more, and a stop signal arriving meanwhile would kill it by the default action
(status -15, no clean stop, systemd sees a failure). So the entry point first *defers* those
signals — remembers them — then imports the command line. The daemon replays what arrived once
its own handlers are in place; every other command gets the default handlers back before it
starts, and a signal deferred meanwhile is delivered again then (Ctrl-C still interrupts).

Standard library only, on purpose: this module must cost nothing to import.
"""

from __future__ import annotations

import os
import signal
from types import FrameType

_STOP_SIGNALS: tuple[int, ...] = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)
_deferred: list[int] = []
_deferring = False


def _remember(signum: int, _frame: FrameType | None) -> None:
    _deferred.append(signum)


def defer_stop_signals() -> None:
    global _deferring
    for signum in _STOP_SIGNALS:
        signal.signal(signum, _remember)
    _deferring = True


def take_deferred() -> list[int]:
    """The signals that arrived while deferred, oldest first (each handed out once)."""
    taken = list(_deferred)
    _deferred.clear()
    return taken


def restore_default_signals() -> None:
    """Back to Python's defaults; a signal that arrived meanwhile is delivered again now."""
    global _deferring
    if not _deferring:
        return
    _deferring = False
    for signum in _STOP_SIGNALS:
        signal.signal(
            signum, signal.default_int_handler if signum == signal.SIGINT else signal.SIG_DFL
        )
    for signum in take_deferred():
        os.kill(os.getpid(), signum)


def main() -> None:
    defer_stop_signals()
    from tracktiond.cli import main as cli

    cli()
