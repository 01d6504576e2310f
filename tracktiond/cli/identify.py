"""`tracktiond identify SET...`: which of the library's tracks a recording plays, and when.

One-shot, against the catalog's fingerprint index (built by the daemon's fingerprint stage,
docs/identify.md). The set is fingerprinted in a crash-isolated worker, as in the daemon,
whether or not it is cataloged, and nothing is stored: the daemon keeps each cataloged set's
"auto" tracklist itself. ``--json`` gives one document per SET, times in seconds.
"""

from __future__ import annotations

import base64
import json
import os
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from tracktiond.catalog.store import Catalog
from tracktiond.cli.common import (
    EXIT_FAILURE,
    EXIT_OK,
    config_option,
    handled,
    json_option,
    load_command_config,
)
from tracktiond.cli.progress import IdentifyProgress
from tracktiond.config import Config
from tracktiond.errors import InputNotFound, TracktiondError

if TYPE_CHECKING:
    from tracktiond.analysis.pool import AnalysisPool

EMPTY_INDEX = (
    "the fingerprint index is empty: set [fingerprint] enabled = true and let the daemon "
    "(tracktiond run) index the library first (docs/identify.md)"
)


@click.command("identify")
@click.argument("sets", nargs=-1, required=True, type=click.Path(path_type=Path))
@config_option
@json_option
@handled
async def identify(sets: tuple[Path, ...], config_path: Path | None, as_json: bool) -> int:
    """Name the library's tracks that SETS play, with times, speed and pitch.

    Each SET is fingerprinted in a worker process and matched against the index the daemon
    builds with [fingerprint] enabled. Stretches no indexed track explains are unknown ("ID").
    Nothing is stored: the daemon keeps cataloged sets' "auto" tracklists itself."""
    from tracktiond.analysis.pool import AnalysisPool

    config = load_command_config(config_path)
    paths = _recordings_named(sets)
    catalog = await Catalog.open(config.database_url)
    documents: list[dict[str, Any]] = []
    try:
        stats = await catalog.index_stats()
        if stats.tracks == 0:
            raise TracktiondError(EMPTY_INDEX)
        bar = IdentifyProgress(enabled=not as_json and sys.stderr.isatty())
        async with AnalysisPool(
            1,
            memory_limit_bytes=config.analysis.memory_limit_mb * 1024 * 1024,
            timeout_base=config.analysis.timeout_base,
            timeout_factor=config.analysis.timeout_factor,
        ) as pool:
            with bar:
                for path in paths:
                    documents.append(await _identify_one(catalog, config, pool, path, bar))
    finally:
        await catalog.close()
    if as_json:
        click.echo(json.dumps(documents, indent=2))
    else:
        for doc in documents:
            _print_document(doc)
    return EXIT_FAILURE if all(not d["ok"] for d in documents) else EXIT_OK


def _recordings_named(sets: tuple[Path, ...]) -> list[str]:
    paths = [os.path.normpath(os.path.abspath(p)) for p in sets]
    for path in paths:
        if not os.path.exists(path):
            raise InputNotFound(f"{path}: no such file")
        if os.path.isdir(path):
            raise TracktiondError(f"{path}: a directory; name the recordings to identify")
    return paths


async def _identify_one(
    catalog: Catalog,
    config: Config,
    pool: AnalysisPool,
    path: str,
    bar: IdentifyProgress,
) -> dict[str, Any]:
    from tracktiond.analysis.pool import AnalysisFailed
    from tracktiond.fingerprint.identify import Fingerprint
    from tracktiond.fingerprint.postings import decode_peaks
    from tracktiond.pipeline.identifying import fingerprint_settings, identify_peaks, tracklist_of

    settings = fingerprint_settings(config)
    started = time.monotonic()
    done = bar.fingerprinting(os.path.basename(path))
    try:
        made = await pool.fingerprint(path)
    except AnalysisFailed as exc:
        return {"path": path, "ok": False, "error": exc.reason}
    finally:
        done()
    frames = int(made["frames"])
    fp = Fingerprint(decode_peaks(base64.b64decode(str(made["peaks"]))), frames)
    seconds = fp.seconds(settings)
    segments, snapshot = await identify_peaks(catalog, fp, settings, bar.matching(seconds))
    draft, matches, library = await tracklist_of(catalog, segments, snapshot, frames, settings)
    entries: list[dict[str, Any]] = []
    for entry, match in zip(draft.entries, matches, strict=True):
        lib = library.get(match.recording_id) if match.recording_id else None
        entries.append(
            {
                "position": entry.position,
                "start": entry.start,
                "end": entry.end,
                "unknown": entry.unknown,
                "artist": entry.artist,
                "title": entry.title,
                "confidence": entry.confidence,
                "recording_id": str(match.recording_id) if match.recording_id else None,
                "library_path": lib.path if lib else None,
                **entry.extra,
            }
        )
    return {
        "path": path,
        "ok": True,
        "seconds": round(seconds, 2),
        "elapsed_seconds": round(time.monotonic() - started, 2),
        "index": {"tracks": len(snapshot.frames), "generation": snapshot.generation},
        "found": sum(1 for e in entries if not e["unknown"]),
        "entries": entries,
    }


def _clock(seconds: float | None) -> str:
    s = int(seconds or 0)
    return f"{s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d}"


def _print_document(doc: dict[str, Any]) -> None:
    if not doc["ok"]:
        click.echo(f"{doc['path']}: cannot identify: {doc['error']}")
        return
    tracks = doc["index"]["tracks"]
    click.echo(
        f"{doc['path']}: {doc['found']} of the library's tracks found "
        f"({_clock(doc['seconds'])} against {tracks} indexed tracks, {doc['elapsed_seconds']} s)"
    )
    for e in doc["entries"]:
        span = f"{_clock(e['start'])}-{_clock(e['end'])}"
        if e["unknown"]:
            click.echo(f"  {span}  ID (no indexed track)")
            continue
        name = f"{e['artist'] or '?'} - {e['title'] or '?'}"
        click.echo(
            f"  {span}  {name}  speed {e['speed']:.3f}  pitch {e['pitch_semitones']:+.2f} st  "
            f"confidence {e['confidence']:.2f}"
        )
