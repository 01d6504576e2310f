"""The analysis worker process: ``python -m tracktiond.analysis.worker``.

A persistent subprocess owned by :class:`tracktiond.analysis.pool.AnalysisPool`, so essentia is
imported once per worker rather than once per file, and so a decoder or analysis crash, hang or
runaway allocation costs this process, never the daemon (DESIGN invariant 4).

Protocol, one JSON object per line:

* worker -> pool, once at start: ``{"ready": true, "pid": N}``
* pool -> worker: ``{"id": N, "path": "...", "settings": {...}}`` (an analysis), or
  ``{"id": N, "task": "fingerprint", "path": "..."}`` (a fingerprint: ``fingerprinting.py``)
* worker -> pool: ``{"id": N, "ok": true, "result": {...}, "peak_rss": BYTES}`` or
  ``{"id": N, "ok": false, "class": "bad_input"|"transient"|"bug", "reason": "...",
  "traceback": "..."|null, "peak_rss": BYTES}``

End of input makes the worker exit 0. The protocol uses a private duplicate of the original
stdout; file descriptor 1 is pointed at stderr, so nothing a native library prints can corrupt it.

``main(argv, analyze=...)`` serves the protocol with another analysis function (default
:func:`tracktiond.analysis.engine.analyze_file`), which runs exactly where the engine would: a
program that wraps the engine (to profile it, or to misbehave on purpose) is a few lines that call
``main``.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import json
import os
import resource
import signal
import sys
import traceback
from collections.abc import Callable
from typing import IO, TYPE_CHECKING, Any

if TYPE_CHECKING:
    from tracktiond.analysis.result import AnalysisResult
    from tracktiond.analysis.settings import AnalysisSettings

#: What the worker runs per file: ``analyze(path, settings) -> AnalysisResult``, raising
#: :class:`tracktiond.errors.FileJobError` (or anything else, a bug) when it fails.
Analyze = Callable[[str, "AnalysisSettings"], "AnalysisResult"]


def peak_rss() -> int:
    """This process's peak resident set size (VmHWM) in bytes; 0 where /proc is missing."""
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def _handle(request: dict[str, Any], analyze: Analyze) -> dict[str, Any]:
    from tracktiond.analysis.settings import AnalysisSettings
    from tracktiond.errors import FileJobError

    job = request.get("id")
    try:
        path = str(request["path"])
        if request.get("task") == "fingerprint":
            from tracktiond.analysis.fingerprinting import fingerprint_file

            return {"id": job, "ok": True, "result": fingerprint_file(path)}
        settings = AnalysisSettings.from_dict(dict(request.get("settings") or {}))
        result = analyze(path, settings)
        return {"id": job, "ok": True, "result": result.to_dict()}
    except FileJobError as exc:
        return {"id": job, "ok": False, "class": exc.failure_class.value, "reason": exc.reason}
    except MemoryError:
        # Hitting RLIMIT_AS: the file needs more memory than the limit allows.
        return {
            "id": job,
            "ok": False,
            "class": "bad_input",
            "reason": "analysis exceeded the memory limit (address space)",
            "memory": True,
        }
    except Exception as exc:
        return {
            "id": job,
            "ok": False,
            "class": "bug",
            # Never an empty reason: an exception without a message is named by its type.
            "reason": f"internal error: {type(exc).__name__}" + (f": {exc}" if str(exc) else ""),
            "traceback": traceback.format_exc(),
        }


def _send(out: IO[str], message: dict[str, Any]) -> None:
    out.write(json.dumps(message, separators=(",", ":")) + "\n")
    out.flush()


def main(argv: list[str] | None = None, *, analyze: Analyze | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tracktiond.analysis.worker")
    parser.add_argument(
        "--address-space-limit",
        type=int,
        default=0,
        help="RLIMIT_AS in bytes, a backstop behind the pool's RSS polling (0: none)",
    )
    args = parser.parse_args(argv)

    protocol = os.fdopen(os.dup(sys.stdout.fileno()), "w", encoding="utf-8")
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())
    sys.stdout = sys.stderr
    # The daemon handles SIGINT/SIGTERM for the whole process group; a worker is stopped by its
    # pool (end of input, or SIGKILL), not by a Ctrl-C meant for the daemon.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _die_with_parent()

    import essentia

    # essentia logs INFO lines on import and WARNINGs for odd input; the pool reports results.
    essentia.log.infoActive = False
    essentia.log.warningActive = False
    from tracktiond.analysis import engine

    engine._essentia()  # import the native library now: failures show at start, not per file
    analyze = analyze or engine.analyze_file

    if args.address_space_limit > 0:
        # Set after the imports, which map a few hundred MB of address space themselves.
        resource.setrlimit(resource.RLIMIT_AS, (args.address_space_limit, args.address_space_limit))

    try:
        _serve(protocol, analyze)
    except (BrokenPipeError, ConnectionResetError):
        # The pool is gone (the daemon was killed with SIGKILL): nobody to answer, nothing to
        # report; exit quietly instead of printing a traceback into the journal.
        with contextlib.suppress(OSError):
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stderr.fileno())
        return 0
    return 0


def _die_with_parent() -> None:
    """Ask the kernel to end this worker when the process that started it dies (Linux
    PR_SET_PDEATHSIG): a daemon killed with SIGKILL leaves no worker running on its own."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        pr_set_pdeathsig = 1
        libc.prctl(pr_set_pdeathsig, signal.SIGTERM, 0, 0, 0)
    except (OSError, AttributeError):  # not Linux: the pool's end of input still stops it
        return
    if os.getppid() == 1:  # the parent died before the request took effect
        sys.exit(0)


def _serve(protocol: IO[str], analyze: Analyze) -> None:
    _send(protocol, {"ready": True, "pid": os.getpid()})
    for line in sys.stdin:
        if not line.strip():
            continue
        try:
            request = json.loads(line)
            if not isinstance(request, dict):
                raise ValueError("request is not an object")
        except ValueError as exc:
            _send(
                protocol, {"id": None, "ok": False, "class": "bug", "reason": f"bad request: {exc}"}
            )
            continue
        response = _handle(request, analyze)
        response["peak_rss"] = peak_rss()
        _send(protocol, response)


if __name__ == "__main__":
    sys.exit(main())
