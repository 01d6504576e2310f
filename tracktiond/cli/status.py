"""`tracktiond status` and `tracktiond duplicates`: what the catalog holds, for people and scripts.

`status` asks the running daemon (its /status) when one answers on [http] listen, else reads the
catalog itself; either way it prints one typed document (tracktiond.service.status), as JSON or
as the lines of ``status_lines``.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import anyio
import click

from tracktiond.catalog.store import Catalog, DuplicateGroup
from tracktiond.cli.common import EXIT_OK, config_option, handled, json_option, load_command_config
from tracktiond.config import Config, redact_url
from tracktiond.errors import TracktiondError
from tracktiond.service.status import StatusDocument, StatusSchemaError, catalog_status


def _status_url(config: Config) -> str:
    host = config.http.host
    return f"http://{'[' + host + ']' if ':' in host else host}:{config.http.port}/status"


def _fetch_daemon_status(url: str) -> bytes | None:
    """The body of the running daemon's /status, or None when no daemon answers."""
    import urllib.request

    # The daemon listens on a local address: never through a proxy from the environment.
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(url, timeout=2) as resp:
            body: bytes = resp.read()
            return body
    except OSError:  # refused, timed out, an HTTP error status: no daemon of ours answers
        return None


@click.command("status")
@config_option
@json_option
@click.option(
    "--failures",
    default=10,
    show_default=True,
    help="How many recent failures to list (when read from the catalog).",
)
@handled
async def status(config_path: Path | None, as_json: bool, failures: int) -> int:
    """What the catalog holds and what the daemon is doing: files by state, duplicates, queues,
    recent failures.

    Asks the running daemon when one answers on [http] listen, else reads the catalog; the
    same document either way (docs/status.md)."""
    config = load_command_config(config_path)
    url = _status_url(config)
    body = await anyio.to_thread.run_sync(_fetch_daemon_status, url)
    doc: StatusDocument | None = None
    other_daemon: str | None = None
    if body is not None:
        try:
            doc = StatusDocument.from_json(body)
        except StatusSchemaError as exc:
            raise TracktiondError(
                f"the daemon at {url} answered with a status document this tracktiond cannot "
                f"read: {exc}"
            ) from None
        ours = redact_url(config.database_url)
        if doc.catalog.url != ours:
            # Two configurations sharing a port: the answer is another daemon's, about
            # another catalog. Say so, and read this configuration's catalog instead.
            other_daemon = (
                f"the daemon answering on {config.http.listen} (pid {doc.pid}) uses the catalog "
                f"{doc.catalog.url}, not {ours}"
            )
            click.echo(f"tracktiond: {other_daemon}; reading {ours} directly", err=True)
            doc = None
    if doc is None:
        catalog = await Catalog.open(config.database_url)
        try:
            doc = await catalog_status(config, catalog, failures=failures)
        finally:
            await catalog.close()
        if other_daemon is not None:
            doc = dataclasses.replace(
                doc, not_ready_reason=f"no daemon of this catalog: {other_daemon}"
            )
    if as_json:
        click.echo(doc.to_json())
    else:
        for line in status_lines(doc):
            click.echo(line)
    return EXIT_OK


def status_lines(doc: StatusDocument) -> list[str]:
    """The human-readable status, the same lines whether a daemon answered or not."""
    if doc.source == "daemon":
        state = "ready" if doc.ready else f"not ready ({doc.not_ready_reason})"
        out = [f"tracktiond {doc.version} daemon (pid {doc.pid}): {state}"]
    else:
        out = [f"tracktiond {doc.version}: {doc.not_ready_reason}; read from the catalog"]
    catalog = "up" if doc.catalog.up else f"down ({doc.catalog.reason})"
    out.append(f"catalog: {doc.catalog.url} ({catalog})")
    reload = doc.config.last_reload
    if reload.ok is False:
        out.append(f"config: the last reload was rejected: {reload.error}")
    for root in doc.roots:
        mode = root.mode or "not watched"
        out.append(f"  root {root.path}: {mode}" + (f" ({root.reason})" if root.reason else ""))
    out.append("files: " + ", ".join(f"{n} {s}" for s, n in doc.files.items()))
    out.append(f"recordings: {doc.recordings}")
    dup = doc.duplicates
    if dup.recordings:
        paths = f"{dup.files} paths" if dup.files is not None else "several paths each"
        listed = "`tracktiond duplicates` lists them"
        out.append(f"duplicates: {dup.recordings} recordings at {paths} ({listed})")
    else:
        out.append("duplicates: none")
    queue = doc.queue
    out.append(f"queue: {queue.pending} pending, oldest {queue.oldest_age_seconds} s")
    if doc.reconciling:
        out.append(f"reconciling ({doc.reconciling})")
    w = doc.workers
    if w.count is not None:
        out.append(f"workers: {w.busy} busy of {w.count}, {w.processed} files processed")
    a = doc.analysis
    if a.enabled:
        line = f"analysis: {a.analysed} analysed, {a.pending} pending, {a.failed} failed"
        if a.workers is not None:
            line += f" ({a.busy} of {a.workers} workers busy)"
        out.append(line)
    else:
        out.append("analysis: disabled")
    t = doc.tagging
    if t.enabled:
        counts = ", ".join(f"{n} {s}" for s, n in sorted((t.files or {}).items())) or "nothing"
        out.append(f"tag write-back: {counts}")
    g = doc.graph
    if g.enabled:
        sync = "" if g.up is None else ("up, " if g.up else f"down ({g.last_error}), ")
        out.append(f"graph {g.uri}: {sync}{g.outbox.pending} changes to sync")
    if doc.recent_failures:
        out.append("recent failures:")
        for f in doc.recent_failures:
            stage = "" if f.stage == "ingest" else f"{f.stage}: "
            out.append(f"  {f.path}: {stage}{f.reason} [{f.class_}]")
    if t.not_written:
        out.append("tags not written:")
        for p in t.not_written:
            out.append(f"  {p.path}: {p.reason} [{p.status}]")
    return out


@click.command("duplicates")
@config_option
@json_option
@click.option("--limit", default=100, show_default=True, help="At most this many groups.")
@handled
async def duplicates(config_path: Path | None, as_json: bool, limit: int) -> int:
    """Recordings present at more than one path (identical content)."""
    config = load_command_config(config_path)
    catalog = await Catalog.open(config.database_url)
    try:
        groups = await catalog.duplicates(limit=limit)
    finally:
        await catalog.close()
    if as_json:
        click.echo(json.dumps([_group_dict(g) for g in groups], indent=2))
        return EXIT_OK
    if not groups:
        click.echo("no duplicates")
    for g in groups:
        click.echo(f"{g.recording_id}  {g.size} bytes  sha256 {g.sha256[:16]}…")
        for path in g.paths:
            click.echo(f"    {path}")
    return EXIT_OK


def _group_dict(g: DuplicateGroup) -> dict[str, Any]:
    return {
        "recording_id": str(g.recording_id),
        "sha256": g.sha256,
        "size": g.size,
        "paths": g.paths,
    }
