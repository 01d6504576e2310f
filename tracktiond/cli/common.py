"""What every command shares: the exit codes (decided here and nowhere else), the common options,
and `handled`, which turns our errors into one clear line and an exit code.

Exit codes (sysexits-style, so systemd units can tell them apart):
0 success; 1 runtime failure; 2 usage error (click); 69 catalog unreachable (EX_UNAVAILABLE);
78 configuration error (EX_CONFIG: systemd should not restart into the same bad config).
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Awaitable, Callable
from functools import wraps
from pathlib import Path
from typing import Any, TypeVar

import anyio
import click

from tracktiond.config import Config, load_config
from tracktiond.errors import CatalogUnavailable, ConfigError, TracktiondError
from tracktiond.service.logs import setup_logging

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
