"""The analysis worker process: ``python -m tracktiond.analysis.worker``.

A persistent subprocess owned by :class:`tracktiond.analysis.pool.AnalysisPool`, so essentia is
imported once per worker rather than once per file, and so a decoder or analysis crash, hang or
runaway allocation costs this process, never the daemon (DESIGN invariant 4).

Protocol, one JSON object per line:

* worker -> pool, once at start: ``{"ready": true, "pid": N}``
* pool -> worker: ``{"id": N, "path": "...", "settings": {...}}``
* worker -> pool: ``{"id": N, "ok": true, "result": {...}, "peak_rss": BYTES}`` or
  ``{"id": N, "ok": false, "class": "bad_input"|"transient"|"bug", "reason": "...",
  "traceback": "..."|null, "peak_rss": BYTES}``

End of input makes the worker exit 0. The protocol uses a private duplicate of the original
stdout; file descriptor 1 is pointed at stderr, so nothing a native library prints can corrupt it.

Test hooks (only when ``TRACKTIOND_ANALYSIS_TEST_HOOKS=1`` is in the worker's environment): a
path ending in ``.crash-test`` kills the worker with SIGSEGV, ``.abort-test`` aborts it
(SIGABRT), ``.hang-test`` never answers, ``.oom-test`` allocates memory until it is killed;
``TRACKTIOND_ANALYSIS_TEST_START_DELAY=SECONDS`` delays the worker's ready message.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import signal
import sys
import time
import traceback
from typing import IO, Any

TEST_HOOKS_ENV = "TRACKTIOND_ANALYSIS_TEST_HOOKS"
START_DELAY_ENV = "TRACKTIOND_ANALYSIS_TEST_START_DELAY"


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


def _test_hook(path: str) -> None:
    if os.environ.get(TEST_HOOKS_ENV) != "1":
        return
    if path.endswith(".crash-test"):
        os.kill(os.getpid(), signal.SIGSEGV)
    elif path.endswith(".abort-test"):
        os.abort()
    elif path.endswith(".hang-test"):
        while True:
            time.sleep(3600)
    elif path.endswith(".oom-test"):
        hog: list[bytearray] = []
        while True:
            # bytearray(n) is calloc'd and may not be resident until written; fill it.
            chunk = bytearray(32 * 1024 * 1024)
            chunk[:] = b"\x01" * len(chunk)
            hog.append(chunk)
            time.sleep(0.01)


def _handle(request: dict[str, Any]) -> dict[str, Any]:
    from tracktiond.analysis.engine import analyze_file
    from tracktiond.analysis.settings import AnalysisSettings
    from tracktiond.errors import FileJobError

    job = request.get("id")
    try:
        path = str(request["path"])
        settings = AnalysisSettings.from_dict(dict(request.get("settings") or {}))
        _test_hook(path)
        result = analyze_file(path, settings)
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
            "reason": f"internal error: {type(exc).__name__}: {exc}",
            "traceback": traceback.format_exc(),
        }


def _send(out: IO[str], message: dict[str, Any]) -> None:
    out.write(json.dumps(message, separators=(",", ":")) + "\n")
    out.flush()


def main(argv: list[str] | None = None) -> int:
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

    import essentia

    # essentia logs INFO lines on import and WARNINGs for odd input; the pool reports results.
    essentia.log.infoActive = False
    essentia.log.warningActive = False
    from tracktiond.analysis import engine

    engine._essentia()  # import the native library now: failures show at start, not per file

    if args.address_space_limit > 0:
        # Set after the imports, which map a few hundred MB of address space themselves.
        resource.setrlimit(resource.RLIMIT_AS, (args.address_space_limit, args.address_space_limit))

    if os.environ.get(TEST_HOOKS_ENV) == "1" and (delay := os.environ.get(START_DELAY_ENV)):
        time.sleep(float(delay))  # a slow start (a loaded machine, a cold disk cache)
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
        response = _handle(request)
        response["peak_rss"] = peak_rss()
        _send(protocol, response)
    return 0


if __name__ == "__main__":
    sys.exit(main())
