"""`tracktiond tracklist …`: import, show, write as a cue sheet, export for DJ software.

``--json`` output gives times in seconds and, for each matched entry, the path of the library
file it is; docs/tracklists.md describes the document.
"""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Awaitable, Callable
from functools import partial
from pathlib import Path
from typing import TypeVar

import anyio
import click

from tracktiond.catalog.sources import SidecarSeen
from tracktiond.catalog.store import Catalog
from tracktiond.catalog.tracklistvalues import StoredTracklist
from tracktiond.cli.common import (
    EXIT_FAILURE,
    config_option,
    handled,
    json_option,
    load_command_config,
)
from tracktiond.config import Config
from tracktiond.errors import FileJobError, TracktiondError
from tracktiond.media.sidecar import sidecar_kind
from tracktiond.tracklists.documents import recording_document

T = TypeVar("T")


@click.group("tracklist")
def tracklist() -> None:
    """Tracklists of DJ sets and live recordings: import, show, cue sheets, exports."""


async def _with_catalog(
    config_path: Path | None, body: Callable[[Config, Catalog], Awaitable[T]]
) -> T:
    config = load_command_config(config_path)
    catalog = await Catalog.open(config.database_url)
    try:
        return await body(config, catalog)
    finally:
        await catalog.close()


async def _recording(catalog: Catalog, ref: str) -> tuple[uuid.UUID, str]:
    found = await catalog.resolve_recording(ref)
    if found is None:
        raise TracktiondError(f"{ref}: not a cataloged file or recording (scan it first)")
    return found


def _clock(seconds: float | None) -> str:
    if seconds is None:
        return "   --   "
    s = int(seconds)
    return f"{s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d}"


# ---- import ------------------------------------------------------------------------------


def _absolute(path: str) -> str:
    # Normalised without resolving symlinks: the catalog records paths as the user sees them.
    return os.path.normpath(os.path.abspath(path))


def _sidecars_under(paths: list[str]) -> tuple[list[SidecarSeen], list[str]]:
    from tracktiond.pipeline.walk import observe_sidecar

    found: list[SidecarSeen] = []
    problems: list[str] = []
    for path in paths:
        if os.path.isdir(path):
            for directory, dirs, names in os.walk(path):
                dirs[:] = sorted(d for d in dirs if not d.startswith("."))
                for name in sorted(names):
                    kind = sidecar_kind(name)
                    seen = observe_sidecar(os.path.join(directory, name), kind) if kind else None
                    if seen is not None:
                        found.append(seen)
            continue
        kind = sidecar_kind(path)
        seen = observe_sidecar(path, kind) if kind else None
        if seen is None:
            problems.append(f"{path}: not a .cue, .txt or .tracklist file that can be read")
        else:
            found.append(seen)
    return found, problems


@tracklist.command("import")
@click.argument("paths", nargs=-1, required=True)
@click.option("--to", "to_ref", default=None, help="Attach to this recording (uuid or path).")
@click.option("--encoding", default=None, help="Read the files in this encoding (no detection).")
@config_option
@json_option
@handled
async def tracklist_import(
    paths: tuple[str, ...],
    to_ref: str | None,
    encoding: str | None,
    config_path: Path | None,
    as_json: bool,
) -> int:
    """Read cue sheets and pasted lists now.

    PATHS are sheets or lists next to their audio (or directories holding them): they are read
    as the daemon reads them, and watched from then on. With --to, each PATH (from anywhere)
    becomes a "manual" tracklist of that recording.
    """

    async def body(config: Config, catalog: Catalog) -> int:
        absolute = [_absolute(p) for p in paths]
        if to_ref is not None:
            return await _import_manual(config, catalog, absolute, to_ref, encoding, as_json)
        found, problems = await anyio.to_thread.run_sync(_sidecars_under, absolute)
        await catalog.sync_sidecars([], found)
        for seen in found:
            if encoding is not None:
                await catalog.set_source_encoding(seen.path, encoding)
        from tracktiond.pipeline.tracklisting import read_due_sources

        results = await read_due_sources(catalog, config.tracklists)
        if as_json:
            click.echo(json.dumps({"sources": results, "problems": problems}, indent=2))
        else:
            for p in problems:
                click.echo(p, err=True)
            for r in results:
                detail = r["reason"] or f"{r['entries']} entries, {r['matched']} in your library"
                click.echo(f"{r['path']}: {r['outcome']}: {detail}")
            if not results and not problems:
                click.echo("nothing new to read")
        failed = problems or any(r["outcome"] == "failed" for r in results)
        return EXIT_FAILURE if failed else 0

    return await _with_catalog(config_path, body)


async def _import_manual(
    config: Config,
    catalog: Catalog,
    paths: list[str],
    to_ref: str,
    encoding: str | None,
    as_json: bool,
) -> int:
    from tracktiond.tracklists.match import match_entries
    from tracktiond.tracklists.pasted import parse_pasted
    from tracktiond.tracklists.reading import read_file
    from tracktiond.tracklists.sheets import drafts_from_sheet

    rec_id, rec_path = await _recording(catalog, to_ref)
    duration = await catalog.recording_duration(rec_id)
    out = []
    for path in paths:
        kind = "cue" if path.lower().endswith(".cue") else "text"
        try:
            parsed = await anyio.to_thread.run_sync(
                partial(
                    read_file,
                    path,
                    kind=kind,
                    legacy=config.tracklists.legacy_encoding,
                    override=encoding,
                )
            )
            if parsed.sheet is not None:
                for track in parsed.sheet.tracks:  # given for this recording, whatever FILE says
                    track.indexes = [type(i)(i.number, i.frames, -1) for i in track.indexes]
                draft = drafts_from_sheet(
                    parsed.sheet,
                    source="manual",
                    origin=path,
                    encoding=parsed.encoding,
                    document=parsed.text,
                    warnings=parsed.warnings,
                    durations={-1: duration},
                )[-1]
            else:
                draft = parse_pasted(
                    parsed.text,
                    source="manual",
                    origin=path,
                    encoding=parsed.encoding,
                    duration=duration,
                )
        except FileJobError as exc:
            raise TracktiondError(f"{path}: {exc.reason}") from None
        except ValueError as exc:
            raise TracktiondError(f"{path}: {exc}") from None
        matches = await match_entries(catalog, draft.entries, exclude=rec_id)
        tl_id, version, changed = await catalog.save_tracklist(rec_id, draft, matches)
        out.append(
            {
                "path": path,
                "recording": str(rec_id),
                "tracklist": str(tl_id),
                "version": version,
                "changed": changed,
                "entries": len(draft.entries),
                "matched": sum(1 for m in matches if m.status == "matched"),
            }
        )
    if as_json:
        click.echo(json.dumps({"imported": out}, indent=2))
    else:
        for r in out:
            state = f"version {r['version']}" if r["changed"] else "unchanged"
            click.echo(
                f"{r['path']} → {rec_path}: {state}, {r['entries']} entries, "
                f"{r['matched']} in your library"
            )
    return 0


# ---- show --------------------------------------------------------------------------------


def _print_tracklist(t: StoredTracklist) -> None:
    state = "current" if t.current else f"superseded {t.superseded_at:%Y-%m-%d %H:%M}"
    click.echo(f"{t.source} tracklist v{t.version} ({state}) from {t.origin or 'the catalog'}")
    if t.title or t.performer:
        click.echo(
            f"  {t.performer or ''}{' – ' if t.performer and t.title else ''}{t.title or ''}"
        )
    for w in t.warnings:
        click.echo(f"  warning: {w}")
    for stored in t.entries:
        e, m = stored.entry, stored.match
        name = "ID - ID (unknown)" if e.unknown else " - ".join(p for p in (e.artist, e.title) if p)
        if e.version and e.title and e.version not in e.title:
            name += f" ({e.version})"
        if e.label:
            name += f" [{e.label}]"
        lead = "   w/ " if e.played_with is not None else f"{e.position:4d} "
        click.echo(f"{lead}{_clock(e.start)}  {name}")
        if m.status == "matched":
            click.echo(f"{'':14}→ {stored.path} ({m.score:.2f})")
        elif m.status in ("ambiguous", "possible"):
            for c in m.candidates[:3]:
                click.echo(f"{'':14}? {c.path} ({c.score:.2f}, {m.status})")
        elif m.status == "unmatched":
            click.echo(f"{'':14}✗ not in your library")


@tracklist.command("show")
@click.argument("recording")
@click.option("--history", is_flag=True, help="Every version, not only the current ones.")
@config_option
@json_option
@handled
async def tracklist_show(
    recording: str, history: bool, config_path: Path | None, as_json: bool
) -> int:
    """The tracklists of RECORDING (uuid or path): each entry's time and your file of it."""

    async def body(config: Config, catalog: Catalog) -> int:
        rec_id, path = await _recording(catalog, recording)
        found = await catalog.tracklists_of(rec_id, history=history)
        problems = await catalog.source_problems(recording_id=rec_id)
        if as_json:
            document = recording_document(rec_id, path, found, problems)
            click.echo(json.dumps(document, indent=2, ensure_ascii=False))
            return 0
        click.echo(path)
        for p in problems:
            click.echo(f"  cannot use {p['path']}: {p['error']}")
        if not found:
            click.echo("  no tracklist")
        for t in found:
            _print_tracklist(t)
        return 0

    return await _with_catalog(config_path, body)


# ---- cue ---------------------------------------------------------------------------------


@tracklist.command("cue")
@click.argument("recording")
@click.option(
    "--flavour",
    type=click.Choice(["standard", "cdj", "rekordbox", "kodi"]),
    default="standard",
    show_default=True,
)
@click.option("--write", "write", is_flag=True, help="Write it next to the recording.")
@click.option(
    "--force", is_flag=True, help="With --write: replace a sheet tracktiond did not write."
)
@click.option(
    "--encoding",
    type=click.Choice(["utf-8", "utf-8-bom", "legacy"]),
    default=None,
    help="Default: [tracklists] write_encoding (utf-8, no BOM).",
)
@config_option
@json_option
@handled
async def tracklist_cue(
    recording: str,
    flavour: str,
    write: bool,
    force: bool,
    encoding: str | None,
    config_path: Path | None,
    as_json: bool,
) -> int:
    """RECORDING's tracklist as a cue sheet (printed; --write puts it next to the recording)."""
    from tracktiond.tracklists.cuewrite import build_cue, encode_cue, is_ours
    from tracktiond.tracklists.safefile import write_atomic

    async def body(config: Config, catalog: Catalog) -> int:
        rec_id, path = await _recording(catalog, recording)
        found = await catalog.tracklists_of(rec_id)
        if not found:
            raise TracktiondError(f"{path} has no tracklist")
        chosen = found[0]
        matched = [s.match.recording_id for s in chosen.entries if s.match.recording_id]
        library = await catalog.library_tracks(matched)
        written = build_cue(chosen, path, library, flavour=flavour)
        data = encode_cue(
            written.text,
            encoding or config.tracklists.write_encoding,
            legacy=config.tracklists.legacy_encoding,
        )
        target = None
        if write:
            target = os.path.splitext(path)[0] + ".cue"
            exists = await anyio.to_thread.run_sync(os.path.lexists, target)
            if exists and not force and not await anyio.to_thread.run_sync(is_ours, target):
                raise TracktiondError(
                    f"{target} exists and was not written by tracktiond; --force replaces it"
                )
            await anyio.to_thread.run_sync(partial(write_atomic, target, data, replace=exists))
        if as_json:
            click.echo(
                json.dumps(
                    {
                        "recording": str(rec_id),
                        "tracklist": str(chosen.id),
                        "flavour": flavour,
                        "written": target,
                        "warnings": list(written.warnings),
                        "tracks": len(written.sheet.tracks),
                        "cue": written.text if target is None else None,
                    },
                    indent=2,
                    ensure_ascii=False,
                )
            )
        else:
            for w in written.warnings:
                click.echo(f"warning: {w}", err=True)
            if target is None:
                click.echo(written.text, nl=False)
            else:
                click.echo(f"wrote {target} ({len(written.sheet.tracks)} tracks)")
        return 0

    return await _with_catalog(config_path, body)


# ---- export ------------------------------------------------------------------------------


@tracklist.command("export")
@click.option("--rekordbox", "rekordbox_file", type=click.Path(dir_okay=False), default=None)
@click.option("--traktor", "traktor_file", type=click.Path(dir_okay=False), default=None)
@click.option("--m3u8", "m3u8_dir", type=click.Path(file_okay=False), default=None)
@click.option("--library", "whole_library", is_flag=True, help="Every recording, not only sets.")
@click.option("--force", is_flag=True, help="Replace files that exist.")
@config_option
@json_option
@handled
async def tracklist_export(
    rekordbox_file: str | None,
    traktor_file: str | None,
    m3u8_dir: str | None,
    whole_library: bool,
    force: bool,
    config_path: Path | None,
    as_json: bool,
) -> int:
    """Export sets, their tracklists and the tracks they play for DJ software and players:
    rekordbox XML (--rekordbox FILE), Traktor NML (--traktor FILE), M3U8 (--m3u8 DIR)."""
    from tracktiond.tracklists.exportdata import gather
    from tracktiond.tracklists.playlists import m3u8_text, playlist_names
    from tracktiond.tracklists.rekordbox import rekordbox_text
    from tracktiond.tracklists.safefile import write_atomic
    from tracktiond.tracklists.traktor import traktor_text

    if not (rekordbox_file or traktor_file or m3u8_dir):
        raise click.UsageError("give --rekordbox FILE, --traktor FILE and/or --m3u8 DIR")

    async def body(config: Config, catalog: Catalog) -> int:
        export = await gather(catalog, whole_library=whole_library)
        written: list[str] = []

        def put(path: str, text: str) -> None:
            write_atomic(path, text.encode("utf-8"), replace=force)
            written.append(path)

        if rekordbox_file:
            await anyio.to_thread.run_sync(put, rekordbox_file, rekordbox_text(export))
        if traktor_file:
            await anyio.to_thread.run_sync(put, traktor_file, traktor_text(export))
        if m3u8_dir:
            await anyio.to_thread.run_sync(lambda: os.makedirs(m3u8_dir, exist_ok=True))
            for s, name in zip(export.sets, playlist_names(export), strict=True):
                text = m3u8_text(export, s)
                await anyio.to_thread.run_sync(put, os.path.join(m3u8_dir, name), text)
        summary = {"tracks": len(export.tracks), "sets": len(export.sets), "written": written}
        if as_json:
            click.echo(json.dumps(summary, indent=2))
        else:
            click.echo(f"{len(export.sets)} sets, {len(export.tracks)} tracks")
            for path in written:
                click.echo(f"wrote {path}")
        return 0

    return await _with_catalog(config_path, body)
