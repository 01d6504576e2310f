"""Logging: human lines on a terminal, JSON lines otherwise, journald fields under systemd.

Every record about a file carries ``path`` and ``job_id`` as structured fields (pass them in
``extra=``), so a line can be found by file in any of the three outputs.
"""

from __future__ import annotations

import json
import logging
import os
import sys
from datetime import UTC, datetime
from typing import Any, Literal

LogFormat = Literal["human", "json", "journal"]

# Attributes every LogRecord has; anything else on a record came from extra= and is a field.
_STANDARD = set(logging.LogRecord("", 0, "", 0, "", (), None).__dict__) | {"message", "asctime"}


def _fields(record: logging.LogRecord) -> dict[str, Any]:
    return {k: v for k, v in record.__dict__.items() if k not in _STANDARD}


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        entry.update({k: _jsonable(v) for k, v in _fields(record).items()})
        if record.exc_info:
            entry["traceback"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False)


class HumanFormatter(logging.Formatter):
    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)-7s %(message)s", "%H:%M:%S")


def _jsonable(value: Any) -> Any:
    if isinstance(value, str | int | float | bool) or value is None:
        return value
    return str(value)


def default_format() -> LogFormat:
    if os.environ.get("JOURNAL_STREAM") and _journal_available():
        return "journal"
    return "human" if sys.stderr.isatty() else "json"


def _journal_available() -> bool:
    try:
        import systemd.journal  # noqa: F401
    except ImportError:
        return False
    return True


def setup_logging(level: str = "info", fmt: LogFormat | None = None) -> None:
    fmt = fmt or default_format()
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    handler: logging.Handler
    if fmt == "journal":
        from systemd.journal import JournalHandler

        # JournalHandler turns extra= fields into journal fields (PATH=, JOB_ID=).
        handler = JournalHandler(SYSLOG_IDENTIFIER="tracktiond")
    else:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(JsonFormatter() if fmt == "json" else HumanFormatter())
    root.addHandler(handler)
    set_level(level)
    # Libraries are quiet unless something is wrong.
    for name in ("sqlalchemy", "alembic", "aiosqlite", "asyncio", "watchfiles"):
        logging.getLogger(name).setLevel(logging.WARNING)


def set_level(level: str) -> None:
    logging.getLogger().setLevel(level.upper())
