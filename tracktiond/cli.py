"""The command line: the only place that decides exit codes.

Exit codes (sysexits-style, so systemd units can tell them apart):
0 success; 1 runtime failure; 2 usage error (click); 69 catalog unreachable (EX_UNAVAILABLE);
78 configuration error (EX_CONFIG: systemd should not restart into the same bad config).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import sys
from collections.abc import Awaitable, Callable
from datetime import timedelta
from functools import wraps
from pathlib import Path
from typing import Any, TypeVar

import anyio
import click

from tracktiond import __version__
from tracktiond.catalog.store import Catalog, CatalogStatus, DuplicateGroup, Outcome
from tracktiond.config import Config, load_config
from tracktiond.errors import CatalogUnavailable, ConfigError, TracktiondError
from tracktiond.logs import setup_logging
from tracktiond.progress import ScanProgressBar
from tracktiond.scanner import Scanner, ScanSummary, absolute_path

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_UNAVAILABLE = 69
EXIT_CONFIG = 78

log = logging.getLogger("tracktiond")

F = TypeVar("F", bound=Callable[..., Any])


def config_option(func: F) -> F:
    return click.option(
        "--config",
        "config_path",
        type=click.Path(path_type=Path, dir_okay=False),
        default=None,
        help="Config file (default: $TRACKTIOND_CONFIG, then the usual places).",
    )(func)


def json_option(func: F) -> F:
    return click.option("--json", "as_json", is_flag=True, help="Machine-readable JSON output.")(
        func
    )


def _fail(code: int, message: str) -> None:
    click.echo(f"tracktiond: {message}", err=True)
    sys.exit(code)


def handled(func: Callable[..., Awaitable[int | None]]) -> Callable[..., None]:
    """Run an async command body, turning our errors into messages and exit codes."""

    @wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> None:
        try:
            code = anyio.run(lambda: func(*args, **kwargs))
        except ConfigError as exc:
            _fail(EXIT_CONFIG, str(exc))
        except CatalogUnavailable as exc:
            _fail(EXIT_UNAVAILABLE, str(exc))
        except TracktiondError as exc:
            _fail(EXIT_FAILURE, str(exc))
        except KeyboardInterrupt:
            _fail(130, "interrupted")
        sys.exit(code or EXIT_OK)

    return wrapper


def _load(config_path: Path | None) -> Config:
    config = load_config(config_path)
    setup_logging(config.daemon.log_level if config.daemon.log_level != "info" else "warning")
    return config


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="tracktiond")
def main() -> None:
    """tracktiond keeps a catalog of a large music library true to the disk."""


@main.command("check-config")
@config_option
@json_option
def check_config(config_path: Path | None, as_json: bool) -> None:
    """Validate the configuration and print it as it takes effect (secrets redacted)."""
    try:
        config = load_config(config_path)
    except ConfigError as exc:
        _fail(EXIT_CONFIG, str(exc))
        return
    data = {"source": str(config.source) if config.source else None, **config.redacted()}
    if as_json:
        click.echo(json.dumps(data, indent=2))
        return
    click.echo(f"# configuration from {data['source'] or 'built-in defaults'}: valid")
    for section, values in config.redacted().items():
        click.echo(f"[{section}]")
        for key, value in values.items():
            click.echo(f"{key} = {json.dumps(value)}")
        click.echo()


@main.group("db")
def db() -> None:
    """Catalog database maintenance."""


@db.command("upgrade")
@config_option
@handled
async def db_upgrade(config_path: Path | None) -> int:
    """Create or migrate the catalog schema to the current version."""
    config = _load(config_path)
    catalog = await Catalog.open(config.database_url)
    try:
        revision = await catalog.schema_revision()
    finally:
        await catalog.close()
    click.echo(f"catalog schema at revision {revision}")
    return EXIT_OK


@main.command("scan")
@click.argument("paths", nargs=-1, type=click.Path(path_type=Path))
@config_option
@json_option
@click.option("--no-progress", is_flag=True, help="Do not draw a progress bar.")
@handled
async def scan(
    paths: tuple[Path, ...], config_path: Path | None, as_json: bool, no_progress: bool
) -> int:
    """Catalog every audio file under PATHS (default: the configured roots) and exit."""
    config = _load(config_path)
    targets = [str(p) for p in paths] or [str(p) for p in config.library.roots]
    if not targets:
        raise ConfigError(
            f"{config.source or 'built-in defaults'}: [library] roots is empty and no PATH was "
            "given: nothing to scan"
        )
    catalog = await Catalog.open(config.database_url)
    show_bar = not as_json and not no_progress and sys.stderr.isatty()
    try:
        with ScanProgressBar(enabled=show_bar) as bar:
            days = config.library.purge_missing_after_days
            scanner = Scanner(
                catalog,
                concurrency=config.scan.concurrency,
                max_attempts=config.scan.max_attempts,
                follow_symlinks=config.library.follow_symlinks,
                purge_missing_after=timedelta(days=days) if days else None,
                progress=bar,
            )
            summary = await scanner.scan(targets)
    finally:
        await catalog.close()
    _print_summary(summary, as_json)
    return EXIT_OK


def _print_summary(summary: ScanSummary, as_json: bool) -> None:
    data = summary.as_dict()
    if as_json:
        click.echo(json.dumps(data, indent=2))
        return
    counts = ", ".join(
        f"{data[k]} {k}"
        for k in ("new", "changed", "moved", "duplicate", "missing", "unchanged", "failed")
    )
    click.echo(
        f"scanned {data['files_seen']} files in {data['elapsed_seconds']:.1f} s "
        f"({data['files_per_second']:.0f} files/s, "
        f"{data['megabytes_per_second']:.1f} MB/s): {counts}"
    )
    for warning in summary.warnings:
        click.echo(f"warning: {warning}", err=True)
    if data["failed"]:
        click.echo("see `tracktiond status` for the reasons files could not be cataloged")


@main.command("run")
@config_option
def run(config_path: Path | None) -> None:
    """Run the daemon: watch the roots, keep the catalog true, serve health and metrics."""
    from tracktiond.daemon import run_daemon
    from tracktiond.logs import setup_logging as _setup

    try:
        config = load_config(config_path.absolute() if config_path else None)
    except ConfigError as exc:
        _fail(EXIT_CONFIG, str(exc))
        return
    _setup(config.daemon.log_level)
    if not config.library.roots:
        log.warning("[library] roots is empty: nothing to watch until a reload adds roots")
    try:
        code = run_daemon(config)
    except TracktiondError as exc:
        log.error("%s", exc)
        _fail(EXIT_FAILURE, str(exc))
        return
    except KeyboardInterrupt:
        code = EXIT_OK
    sys.exit(code)


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


@main.command("status")
@config_option
@json_option
@click.option("--failures", default=10, show_default=True, help="How many recent failures to list.")
@handled
async def status(config_path: Path | None, as_json: bool, failures: int) -> int:
    """What the catalog holds: files by state, duplicates, recent failures.

    Asks the running daemon when one answers on [http] listen, else reads the catalog."""
    config = _load(config_path)
    live = await anyio.to_thread.run_sync(_daemon_status, config)
    if live is not None:
        if as_json:
            click.echo(json.dumps(live, indent=2))
            return EXIT_OK
        _print_daemon_status(live)
        return EXIT_OK
    from tracktiond.analysis_stage import settings_from_config

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


@main.command("duplicates")
@config_option
@json_option
@click.option("--limit", default=100, show_default=True, help="At most this many groups.")
@handled
async def duplicates(config_path: Path | None, as_json: bool, limit: int) -> int:
    """Recordings present at more than one path (identical content)."""
    config = _load(config_path)
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


@main.command("analyze")
@click.argument("files", nargs=-1, required=True, type=click.Path(path_type=Path))
@config_option
@json_option
@handled
async def analyze(files: tuple[Path, ...], config_path: Path | None, as_json: bool) -> int:
    """Analyse FILES (tempo, key, loudness, danceability, mood) and print the results.

    The catalog is not touched. Analysis runs in crash-isolated worker processes, as in the
    daemon, with the [analysis] settings of the configuration."""
    from tracktiond.analysis.pool import AnalysisFailed, AnalysisPool
    from tracktiond.analysis_stage import settings_from_config

    config = _load(config_path)
    settings = settings_from_config(config.analysis)
    results: list[dict[str, Any]] = []
    failed = 0
    async with AnalysisPool(
        min(len(files), config.analysis.workers or max(1, (os.cpu_count() or 2) // 2)),
        memory_limit_bytes=config.analysis.memory_limit_mb * 1024 * 1024,
        timeout_base=config.analysis.timeout_base,
        timeout_factor=config.analysis.timeout_factor,
    ) as pool:

        async def one(path: Path, slot: int) -> None:
            nonlocal failed
            try:
                result = await pool.analyze(str(path), settings)
                results[slot] = {"path": str(path), "ok": True, **result.to_dict()}
                results[slot]["summary"] = result.to_metadata()
            except AnalysisFailed as exc:
                failed += 1
                results[slot] = {
                    "path": str(path),
                    "ok": False,
                    "failure_class": exc.failure_class.value,
                    "error": exc.reason,
                }
            bar.processed(Outcome.NEW, 0)

        results = [{} for _ in files]
        bar = ScanProgressBar(enabled=not as_json and sys.stderr.isatty())
        with bar:
            bar.queued(len(files))
            async with anyio.create_task_group() as tg:
                for slot, path in enumerate(files):
                    tg.start_soon(one, path, slot)
    if as_json:
        click.echo(json.dumps(results, indent=2))
    else:
        for r in results:
            if not r["ok"]:
                click.echo(f"{r['path']}: cannot analyse: {r['error']}")
                continue
            click.echo(r["path"])
            for key, value in r["summary"].items():
                if len(value) <= 120:
                    click.echo(f"  {key.removeprefix('analysis.')}: {value}")
    return EXIT_FAILURE if failed == len(files) else EXIT_OK


@main.command("tag")
@click.argument("paths", nargs=-1, required=True, type=click.Path(path_type=Path))
@config_option
@json_option
@click.option(
    "--dry-run", is_flag=True, help="Print what would change, file by file; write nothing."
)
@click.option("--overwrite", is_flag=True, default=None, help="Replace values the files hold.")
@handled
async def tag(
    paths: tuple[Path, ...],
    config_path: Path | None,
    as_json: bool,
    dry_run: bool,
    overwrite: bool | None,
) -> int:
    """Write analysis results (BPM, key, ReplayGain) into the tags of cataloged files.

    Directories are searched for audio files. Files the daemon has not analysed yet are
    skipped with a reason. The catalog is updated after each write."""
    from tracktiond.catalog.store import TagJob
    from tracktiond.tagging_stage import (
        options_fingerprint,
        options_from_config,
        values_from_analysis,
        write_and_record,
    )
    from tracktiond.tagwrite import plan_tag_write

    config = _load(config_path)
    options = options_from_config(config.tagging)
    if overwrite:
        options = dataclasses.replace(options, overwrite=True)
    targets: list[str] = []
    for p in paths:
        targets += await anyio.to_thread.run_sync(_audio_files_under, absolute_path(str(p)))
    catalog = await Catalog.open(config.database_url)
    reports: list[dict[str, Any]] = []
    try:
        for path in targets:
            found = await catalog.analysis_for_path(path)
            if found is None:
                reports.append({"path": path, "status": "skipped", "reason": "not analysed yet"})
                continue
            file_id, analysis, fingerprint = found
            job = TagJob(file_id, path, analysis, f"{fingerprint}:{options_fingerprint(options)}")
            if dry_run:
                values = values_from_analysis(analysis, with_energy=bool(options.energy_field))
                result = await anyio.to_thread.run_sync(plan_tag_write, path, values, options)
                status = "would write" if result.changes else "unchanged"
                if result.error or result.skipped_reason:
                    status = "failed" if result.error else "skipped"
            else:
                status, result = await write_and_record(catalog, job, options, None)
            reports.append(
                {
                    "path": path,
                    "status": status,
                    "reason": result.error or result.skipped_reason,
                    "changes": [
                        {"field": c.field, "native": c.native, "old": c.old, "new": c.new}
                        for c in result.changes
                    ],
                    "kept": [{"field": c.field, "value": c.old} for c in result.kept],
                    "summary": result.summary(),
                }
            )
    finally:
        await catalog.close()
    if as_json:
        click.echo(json.dumps(reports, indent=2))
    else:
        for r in reports:
            if "summary" in r:
                click.echo(f"[{r['status']}] {r['summary']}")
            else:
                click.echo(f"[{r['status']}] {r['path']}: {r['reason']}")
    failed = sum(1 for r in reports if r["status"] == "failed")
    return EXIT_FAILURE if failed and failed == len(reports) else EXIT_OK


def _audio_files_under(path: str) -> list[str]:
    from tracktiond.formats import is_candidate

    if not os.path.isdir(path):
        return [path]
    found: list[str] = []
    for dirpath, _dirs, names in os.walk(path):
        found += [os.path.join(dirpath, n) for n in sorted(names) if is_candidate(n)]
    return found


@main.group("graph")
def graph() -> None:
    """The Neo4j mirror of the catalog: rebuild it, or ask it questions."""


async def _with_graph(config_path: Path | None, body: Callable[[Any, Any], Awaitable[Any]]) -> Any:
    from tracktiond.graph import GraphClient, GraphSync, GraphUnavailable

    config = _load(config_path)
    if not config.graph.enabled:
        raise ConfigError(
            f"{config.source or 'built-in defaults'}: [graph] uri is empty: no graph configured"
        )
    client = GraphClient.from_config(config.graph)
    catalog = await Catalog.open(config.database_url)
    try:
        return await body(client, GraphSync(catalog, client))
    except GraphUnavailable as exc:
        raise TracktiondError(f"graph {config.graph.uri} unreachable: {exc}") from None
    finally:
        await client.close()
        await catalog.close()


def _echo_json_or(data: Any, as_json: bool, human: Callable[[Any], None]) -> None:
    if as_json:
        click.echo(json.dumps(data, indent=2, default=str))
    else:
        human(data)


@graph.command("rebuild")
@config_option
@json_option
@handled
async def graph_rebuild(config_path: Path | None, as_json: bool) -> int:
    """Recreate the whole graph from the catalog."""
    count = await _with_graph(config_path, lambda _client, sync: sync.rebuild())
    _echo_json_or(
        {"recordings": count},
        as_json,
        lambda d: click.echo(f"graph rebuilt: {d['recordings']} recordings"),
    )
    return EXIT_OK


def _graph_query_command(name: str, help_text: str, needs_recording: bool) -> None:
    async def run_query(client: Any, recording: str | None, options: dict[str, Any]) -> Any:
        from tracktiond.graph import queries

        if name == "suggest":
            return await queries.mix_suggestions(
                client, recording or "", bpm_tolerance=options["tolerance"], limit=options["limit"]
            )
        if name == "shared":
            return await queries.shared_tracks(client, recording or "", limit=options["limit"])
        if name == "neighbours":
            return await queries.neighbours(
                client, recording or "", by=options["by"], limit=options["limit"]
            )
        return await queries.duplicates(client, limit=options["limit"])

    def human(data: Any) -> None:
        rows = data.get("suggestions") or data.get("recordings") or data.get("duplicates") or []
        if not rows:
            click.echo("nothing found")
        for row in rows:
            parts = [str(row.get("file_path") or row.get("sha256") or row)]
            for key in ("bpm", "camelot", "key_relation", "tempo", "shared", "copies"):
                if row.get(key) not in (None, ""):
                    parts.append(f"{key}={row[key]}")
            click.echo("  ".join(parts))

    @click.option("--limit", default=20, show_default=True)
    @config_option
    @json_option
    @handled
    async def command(config_path: Path | None, as_json: bool, limit: int, **kw: Any) -> int:
        options = {"limit": limit, **kw}
        recording = kw.pop("recording", None)
        found = await _with_graph(
            config_path, lambda client, _sync: run_query(client, recording, options)
        )
        _echo_json_or(found, as_json, human)
        return EXIT_OK

    if name == "suggest":
        command = click.option(
            "--tolerance", default=0.06, show_default=True, help="BPM tolerance (fraction)."
        )(command)
    if name == "neighbours":
        command = click.option(
            "--by", type=click.Choice(["artist", "genre"]), default="artist", show_default=True
        )(command)
    if needs_recording:
        command = click.argument("recording")(command)
    graph.command(name, help=help_text)(command)


_graph_query_command(
    "suggest",
    "What mixes well after RECORDING (uuid or path): same or adjacent Camelot key, BPM within "
    "the tolerance (half and double tempo included), ranked.",
    True,
)
_graph_query_command("shared", "Recordings sharing tracks with RECORDING (via tracklists).", True)
_graph_query_command("neighbours", "Recordings by the same artist or in the same genre.", True)
_graph_query_command("duplicates", "The same content at several paths.", False)


@main.command("show")
@click.argument("path", type=click.Path(path_type=Path))
@config_option
@json_option
@handled
async def show(path: Path, config_path: Path | None, as_json: bool) -> int:
    """What the catalog knows about one file: state, hashes, recording and metadata."""
    config = _load(config_path)
    target = absolute_path(str(path))  # as scan records it
    catalog = await Catalog.open(config.database_url)
    try:
        info = await catalog.recording_for_path(target)
    finally:
        await catalog.close()
    if info is None:
        click.echo(f"tracktiond: {target}: not in the catalog", err=True)
        return EXIT_FAILURE
    data = {k: (v if isinstance(v, int | str | dict | None) else str(v)) for k, v in info.items()}
    if as_json:
        click.echo(json.dumps(data, indent=2))
        return EXIT_OK
    for key in (
        "path",
        "state",
        "last_error",
        "recording_id",
        "sha256_hash",
        "xxh128_hash",
        "size",
    ):
        if data.get(key) is not None:
            click.echo(f"{key}: {data[key]}")
    metadata: dict[str, str] = info["metadata"]
    for key, value in sorted(metadata.items()):
        click.echo(f"  {key} = {value}")
    return EXIT_OK
