"""Benchmark: tracklists — cue-sheet parsing, and matching against a big catalog.

1. **Parse a 150-track, 3-hour sheet** (tests/support/sheets.py ``long_set``): decode + parse +
   check, best and median of ``--repeat`` runs (goal: < 5 ms).
2. **A 10,000-sheet library**: ``--sheets`` sheets of 10-40 tracks written to disk (not
   measured), then read from disk, decoded and parsed, one after another; sheets per second.
3. **Match a 30-entry tracklist against a ``--recordings``-recording catalog** (goal: < 200 ms)
   on SQLite and on PostgreSQL (a throw-away server from the machine's binaries, as the tests
   start it): the catalog is filled directly with recordings, their artist/title tags and search
   words (not measured); 20 of the 30 entries name library tracks (some misspelt, some with a
   version), 10 do not. Cold (first) and warm (median of ``--repeat``) times of
   ``match_entries``, and how many entries matched. PostgreSQL gets the ``VACUUM ANALYZE``
   autovacuum gives a catalog at rest; SQLite is measured without ANALYZE (as it runs).

Run from the repository root with the project's venv::

    python bench/tracklists.py                          # 100,000 recordings, 10,000 sheets
    python bench/tracklists.py --recordings 5000 --sheets 500 --no-postgres   # smoke run

Results go to stdout as a table (``--json``: one JSON document).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sqlalchemy import insert, text

from tests.support import sheets
from tracktiond.catalog import Catalog
from tracktiond.catalog.models import (
    metadata_entries,
    recording_words,
    recordings,
    utcnow,
)
from tracktiond.catalog.tracklistvalues import EntryDraft
from tracktiond.catalog.wordindex import word_rows
from tracktiond.media.cuecheck import check_sheet
from tracktiond.media.cuesheet import parse_cue
from tracktiond.media.textcodec import decode_text
from tracktiond.tracklists.match import match_entries

# Common words (which many titles share) and a vocabulary of made-up words, as diverse as the
# names of a real library: a name has one to three of them and sometimes a common word.
COMMON = tuple(
    [
        "love",
        "night",
        "deep",
        "blue",
        "acid",
        "dream",
        "fire",
        "city",
        "house",
        "sun",
        "moon",
        "star",
        "light",
        "dark",
        "rain",
        "storm",
        "ocean",
        "voice",
        "echo",
        "pulse",
        "wave",
        "rise",
        "fall",
        "soul",
        "body",
        "mind",
        "heart",
        "time",
        "space",
        "gold",
    ]
)
SYLLABLES = tuple(
    [
        "ka",
        "lo",
        "mi",
        "ne",
        "ra",
        "su",
        "ti",
        "vo",
        "ze",
        "ba",
        "do",
        "fu",
        "gi",
        "ha",
        "ju",
        "ke",
        "li",
        "mo",
        "nu",
        "pa",
        "ro",
        "sa",
        "te",
        "vu",
        "xo",
    ]
)


def vocabulary(rng: random.Random, size: int = 20_000) -> list[str]:
    words: set[str] = set()
    while len(words) < size:
        words.add("".join(rng.choice(SYLLABLES) for _ in range(rng.randint(2, 4))))
    return sorted(words)


def parse_once(raw: bytes) -> float:
    started = time.perf_counter()
    decoded = decode_text(raw)
    sheet = parse_cue(decoded.text).sheet
    check_sheet(sheet, duration=3 * 3600)
    return time.perf_counter() - started


def bench_parse(repeat: int) -> dict[str, Any]:
    raw = sheets.long_set().encode("utf-8")
    times = [parse_once(raw) for _ in range(repeat)]
    return {
        "tracks": 150,
        "bytes": len(raw),
        "best_ms": round(min(times) * 1000, 3),
        "median_ms": round(statistics.median(times) * 1000, 3),
    }


def bench_library(count: int, workdir: Path) -> dict[str, Any]:
    rng = random.Random(1)
    paths = []
    for i in range(count):
        path = workdir / f"d{i // 100:03d}" / f"set{i}.cue"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(sheets.long_set(rng.randint(10, 40), 3600, name=f"set{i}.flac"))
        paths.append(path)
    started = time.perf_counter()
    tracks = 0
    for path in paths:
        sheet = parse_cue(decode_text(path.read_bytes()).text).sheet
        tracks += len(sheet.tracks)
    elapsed = time.perf_counter() - started
    return {
        "sheets": count,
        "tracks": tracks,
        "seconds": round(elapsed, 3),
        "sheets_per_second": round(count / elapsed, 1),
    }


def _name(rng: random.Random, n: int, vocab: list[str]) -> str:
    words = [rng.choice(vocab) for _ in range(n)]
    if rng.random() < 0.4:
        words.insert(rng.randrange(len(words) + 1), rng.choice(COMMON))
    return " ".join(w.capitalize() for w in words)


async def fill(catalog: Catalog, count: int) -> list[tuple[str, str]]:
    """``count`` recordings with artist/title tags and search words; returns their names."""
    rng = random.Random(7)
    vocab = vocabulary(rng)
    names = []
    now = utcnow()
    async with catalog.engine.begin() as conn:
        for start in range(0, count, 2000):
            recs, meta, words = [], [], []
            for i in range(start, min(count, start + 2000)):
                rec_id = uuid.uuid4()
                artist, title = _name(rng, 2, vocab), _name(rng, rng.randint(1, 3), vocab)
                names.append((artist, title))
                recs.append(
                    {
                        "id": rec_id,
                        "file_path": f"/music/{i}.mp3",
                        "file_name": f"{i}.mp3",
                        "sha256_hash": f"{i:064x}",
                        "xxh128_hash": f"{i:032x}",
                        "size": 1,
                        "format": "mp3",
                        "created_at": now,
                        "updated_at": now,
                    }
                )
                tags = {"artist": artist, "title": title}
                meta += [
                    {"recording_id": rec_id, "key": k, "value": v, "source": "tags"}
                    for k, v in tags.items()
                ] + [
                    {"recording_id": rec_id, "key": "duration", "value": "360", "source": "stream"}
                ]
                words += word_rows(rec_id, tags)
            await conn.execute(insert(recordings), recs)
            await conn.execute(insert(metadata_entries), meta)
            await conn.execute(insert(recording_words), words)
    return names


async def settle(catalog: Catalog) -> None:
    """PostgreSQL after a bulk load: what autovacuum does to a catalog at rest (statistics for
    the planner, the visibility map for index-only counts). SQLite is measured as it is: the
    catalog never runs ANALYZE there, and its queries do not depend on it."""
    if catalog.dialect != "postgresql":
        return
    async with catalog.engine.connect() as conn:
        conn = await conn.execution_options(isolation_level="AUTOCOMMIT")
        for table in ("recording_words", "metadata", "recordings"):
            await conn.execute(text(f"VACUUM ANALYZE {table}"))


def tracklist(names: list[tuple[str, str]]) -> list[EntryDraft]:
    rng = random.Random(3)
    vocab = vocabulary(random.Random(11))  # words the library does not have (or by chance)
    entries = []
    for position in range(1, 31):
        start = (position - 1) * 300.0
        if position <= 20:
            artist, title = rng.choice(names)
            if position % 5 == 0:  # a typo
                title = title[:-1] + ("x" if title[-1] != "x" else "y")
            version = "Extended Mix" if position % 4 == 0 else None
        else:
            artist, title, version = _name(rng, 2, vocab), _name(rng, 3, vocab), None
        entries.append(EntryDraft(position, start, start + 300, artist, title, version))
    return entries


async def bench_match(url: str, count: int, repeat: int) -> dict[str, Any]:
    catalog = await Catalog.open(url)
    try:
        started = time.perf_counter()
        names = await fill(catalog, count)
        await settle(catalog)
        fill_seconds = time.perf_counter() - started
        entries = tracklist(names)
        times = []
        matched = 0
        for _ in range(repeat + 1):
            t0 = time.perf_counter()
            result = await match_entries(catalog, entries)
            times.append(time.perf_counter() - t0)
            matched = sum(1 for m in result if m.status == "matched")
        return {
            "recordings": count,
            "entries": len(entries),
            "matched": matched,
            "cold_ms": round(times[0] * 1000, 1),
            "warm_median_ms": round(statistics.median(times[1:]) * 1000, 1),
            "fill_seconds": round(fill_seconds, 1),
        }
    finally:
        await catalog.close()


async def main_async(args: argparse.Namespace) -> dict[str, Any]:
    out: dict[str, Any] = {"parse_150": bench_parse(args.repeat * 20)}
    with tempfile.TemporaryDirectory(prefix="tracktiond-bench-") as tmp:
        out["library"] = bench_library(args.sheets, Path(tmp) / "sheets")
        out["match_sqlite"] = await bench_match(
            f"sqlite+aiosqlite:///{tmp}/catalog.db", args.recordings, args.repeat
        )
    if not args.no_postgres:
        from tests.support.pgserver import PostgresServer

        server = PostgresServer().start()
        try:
            server.create_database("bench")
            out["match_postgres"] = await bench_match(
                server.dsn("bench"), args.recordings, args.repeat
            )
        finally:
            server.stop()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--recordings", type=int, default=100_000)
    parser.add_argument("--sheets", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=10)
    parser.add_argument("--no-postgres", action="store_true")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    result = asyncio.run(main_async(args))
    if args.json:
        print(json.dumps(result, indent=2))
        return
    p = result["parse_150"]
    print(f"parse 150-track 3 h sheet: best {p['best_ms']} ms, median {p['median_ms']} ms")
    lib = result["library"]
    print(
        f"{lib['sheets']} sheets ({lib['tracks']} tracks) from disk: {lib['seconds']} s, "
        f"{lib['sheets_per_second']} sheets/s"
    )
    for key in ("match_sqlite", "match_postgres"):
        if key in result:
            m = result[key]
            print(
                f"{key}: 30 entries vs {m['recordings']} recordings: cold {m['cold_ms']} ms, "
                f"warm median {m['warm_median_ms']} ms, {m['matched']} matched "
                f"(fill {m['fill_seconds']} s)"
            )


if __name__ == "__main__":
    main()
