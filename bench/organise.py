"""Organise benchmarks: planning a 100,000-file library, applying 10,000 renames on one
filesystem, and the catalog after the moves (a reconcile that reads nothing).

    .venv/bin/python bench/organise.py [--plan-files 100000] [--apply-files 10000] [--dir D]
                                       [--rounds 3]

The library is real files on disk (tiny: planning reads only the catalog and a stat per file;
a rename does not care how big the file is) and catalog rows as the scanner writes them
(recording, file, tag and stream metadata), inserted in bulk so the set-up takes seconds.
SQLite, in a temporary state directory. The plan is made the way ``tracktiond organise`` makes
it (``make_plan``), ``--rounds`` times on the same library (each round's figures, and the
median). Prints one JSON object, with the machine's load average around each measurement and
the CPU seconds the process used (all its threads): on a shared machine wall time alone says
little.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from sqlalchemy import insert

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tracktiond.catalog import Catalog
from tracktiond.catalog.models import files, metadata_entries, recordings, utcnow
from tracktiond.config import config_from_mapping
from tracktiond.organise.journal import Journal, apply_plan
from tracktiond.organise.settings import settings_from_config
from tracktiond.pipeline.scan import Scanner

try:
    from tracktiond.organise.plans import make_plan
except ImportError:  # a tree from before make_plan moved out of the CLI (before/after runs)
    from tracktiond.cli.organise import make_plan  # type: ignore[attr-defined]

PATTERN = "{albumartist|artist}/{album}/{track:02} {title}"


def make_files(root: Path, count: int) -> list[tuple[str, os.stat_result, dict[str, str]]]:
    """``count`` files, 12 per album, 10 albums per artist, in a flat download layout."""
    out = []
    for n in range(count):
        d = root / "downloads" / f"batch{n // 500}"
        d.mkdir(parents=True, exist_ok=True)
        path = d / f"file{n}.flac"
        path.write_bytes(n.to_bytes(8, "little"))
        tags = {
            "artist": f"Artist {n // 120}",
            "album": f"Album {n // 12}",
            "title": f"Title number {n}",
            "tracknumber": f"{n % 12 + 1}/12",
            "date": "2024",
            "genre": "Techno",
        }
        out.append((str(path), path.stat(), tags))
    return out


async def fill_catalog(
    catalog: Catalog, entries: list[tuple[str, os.stat_result, dict[str, str]]]
) -> None:
    now = utcnow()
    async with catalog.engine.begin() as conn:
        for start in range(0, len(entries), 5000):
            chunk = entries[start : start + 5000]
            recs, rows, meta = [], [], []
            for path, st, tags in chunk:
                rid = uuid.uuid4()
                digest = uuid.uuid4().hex * 2
                recs.append(
                    {
                        "id": rid,
                        "file_path": path,
                        "file_name": os.path.basename(path),
                        "sha256_hash": digest,
                        "xxh128_hash": digest[:32],
                        "size": st.st_size,
                        "format": "flac",
                        "created_at": now,
                        "updated_at": now,
                    }
                )
                rows.append(
                    {
                        "path": path,
                        "dir": os.path.dirname(path),
                        "recording_id": rid,
                        "size": st.st_size,
                        "mtime_ns": st.st_mtime_ns,
                        "ctime_ns": st.st_ctime_ns,
                        "inode": st.st_ino,
                        "device": st.st_dev,
                        "state": "cataloged",
                        "attempts": 0,
                        "first_seen": now,
                        "last_seen": now,
                        "updated_at": now,
                    }
                )
                meta += [
                    {"recording_id": rid, "key": k, "value": v, "source": "tags"}
                    for k, v in tags.items()
                ]
                meta += [
                    {
                        "recording_id": rid,
                        "key": "duration",
                        "value": "240.000",
                        "source": "stream",
                    },
                    {"recording_id": rid, "key": "bitrate", "value": "900000", "source": "stream"},
                ]
            await conn.execute(insert(recordings), recs)
            await conn.execute(insert(files), rows)
            await conn.execute(insert(metadata_entries), meta)


def load() -> float:
    return round(os.getloadavg()[0], 2)


async def timed(what: Callable[[], Awaitable[Any]]) -> tuple[Any, dict[str, float]]:
    """``what()``'s result, and its wall and CPU seconds with the load before and after."""
    before = load()
    cpu, t = time.process_time(), time.perf_counter()
    result = await what()
    figures = {
        "seconds": round(time.perf_counter() - t, 2),
        "cpu_seconds": round(time.process_time() - cpu, 2),
        "load_before": before,
        "load_after": load(),
    }
    return result, figures


async def bench(count: int, work: Path, *, apply: bool, rounds: int = 1) -> dict[str, Any]:
    library = work / f"lib{count}"
    library.mkdir()
    catalog = await Catalog.open(f"sqlite+aiosqlite:///{work / f'c{count}.db'}")
    result: dict[str, Any] = {"files": count}
    try:
        t = time.perf_counter()
        entries = make_files(library, count)
        await fill_catalog(catalog, entries)
        result["setup_seconds"] = round(time.perf_counter() - t, 1)
        config = config_from_mapping(
            {"library": {"roots": [str(library)]}, "organise": {"pattern": PATTERN}}, None, {}
        )
        settings = settings_from_config(config)
        runs = []
        for _ in range(rounds):
            draft, figures = await timed(lambda: make_plan(catalog, settings, [str(library)]))
            runs.append(figures)
        planned = statistics.median(r["seconds"] for r in runs)
        owner = f"bench:{os.getpid()}:x"
        plan_id, store = await timed(
            lambda: catalog.create_plan("organise", [], draft.steps, {}, owner)
        )
        result |= {
            "planned_moves": draft.counts["move"],
            "plan_seconds": planned,
            "plan_cpu_seconds": statistics.median(r["cpu_seconds"] for r in runs),
            "plan_rounds": runs,
            "plan_files_per_second": round(count / planned),
            "store_seconds": store["seconds"],
        }
        if apply:
            journal = Journal(frozenset(settings.protected_dirs), settings.journal_batch)
            info, figures = await timed(lambda: apply_plan(catalog, plan_id, owner, journal))
            result |= {
                "applied": info.counts,
                "apply": figures,
                "apply_files_per_second": round(count / figures["seconds"]),
            }
            t = time.perf_counter()
            summary = await Scanner(catalog).scan([str(library)])
            after = summary.as_dict()
            result["reconcile_after"] = {
                k: after[k] for k in ("unchanged", "new", "moved", "missing", "bytes_read")
            } | {"seconds": round(time.perf_counter() - t, 2)}
    finally:
        await catalog.close()
        shutil.rmtree(library, ignore_errors=True)
    return result


def machine() -> dict[str, Any]:
    model = ""
    try:
        with open("/proc/cpuinfo") as fh:
            model = next(
                (ln.split(":", 1)[1].strip() for ln in fh if ln.startswith("model name")), ""
            )
    except OSError:
        pass
    root = Path(__file__).resolve().parents[1]
    commit = subprocess.run(
        ["git", "-C", str(root), "rev-parse", "--short", "HEAD"], capture_output=True, text=True
    ).stdout.strip()
    return {
        "cpus": os.cpu_count(),
        "cpu": model,
        "python": platform.python_version(),
        "tree": str(root),
        "commit": commit,
        "at": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()),
    }


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--plan-files", type=int, default=100_000)
    parser.add_argument("--apply-files", type=int, default=10_000)
    parser.add_argument("--dir", type=Path, default=None, help="work directory (default: /tmp)")
    parser.add_argument("--rounds", type=int, default=3, help="plans made of the big library")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="tracktiond-bench-organise-", dir=args.dir))
    out: dict[str, Any] = {"machine": machine()}
    try:
        if args.plan_files:
            out["plan"] = await bench(args.plan_files, work, apply=False, rounds=args.rounds)
        if args.apply_files:
            out["apply"] = await bench(args.apply_files, work, apply=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    asyncio.run(main())
