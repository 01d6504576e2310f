"""What every command shares: the exit codes (decided here and nowhere else), the common options,
and `handled`, which turns our errors into one clear line and an exit code.

Exit codes (sysexits-style, so systemd units can tell them apart):
0 success; 1 runtime failure; 2 usage error (click); 69 catalog unreachable (EX_UNAVAILABLE);
75 catalog transaction conflict (EX_TEMPFAIL: running the command again will do);
78 configuration error (EX_CONFIG: systemd should not restart into the same bad config);
130 interrupted.

A command's tasks run in anyio task groups, which wrap what they raise in exception groups:
`handled` looks through them. When every error in the group is one of ours it reports the most
serious one (configuration, then catalog unreachable, then conflict, then any other); when any
is not ours (a bug) the group is raised as it is, with its tracebacks.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Awaitable, Callable, Iterator
from functools import wraps
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click

from tracktiond.errors import (
    CatalogConflict,
    CatalogUnavailable,
    ConfigError,
    InputNotFound,
    TracktiondError,
)
from tracktiond.service.logs import LogFormat, default_format, setup_logging

if TYPE_CHECKING:
    from tracktiond.config import Config

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_NOINPUT = 66  # sysexits EX_NOINPUT: a path given on the command line is not there
EXIT_UNAVAILABLE = 69
EXIT_TEMPFAIL = 75
EXIT_CONFIG = 78
EXIT_INTERRUPTED = 130

# Most serious first: the exit code of the first kind that matches, in handled().
_EXIT_CODES: tuple[tuple[type[TracktiondError], int], ...] = (
    (ConfigError, EXIT_CONFIG),
    (CatalogUnavailable, EXIT_UNAVAILABLE),
    (CatalogConflict, EXIT_TEMPFAIL),
    (InputNotFound, EXIT_NOINPUT),
    (TracktiondError, EXIT_FAILURE),
)

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
        # Imported when a command runs, not when it is defined: `--help` needs no event loop.
        import anyio

        try:
            code = anyio.run(lambda: func(*args, **kwargs))
        except (TracktiondError, KeyboardInterrupt, BaseExceptionGroup) as exc:
            failure = _failure_exit(exc)
            if failure is None:
                raise  # a bug among them: its traceback is what helps
            _fail(*failure)
        sys.exit(code or EXIT_OK)

    return wrapper


def _failure_exit(exc: BaseException) -> tuple[int, str] | None:
    """The exit code and message for ``exc`` (an exception group is looked through), or None
    when it is, or holds, something that is not ours: a bug, whose traceback must show."""
    leaves = list(_leaves(exc))
    if not all(isinstance(leaf, TracktiondError | KeyboardInterrupt) for leaf in leaves):
        return None
    if any(isinstance(leaf, KeyboardInterrupt) for leaf in leaves):
        return EXIT_INTERRUPTED, "interrupted"
    for kind, code in _EXIT_CODES:
        for leaf in leaves:
            if isinstance(leaf, kind):
                return code, str(leaf)
    return None  # not reached: every leaf is a TracktiondError


def _leaves(exc: BaseException) -> Iterator[BaseException]:
    if isinstance(exc, BaseExceptionGroup):
        for inner in exc.exceptions:
            yield from _leaves(inner)
    else:
        yield exc


def load_command_config(config_path: Path | None) -> Config:
    # The configuration model (pydantic, SQLAlchemy's URL parser) is loaded by the commands
    # that read a configuration, not by every `tracktiond` call (test_startup_imports.py).
    from tracktiond.config import load_config

    config = load_config(config_path)
    # A command talks to a person (or a script reading its stdout): plain lines on stderr,
    # JSON logs are the daemon's (journald fields when run by systemd, e.g. from a timer).
    fmt: LogFormat = "journal" if default_format() == "journal" else "human"
    setup_logging(config.daemon.log_level if config.daemon.log_level != "info" else "warning", fmt)
    return config
