"""Benchmark: a burst of new files reaching a running daemon, against `tracktiond scan`.

A folder of ``--files`` small real audio files (in ``--dirs`` directories) is

1. cataloged by ``tracktiond scan`` into a fresh catalog (the one-shot floor), then
2. copied (``cp -r``, as a user does) into the watched root of a running daemon with a fresh
   catalog: the time from the start of the copy to the moment every file is ``cataloged``
   (polled in the catalog database every 50 ms).

The goal (issue "what a new user hit", defect 13): a burst is ingested at scan speed, so the
ratio of the daemon's files/s to the scan's is what this prints. Run from the repository root::

    python bench/burst.py --files 2000 --dirs 40

The library generator and the daemon harness are bench/daemon.py's.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
_spec = importlib.util.spec_from_file_location("daemon_bench", HERE / "daemon.py")
assert _spec is not None and _spec.loader is not None
dbench = importlib.util.module_from_spec(_spec)
sys.modules["daemon_bench"] = dbench
_spec.loader.exec_module(dbench)


def burst(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    audiogen = dbench.load_audiogen()
    library = dbench.make_library(work, args.files, args.dirs, audiogen)
    source = Path(library["root"])
    expected = int(library["files"])

    scanner = dbench.Daemon(work / "scan-home", [source], settle=args.settle)
    scan = dbench.run_scan(scanner, source, expected)
    dbench.log(f"scan: {expected:,} files in {scan['seconds']:.1f} s")

    root = work / "watched"
    shutil.rmtree(root, ignore_errors=True)
    root.mkdir()
    daemon = dbench.Daemon(work / "daemon-home", [root], settle=args.settle)
    with contextlib.suppress(FileNotFoundError):
        shutil.rmtree(daemon.state_home)
    daemon.state_home.mkdir(parents=True, exist_ok=True)
    daemon.start()
    try:
        daemon.wait_ready(60)
        started = time.perf_counter()
        subprocess.run(["cp", "-r", str(source), str(root / "burst")], check=True)
        copied = time.perf_counter() - started
        conn = dbench.open_catalog_readonly(daemon.db_path)
        deadline = started + args.timeout
        while True:
            states = dbench.count_states(conn)
            if states.get("cataloged", 0) >= expected:
                break
            if time.perf_counter() > deadline:
                raise SystemExit(f"not cataloged after {args.timeout} s: {states}")
            time.sleep(0.05)
        seconds = time.perf_counter() - started
        conn.close()
        failed = daemon.metric("tracktiond_jobs_failed_total")
    finally:
        daemon.stop()
    dbench.log(f"daemon: {expected:,} files in {seconds:.1f} s (copy took {copied:.1f} s)")
    return {
        "files": expected,
        "scan_seconds": round(scan["seconds"], 2),
        "scan_files_per_s": round(expected / scan["seconds"], 1),
        "daemon_seconds": round(seconds, 2),
        "copy_seconds": round(copied, 2),
        "daemon_files_per_s": round(expected / seconds, 1),
        "daemon_vs_scan": round(scan["seconds"] / seconds, 2),
        "failed_jobs": failed,
        "load_before": os.getloadavg()[0],
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=2000)
    parser.add_argument("--dirs", type=int, default=40)
    parser.add_argument("--settle", type=float, default=2.0, help="[library] settle_interval")
    parser.add_argument("--timeout", type=float, default=600.0)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="tracktiond-burst-") as tmp:
        result = burst(args, Path(tmp))
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        for key, value in result.items():
            print(f"{key:>20}: {value}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
