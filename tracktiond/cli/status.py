"""`tracktiond status` and `tracktiond duplicates`: what the catalog holds, for people and scripts.

`status` asks the running daemon (its /status) when one answers on [http] listen, else reads the
catalog itself.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import anyio
import click

from tracktiond import __version__
from tracktiond.catalog.store import Catalog, CatalogStatus, DuplicateGroup
from tracktiond.cli.common import EXIT_OK, config_option, handled, json_option, load_command_config
from tracktiond.config import Config


def _daemon_status(config: Config) -> dict[str, Any] | None:
    """The running daemon's /status, or None when no daemon answers on [http] listen."""
    import urllib.error
    import urllib.request

    host = config.http.host
    url = f"http://{'[' + host + ']' if ':' in host else host}:{config.http.port}/status"
    try:
        with urllib.request.urlopen(url, timeout=2) as resp:
            data: dict[str, Any] = json.loads(resp.read())
            return data
    except (OSError, ValueError):
        return None


@click.command("status")
@config_option
@json_option
@click.option("--failures", default=10, show_default=True, help="How many recent failures to list.")
@handled
async def status(config_path: Path | None, as_json: bool, failures: int) -> int:
    """What the catalog holds: files by state, duplicates, recent failures.

    Asks the running daemon when one answers on [http] listen, else reads the catalog."""
    config = load_command_config(config_path)
    live = await anyio.to_thread.run_sync(_daemon_status, config)
    if live is not None:
        if as_json:
            click.echo(json.dumps(live, indent=2))
            return EXIT_OK
        _print_daemon_status(live)
        return EXIT_OK
    from tracktiond.pipeline.analyse import settings_from_config

    catalog = await Catalog.open(config.database_url)
    try:
        st = await catalog.status(failures=failures)
        analysis = await catalog.analysis_stats(settings_from_config(config.analysis).fingerprint())
        analysis_failures = await catalog.analysis_failures(failures)
    finally:
        await catalog.close()
    data = _status_dict(st)
    data["analysis"] = analysis
    data["recent_analysis_failures"] = [
        {"path": f.path, "class": f.error_class, "reason": f.reason, "at": f.at.isoformat()}
        for f in analysis_failures
    ]
    if as_json:
        click.echo(json.dumps(data, indent=2))
        return EXIT_OK
    by_state = ", ".join(f"{n} {state}" for state, n in data["files"].items())
    click.echo(f"tracktiond {__version__}")
    click.echo(f"files: {by_state}")
    click.echo(f"recordings: {data['recordings']}")
    click.echo(
        f"duplicates: {data['duplicates']['recordings']} recordings at "
        f"{data['duplicates']['files']} paths (`tracktiond duplicates` lists them)"
    )
    a = data["analysis"]
    click.echo(f"analysis: {a['analysed']} analysed, {a['pending']} pending, {a['failed']} failed")
    if data["recent_failures"]:
        click.echo("recent failures:")
        for f in data["recent_failures"]:
            click.echo(f"  {f['path']}: {f['reason']} [{f['class']}]")
    for f in data["recent_analysis_failures"]:
        click.echo(f"  {f['path']}: analysis: {f['reason']} [{f['class']}]")
    return EXIT_OK


def _print_daemon_status(data: dict[str, Any]) -> None:
    state = "ready" if data["ready"] else f"not ready ({data['not_ready_reason']})"
    click.echo(f"tracktiond {data['version']} daemon (pid {data['pid']}): {state}")
    for root in data["roots"]:
        reason = f" ({root['reason']})" if root.get("reason") else ""
        click.echo(f"  root {root['path']}: {root['mode']}{reason}")
    click.echo("files: " + ", ".join(f"{n} {s}" for s, n in data["files"].items()))
    click.echo(f"recordings: {data['recordings']}")
    queue = data["queue"]
    click.echo(f"queue: {queue['pending']} pending, oldest {queue['oldest_age_seconds']} s")
    workers = data["workers"]
    click.echo(f"workers: {workers['busy']} busy of {workers['count']}")
    a = data.get("analysis", {})
    if a.get("enabled"):
        click.echo(
            f"analysis: {a['analysed']} analysed, {a['pending']} pending, {a['failed']} failed"
            f" ({a['busy']} of {a['workers']} workers busy)"
        )
    graph = data.get("graph", {})
    if graph.get("enabled"):
        state = "up" if graph["up"] else f"down ({graph['last_error']})"
        click.echo(f"graph: {state}, {graph['outbox']['pending']} changes to sync")
    if data["recent_failures"]:
        click.echo("recent failures:")
        for f in data["recent_failures"]:
            click.echo(f"  {f['path']}: {f['reason']} [{f['class']}]")


def _status_dict(st: CatalogStatus) -> dict[str, Any]:
    return {
        "version": __version__,
        "files": st.files_by_state,
        "recordings": st.recordings,
        "duplicates": {"recordings": st.duplicate_recordings, "files": st.duplicate_files},
        "recent_failures": [
            {"path": f.path, "class": f.error_class, "reason": f.reason, "at": f.at.isoformat()}
            for f in st.recent_failures
        ],
    }


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
