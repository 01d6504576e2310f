"""Catalog reachability: transient database failures are retried, and the daemon says so.

A database outage must not take the daemon down or lose work (DESIGN invariant 5): operations
that fail with a connection-level error are retried with backoff until the database is back,
while /readyz and tracktiond_catalog_up report the outage. Anything else is not ours to retry.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

import anyio

from tracktiond.config import redact_url
from tracktiond.errors import CatalogConflict, CatalogError, CatalogUnavailable

log = logging.getLogger(__name__)

T = TypeVar("T")


def is_conflict(exc: BaseException) -> bool:
    """Two transactions collided (a deadlock, a serialization failure): the database is fine,
    and the losing transaction is simply run again."""
    return isinstance(exc, CatalogConflict)


def is_transient(exc: BaseException) -> bool:
    """The catalog cannot be reached or used now: wait, and try again.

    The catalog's engine raises CatalogUnavailable for every such driver error (see
    catalog/database.py), so no driver exception, errno or class name is looked at here.
    Nothing else the retried operations do (catalog queries, a reconcile's directory walk,
    which records what it cannot read) lets an OSError out, so an OSError is a bug.
    """
    return isinstance(exc, CatalogUnavailable)


class CatalogHealth:
    def __init__(
        self,
        url: str,
        on_change: Callable[[bool], None] | None = None,
        on_error: Callable[[], None] | None = None,
    ) -> None:
        self.url = redact_url(url)
        self.up = False
        self.reason: str | None = "catalog not connected yet"
        self.down_since: float | None = time.time()
        self._on_change = on_change
        self._on_error = on_error

    def mark_up(self) -> None:
        if not self.up:
            if self.down_since is not None and self.reason != "catalog not connected yet":
                log.warning(
                    "catalog %s reachable again after %.1f s",
                    self.url,
                    time.time() - self.down_since,
                )
            self.up, self.reason, self.down_since = True, None, None
            if self._on_change:
                self._on_change(True)

    def mark_down(self, exc: BaseException) -> None:
        if self._on_error:
            self._on_error()
        if isinstance(exc, CatalogError):
            self.reason = f"catalog {exc.state}: {exc.reason}"
        else:
            lines = str(exc).strip().splitlines()
            self.reason = f"catalog unreachable: {lines[0] if lines else type(exc).__name__}"
        if self.up or self.down_since is None:
            log.error("catalog %s: %s; retrying", self.url, self.reason)
            self.down_since = time.time()
        self.up = False
        if self._on_change:
            self._on_change(False)

    async def call(self, fn: Callable[[], Awaitable[T]], *, max_delay: float = 10.0) -> T:
        """Run ``fn`` until it succeeds, waiting out transient failures with backoff."""
        delay = 0.25
        while True:
            try:
                result = await fn()
            except Exception as exc:
                if is_conflict(exc):
                    log.info("catalog transaction conflict (%s); running it again", exc)
                    await anyio.sleep(0.05)
                    continue
                if not is_transient(exc):
                    raise
                self.mark_down(exc)
                await anyio.sleep(delay)
                delay = min(max_delay, delay * 2)
                continue
            self.mark_up()
            return result


async def guarded(health: CatalogHealth | None, fn: Callable[[], Awaitable[T]]) -> T:
    """``health.call(fn)`` when the caller watches the catalog's health (the daemon), else a
    plain call (a one-shot command fails fast instead)."""
    return await (health.call(fn) if health is not None else fn())
