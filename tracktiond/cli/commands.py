"""The catalog commands: check-config, db upgrade, scan, run (the daemon) and show.

The catalog, the scanner, the progress bar and the configuration loader are imported inside
the commands that use them: `check-config` and every `--help` must not pay for SQLAlchemy,
rich or the pipeline (tests/unit/test_startup_imports.py).
"""

from __future__ import annotations

import json
import logging
import os
import sys
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING

import click

from tracktiond.cli.common import (
    EXIT_CONFIG,
    EXIT_FAILURE,
    EXIT_OK,
    _fail,
    config_option,
    handled,
    json_option,
    load_command_config,
)
from tracktiond.errors import ConfigError, InputNotFound, TracktiondError

if TYPE_CHECKING:
    from tracktiond.pipeline.reconcile import ScanSummary

log = logging.getLogger("tracktiond")


@click.command("check-config")
@config_option
@json_option
def check_config(config_path: Path | None, as_json: bool) -> None:
    """Validate the configuration and print it as it takes effect (secrets redacted)."""
    from tracktiond.config import load_config

    try:
        config = load_config(config_path)
    except ConfigError as exc:
        if as_json:  # a script asked for JSON: it gets JSON, on stdout, with the exit code
            click.echo(json.dumps({"valid": False, "error": str(exc)}, indent=2))
            sys.exit(EXIT_CONFIG)
        _fail(EXIT_CONFIG, str(exc))
        return
    source = str(config.source) if config.source else None
    if not config.library.roots:
        click.echo(
            f"warning: {source or 'built-in defaults'}: [library] roots is empty: "
            "`tracktiond run` would watch nothing",
            err=True,
        )
    if as_json:
        click.echo(json.dumps({"valid": True, "source": source, **config.redacted()}, indent=2))
        return
    click.echo(f"# configuration from {source or 'built-in defaults'}: valid")
    for section, values in config.redacted().items():
        click.echo(f"[{section}]")
        for key, value in values.items():
            # TOML has no null: an unset value is shown as a comment, so the output stays a
            # valid configuration file.
            click.echo(f"# {key} is unset" if value is None else f"{key} = {_toml(value)}")
        click.echo()


def _toml(value: object) -> str:
    """A TOML literal for a configuration value (strings, numbers, booleans, lists, tables)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)  # a JSON string is a TOML basic string
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    if isinstance(value, dict):
        items = ", ".join(f"{json.dumps(str(k))} = {_toml(v)}" for k, v in value.items())
        return "{" + (f" {items} " if items else "") + "}"
    return json.dumps(str(value))


@click.group("db")
def db() -> None:
    """Catalog database maintenance."""


@db.command("upgrade")
@config_option
@handled
async def db_upgrade(config_path: Path | None) -> int:
    """Create or migrate the catalog schema to the current version."""
    from tracktiond.catalog.store import Catalog

    config = load_command_config(config_path)
    catalog = await Catalog.open(config.database_url)
    try:
        revision = await catalog.schema_revision()
    finally:
        await catalog.close()
    click.echo(f"catalog schema at revision {revision}")
    return EXIT_OK


@click.command("scan")
@click.argument("paths", nargs=-1, type=click.Path(path_type=Path))
@config_option
@json_option
@click.option("--no-progress", is_flag=True, help="Do not draw a progress bar.")
@click.option(
    "--analyze",
    "analyze",
    is_flag=True,
    help="Also analyse (BPM, key, loudness, mood) what is under PATHS and store the results; "
    "resumes where a stopped run left off.",
)
@handled
async def scan(
    paths: tuple[Path, ...],
    config_path: Path | None,
    as_json: bool,
    no_progress: bool,
    analyze: bool,
) -> int:
    """Catalog every audio file under PATHS (default: the configured roots) and exit."""
    import anyio

    from tracktiond.catalog.store import Catalog
    from tracktiond.cli.progress import ScanProgressBar
    from tracktiond.pipeline.reconcile import absolute_path
    from tracktiond.pipeline.scan import Scanner

    config = load_command_config(config_path)
    # A path given on the command line that is not there is a mistake, not an unmounted
    # drive (which a configured root may be: that one is a warning).
    missing = await anyio.to_thread.run_sync(
        lambda: [p for p in paths if not os.path.lexists(absolute_path(str(p)))]
    )
    if missing:
        raise InputNotFound(f"{missing[0]}: no such file or directory")
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
                analysis=config.analysis if analyze else None,
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
    shown = ["new", "changed", "moved", "duplicate", "missing", "unchanged", "failed"]
    shown += [k for k in ("deferred", "analysed", "analysis_failed") if data[k]]
    counts = ", ".join(f"{data[k]} {k.replace('_', ' ')}" for k in shown)
    if data["failed_not_retried"]:
        # A rescan reports files that failed before and have not changed since: say so, or
        # "failed: 152" reads as 152 new failures.
        counts = counts.replace(
            f"{data['failed']} failed",
            f"{data['failed']} failed ({data['failed_not_retried']} unchanged since they failed "
            "earlier, not retried)",
            1,
        )
    click.echo(
        f"scanned {data['files_seen']} files in {data['elapsed_seconds']:.1f} s "
        f"({data['files_per_second']:.0f} files/s, "
        f"{data['megabytes_per_second']:.1f} MB/s): {counts}"
    )
    # The warnings themselves were logged as they happened (stderr), once.
    if data["failed"]:
        click.echo("see `tracktiond status` for the reasons files could not be cataloged")


@click.command("run")
@config_option
def run(config_path: Path | None) -> None:
    """Run the daemon: watch the roots, keep the catalog true, serve health and metrics."""
    from tracktiond.config import load_config
    from tracktiond.service.daemon import run_daemon
    from tracktiond.service.logs import setup_logging as _setup

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


@click.command("show")
@click.argument("path", type=click.Path(path_type=Path))
@config_option
@json_option
@handled
async def show(path: Path, config_path: Path | None, as_json: bool) -> int:
    """What the catalog knows about one file: state, hashes, recording and metadata."""
    from tracktiond.catalog.store import Catalog
    from tracktiond.pipeline.reconcile import absolute_path

    config = load_command_config(config_path)
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
