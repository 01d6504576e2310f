"""An analysis worker that misbehaves on purpose: the real worker with faults injected.

It serves the real worker's protocol (``tracktiond.analysis.worker.main``) with the real engine,
except that a file whose name carries a fault suffix gets the fault instead, exactly where the
engine would have run (inside the worker's per-file error handling):

* ``.crash-test``: the worker kills itself with SIGSEGV (a decoder segfault);
* ``.abort-test``: it aborts (SIGABRT, a double free caught by the C library);
* ``.hang-test``: it never answers (a decoder stuck in a loop);
* ``.oom-test``: it allocates memory until it is killed (a runaway decoder).

The suffix may be followed by a real extension (``set.crash-test.wav``), so that a daemon catalogs
the file before it reaches analysis. ``--start-delay SECONDS`` delays the worker's ready message
(a loaded machine, a cold disk cache).

In process, hand :func:`command` to the pool::

    AnalysisPool(1, worker_command=faulty_worker.command())

A daemon or CLI run as a subprocess takes :func:`environment`: it puts ``faulty_site/`` (a
``sitecustomize`` module) on ``PYTHONPATH``, which makes every pool of that process start this
worker. Production code has no switch for any of this.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn

if TYPE_CHECKING:
    from tracktiond.analysis.result import AnalysisResult
    from tracktiond.analysis.settings import AnalysisSettings

__all__ = ["ABORT", "CRASH", "HANG", "OOM", "command", "environment", "main"]

CRASH = ".crash-test"
ABORT = ".abort-test"
HANG = ".hang-test"
OOM = ".oom-test"

REPO_ROOT = Path(__file__).resolve().parents[2]
SITE_DIR = Path(__file__).resolve().with_name("faulty_site")


def _crash() -> NoReturn:
    os.kill(os.getpid(), signal.SIGSEGV)
    raise AssertionError("unreachable: SIGSEGV kills the process")


def _abort() -> NoReturn:
    os.abort()


def _hang() -> NoReturn:
    while True:
        time.sleep(3600)


def _eat_memory() -> NoReturn:
    hog: list[bytearray] = []
    while True:
        # bytearray(n) is calloc'd and may not be resident until written: fill it.
        chunk = bytearray(32 * 1024 * 1024)
        chunk[:] = b"\x01" * len(chunk)
        hog.append(chunk)
        time.sleep(0.01)


FAULTS: dict[str, Callable[[], NoReturn]] = {
    CRASH: _crash,
    ABORT: _abort,
    HANG: _hang,
    OOM: _eat_memory,
}


def analyze(path: str, settings: AnalysisSettings) -> AnalysisResult:
    """The engine, unless the file's name asks for a fault."""
    for suffix in Path(path).suffixes:
        fault = FAULTS.get(suffix)
        if fault is not None:
            fault()
    from tracktiond.analysis.engine import analyze_file

    return analyze_file(path, settings)


def command(*, start_delay: float = 0.0) -> tuple[str, ...]:
    """The program to pass as ``AnalysisPool(worker_command=...)``."""
    delay = ("--start-delay", str(start_delay)) if start_delay > 0 else ()
    return (sys.executable, str(Path(__file__).resolve()), *delay)


def environment(base: Mapping[str, str] | None = None) -> dict[str, str]:
    """``base`` (default ``os.environ``) for a tracktiond subprocess that runs this worker."""
    env = dict(os.environ if base is None else base)
    paths = [str(SITE_DIR), str(REPO_ROOT)]
    if env.get("PYTHONPATH"):
        paths.append(env["PYTHONPATH"])
    env["PYTHONPATH"] = os.pathsep.join(paths)
    return env


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="faulty_worker", add_help=False)
    parser.add_argument("--start-delay", type=float, default=0.0)
    ours, rest = parser.parse_known_args(argv)
    if ours.start_delay > 0:
        # Like the real worker, ignore a Ctrl-C meant for the daemon while we dawdle.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        time.sleep(ours.start_delay)
    from tracktiond.analysis import worker

    return worker.main(rest, analyze=analyze)


if __name__ == "__main__":
    # Run as a file (see command()): sys.path[0] is tests/support, whose modules must not shadow
    # anything; the repository root makes this checkout's `tracktiond` the one imported.
    # (tracktiond is imported lazily, after this line, for that reason.)
    sys.path[0] = str(REPO_ROOT)
    sys.exit(main())
