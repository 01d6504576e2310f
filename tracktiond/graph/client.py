"""The connection to the graph server: the official neo4j async driver, used one way only.

Every statement runs as an auto-commit query (``session.run``), never inside an explicit or
managed transaction: FalkorDB silently drops writes made inside explicit Bolt transactions, and
the driver's ``execute_query``/``execute_write`` use them. That is safe because every write
tracktiond sends is idempotent (MERGE on keys, deletes by key), so a statement that failed
half-way, or that succeeded but whose reply was lost, is simply sent again.

Driver failures are classified here, once: connection-level trouble becomes GraphUnavailable
(after a few quick retries), a statement the server rejects becomes GraphQueryError.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator, Mapping, Sequence
from types import TracebackType
from typing import Any, LiteralString, Self

import anyio
import neo4j
from neo4j import exceptions as neo4j_errors

from tracktiond.config import GraphConfig
from tracktiond.graph.dialect import DIALECTS, Dialect, detect
from tracktiond.graph.errors import GraphQueryError, GraphUnavailable

__all__ = ["GraphClient"]

log = logging.getLogger(__name__)

# Failures of the connection, not of the statement: retried, then reported as GraphUnavailable.
_UNAVAILABLE: tuple[type[BaseException], ...] = (
    neo4j_errors.ServiceUnavailable,  # includes the driver's connection-acquisition timeout
    neo4j_errors.SessionExpired,
    neo4j_errors.TransientError,  # the server asks us to retry (deadlock, leader switch, ...)
    neo4j_errors.DatabaseUnavailable,
    neo4j_errors.IncompleteCommit,
    OSError,  # includes ConnectionError and TimeoutError
)
# The server is reachable but will not let us in: no point in retrying quickly, but it is still
# an unusable graph (a configuration problem the user fixes), not a bad statement.
_REFUSED: tuple[type[BaseException], ...] = (
    neo4j_errors.AuthError,
    neo4j_errors.Forbidden,
    neo4j_errors.ConfigurationError,
)


class GraphClient:
    """A connection to one graph (database) on a Neo4j 5 or FalkorDB server.

    ``connect()`` is optional: the first statement connects. The server's dialect is detected
    on connect unless given (``dialect="neo4j"`` or ``"falkordb"``). Safe to share between tasks.
    """

    def __init__(
        self,
        uri: str,
        *,
        user: str = "",
        password: str = "",
        database: str | None = None,
        dialect: str | None = None,
        connect_timeout: float = 5.0,
        attempts: int = 3,
    ) -> None:
        if dialect is not None and dialect not in DIALECTS:
            raise ValueError(f"unknown graph dialect {dialect!r}; expected one of {list(DIALECTS)}")
        self.uri = uri
        self.database = database or None
        # No password means no authentication: Neo4j with auth disabled and FalkorDB (whose Bolt
        # endpoint rejects any basic-auth token) both want no auth token at all.
        self._auth: tuple[str, str] | None = (user, password) if password else None
        self._forced_dialect = DIALECTS[dialect] if dialect else None
        self._dialect: Dialect | None = None
        self._driver: neo4j.AsyncDriver | None = None
        self._connect_timeout = connect_timeout
        self._attempts = max(1, attempts)
        self._lock = anyio.Lock()

    @classmethod
    def from_config(cls, config: GraphConfig, **kwargs: Any) -> GraphClient:
        return cls(
            config.uri,
            user=config.user,
            password=config.password.get_secret_value(),
            database=config.database,
            **kwargs,
        )

    # ---- lifecycle -------------------------------------------------------------------------

    @property
    def dialect(self) -> Dialect:
        if self._dialect is None:
            raise RuntimeError("GraphClient.dialect is known only after connect()")
        return self._dialect

    @property
    def connected(self) -> bool:
        return self._dialect is not None

    async def connect(self) -> Dialect:
        """Open the driver, check the server answers, learn its dialect. Idempotent."""
        async with self._lock:
            if self._dialect is not None:
                return self._dialect
            driver = self._new_driver(self._forced_dialect)
            try:
                dialect = self._forced_dialect or await detect(
                    lambda q: self._run_on(driver, q, None, write=False)
                )
                if dialect.driver_options and self._forced_dialect is None:
                    # Options that only matter for this server: reopen with them.
                    await _close_driver(driver, dialect)
                    driver = self._new_driver(dialect)
                await self._run_on(driver, "RETURN 1 AS ok", None, write=False)
            except BaseException:
                await _close_driver(driver, self._forced_dialect)
                raise
            self._driver, self._dialect = driver, dialect
            log.info("graph %s connected (%s)", self.uri, dialect.name)
            return dialect

    async def close(self) -> None:
        async with self._lock:
            driver, self._driver = self._driver, None
            dialect, self._dialect = self._dialect, None
            if driver is not None:
                await _close_driver(driver, dialect)

    async def __aenter__(self) -> Self:
        await self.connect()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    # ---- statements ------------------------------------------------------------------------

    async def write(
        self, query: LiteralString, params: Mapping[str, Any] | None = None
    ) -> list[dict[str, Any]]:
        """Run one idempotent write as an auto-commit statement; returns its records."""
        driver = await self._ready()
        return await self._run_on(driver, query, params, write=True)

    async def read(
        self,
        query: LiteralString,
        params: Mapping[str, Any] | None = None,
        *,
        fresh: bool = False,
    ) -> list[dict[str, Any]]:
        """Run one read-only statement; returns its records as plain dicts.

        In a Neo4j cluster reads may be served by a follower that lags behind; ``fresh=True``
        sends the read where the writes go, for reads that decide what to write next.
        """
        driver = await self._ready()
        return await self._run_on(driver, query, params, write=fresh)

    def chunks(
        self, query: LiteralString, rows: Sequence[Any], *, max_rows: int = 1000
    ) -> Iterator[list[Any]]:
        """Split UNWIND rows into lists that each make a request the server accepts.

        At most ``max_rows`` rows per chunk (bounded transaction size on Neo4j) and, where the
        dialect limits the request size, as many as fit. Call after connect().
        """
        limit = self.dialect.max_request_bytes
        budget = None if limit is None else limit - _utf8_len(query) - _PARAMS_OVERHEAD
        chunk: list[Any] = []
        size = 0
        for row in rows:
            row_size = literal_size(row) + 2
            if chunk and (
                len(chunk) >= max_rows or (budget is not None and size + row_size > budget)
            ):
                yield chunk
                chunk, size = [], 0
            chunk.append(row)
            size += row_size
        if chunk:
            yield chunk

    async def ping(self) -> None:
        """Raise GraphUnavailable unless the server answers a trivial query."""
        try:
            await self.read("RETURN 1 AS ok")
        except GraphQueryError as exc:
            # A server that cannot run RETURN 1 is not usable, whatever it says.
            raise GraphUnavailable(f"graph {self.uri} does not answer queries: {exc}") from exc

    async def _ready(self) -> neo4j.AsyncDriver:
        if self._driver is None:
            await self.connect()
        assert self._driver is not None
        return self._driver

    def _new_driver(self, dialect: Dialect | None) -> neo4j.AsyncDriver:
        options: dict[str, Any] = {
            "connection_timeout": self._connect_timeout,
            # Fail fast when the server is gone; GraphSync does the patient waiting.
            "connection_acquisition_timeout": max(10.0, 2 * self._connect_timeout),
            "user_agent": "tracktiond",
        }
        if dialect is not None:
            options.update(dialect.driver_options)
        try:
            return neo4j.AsyncGraphDatabase.driver(self.uri, auth=self._auth, **options)
        except (ValueError, neo4j_errors.ConfigurationError) as exc:
            raise GraphUnavailable(f"graph URI {self.uri!r} not usable: {exc}") from exc

    async def _run_on(
        self,
        driver: neo4j.AsyncDriver,
        query: LiteralString,
        params: Mapping[str, Any] | None,
        *,
        write: bool,
    ) -> list[dict[str, Any]]:
        known = self._dialect or self._forced_dialect
        limit = known.max_request_bytes if known else None
        if known is not None and limit is not None:
            size = _utf8_len(query) + _PARAMS_OVERHEAD + literal_size(dict(params or {}))
            if size > limit:
                # Refused here: sent, it would crash the server (see dialect.py).
                raise GraphQueryError(
                    f"statement {_first_line(query)!r} with {size} bytes of text and "
                    f"parameters is over the {limit} bytes {known.name} accepts"
                )
        # Until the dialect is known (detection), only graph-independent statements run.
        read_mode = known.read_mode if known else True
        mode = neo4j.READ_ACCESS if not write and read_mode else neo4j.WRITE_ACCESS
        delay = 0.2
        for attempt in range(1, self._attempts + 1):
            try:
                async with driver.session(database=self.database, default_access_mode=mode) as s:
                    result = await s.run(query, dict(params or {}))
                    return await result.data()
            except _REFUSED as exc:
                raise GraphUnavailable(f"graph {self.uri} refused us: {_reason(exc)}") from exc
            except _UNAVAILABLE as exc:
                if attempt == self._attempts:
                    raise GraphUnavailable(f"graph {self.uri} unreachable: {_reason(exc)}") from exc
                log.debug("graph statement failed (%s), retry %d", _reason(exc), attempt)
            except (neo4j_errors.Neo4jError, neo4j_errors.DriverError) as exc:
                raise GraphQueryError(
                    f"graph {self.uri} rejected {_first_line(query)!r}: {_reason(exc)}"
                ) from exc
            await anyio.sleep(delay)
            delay *= 2
        raise AssertionError("unreachable")  # the loop returns or raises


async def _close_driver(driver: neo4j.AsyncDriver, dialect: Dialect | None) -> None:
    if dialect is None or not dialect.polite_close:
        # Unknown or FalkorDB: close the sockets without the Bolt GOODBYE (see dialect.py).
        _drop_connections(driver)
    # Shielded: closing often happens while the caller is being cancelled (daemon shutdown),
    # and a half-closed driver would leak its sockets.
    with anyio.CancelScope(shield=True), anyio.move_on_after(10):
        try:
            await driver.close()
        except (OSError, neo4j_errors.DriverError, neo4j_errors.Neo4jError) as exc:
            log.debug("closing the graph driver: %s", _reason(exc))


def _drop_connections(driver: neo4j.AsyncDriver) -> None:
    # The driver has no public way to close without GOODBYE, so reach for its pool. Every
    # attribute is looked up defensively: should a driver release rename them, this does
    # nothing and close() falls back to the polite goodbye (only FalkorDB minds).
    pool = getattr(driver, "_pool", None)
    connections = getattr(pool, "connections", None)
    if not isinstance(connections, Mapping):
        return
    for queue in list(connections.values()):
        for connection in list(queue):
            kill = getattr(connection, "kill", None)
            if callable(kill):
                with contextlib.suppress(OSError):
                    kill()


# "CYPHER " and separators around the parameters, as FalkorDB writes them.
_PARAMS_OVERHEAD = 16


def _utf8_len(text: str) -> int:
    return len(text.encode("utf-8", "surrogatepass"))


def literal_size(value: Any) -> int:
    """An upper estimate of ``value``'s length written as a Cypher literal, in bytes."""
    if isinstance(value, str):
        # Quotes, plus a backslash for every character that needs escaping.
        return _utf8_len(value) + 2 + sum(value.count(c) for c in "'\\\"\n\r\t")
    if value is None or isinstance(value, bool):
        return 5
    if isinstance(value, int | float):
        return 24  # generous: servers print doubles with up to 17 significant digits
    if isinstance(value, Mapping):
        return 2 + sum(_utf8_len(str(k)) + 2 + literal_size(v) + 2 for k, v in value.items())
    if isinstance(value, list | tuple):
        return 2 + sum(literal_size(v) + 2 for v in value)
    return literal_size(str(value))


def _reason(exc: BaseException) -> str:
    message = getattr(exc, "message", None) or str(exc) or type(exc).__name__
    first = str(message).strip().splitlines()
    text = first[0] if first else type(exc).__name__
    return text if len(text) <= 300 else text[:297] + "..."


def _first_line(query: str) -> str:
    line = query.strip().splitlines()[0] if query.strip() else ""
    return line if len(line) <= 80 else line[:77] + "..."
