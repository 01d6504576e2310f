"""The command line: the only place that decides exit codes.

Exit codes (sysexits-style, so systemd units can tell them apart):
0 success; 1 runtime failure; 2 usage error (click); 69 catalog unreachable (EX_UNAVAILABLE);
78 configuration error (EX_CONFIG: systemd should not restart into the same bad config).
"""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Awaitable, Callable
from datetime import timedelta
from functools import wraps
from pathlib import Path
from typing import Any, TypeVar

import anyio
import click

from tracktiond import __version__
from tracktiond.catalog.store import Catalog
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


def load_command_config(config_path: Path | None) -> Config:
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
    config = load_command_config(config_path)
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
    config = load_command_config(config_path)
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


@main.command("show")
@click.argument("path", type=click.Path(path_type=Path))
@config_option
@json_option
@handled
async def show(path: Path, config_path: Path | None, as_json: bool) -> int:
    """What the catalog knows about one file: state, hashes, recording and metadata."""
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


# The command families live in sibling modules; importing them registers their commands on `main`
# (they use the options, `handled` and the exit codes above).
from tracktiond import cli_analysis, cli_graph, cli_status  # noqa: E402, F401
