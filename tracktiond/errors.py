"""The exception hierarchy: one root, and one class per failure *kind*.

Failures are classified once, at the boundary where they happen (DESIGN invariant 5):
bad input is recorded and not retried, transient failures are retried with backoff,
anything else is a bug that is logged with its traceback and costs one file.
"""

from __future__ import annotations

from enum import StrEnum


class FailureClass(StrEnum):
    """How a failed job is treated; stored in the catalog and used as a metric label."""

    BAD_INPUT = "bad_input"  # unreadable, unsupported, corrupt: recorded, not retried
    TRANSIENT = "transient"  # changed or vanished while being read, I/O hiccup: retried
    BUG = "bug"  # an exception we did not expect: logged with traceback, file marked failed


class TracktiondError(Exception):
    """Root of every error tracktiond raises on purpose."""


class ConfigError(TracktiondError):
    """The configuration is invalid; the message names the file, the key and what was expected."""


class InputNotFound(TracktiondError):
    """A file or directory named on the command line does not exist."""


class CatalogError(TracktiondError):
    """The catalog database failed us for a reason of its own, not because of the statement.

    Raised by the catalog's engine in place of the driver's exception (and chained from it), so
    no caller sees a driver or SQLAlchemy exception for these failures. ``url`` is the catalog's
    URL with the password hidden; ``reason`` is one line from the driver.
    """

    state = "failed"

    def __init__(self, url: str, reason: str, *, state: str | None = None) -> None:
        self.url = url
        self.reason = reason
        if state is not None:
            self.state = state
        super().__init__(f"catalog {url} {self.state}: {reason}")


class CatalogUnavailable(CatalogError):
    """The catalog database cannot be reached or used: the server is down, restarting or out of
    resources, the connection or the network was lost, a wait timed out, the SQLite file cannot
    be opened or written. Operational, not a bug: the daemon retries with backoff and says so;
    a command exits 69. ``state`` is "unreachable", or "unusable" when it reached the database
    and was refused (password, missing database, not a database file)."""

    state = "unreachable"


class CatalogConflict(CatalogError):
    """Two transactions collided (PostgreSQL serialization failure or deadlock, a stale SQLite
    snapshot): the database is fine and the losing transaction is simply run again."""

    state = "transaction conflict"


class FileJobError(TracktiondError):
    """Processing one file failed; carries the failure class and a reason fit for users."""

    failure_class: FailureClass = FailureClass.BUG

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class BadInput(FileJobError):
    """The file itself is the problem (not audio, corrupt, unreadable, bad name)."""

    failure_class = FailureClass.BAD_INPUT


class TransientFileError(FileJobError):
    """The file changed or vanished while it was being read; trying again later may work."""

    failure_class = FailureClass.TRANSIENT


class FileStillArriving(TransientFileError):
    """The file is still being written (copied in, downloaded, recorded): it grew or changed
    while it was read, or it looks cut short and was modified a moment ago. Not a failure: it
    is read again once it has settled, and no attempt is counted (DESIGN invariant 7)."""


class FileVanished(TransientFileError):
    """The file disappeared between discovery and reading."""
