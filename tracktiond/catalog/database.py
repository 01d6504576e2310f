"""Engine creation: one code path for SQLite (aiosqlite) and PostgreSQL (asyncpg).

This is also where driver errors are translated, once (DESIGN invariant 5): every engine made
here raises :class:`~tracktiond.errors.CatalogUnavailable` (the database cannot be reached or
used) or :class:`~tracktiond.errors.CatalogConflict` (two transactions collided) in place of the
driver's exception, chained from it. Anything else (a bad statement, a constraint violated) is
left as SQLAlchemy raises it: that is a bug, not an outage. The rules are in docs/catalog.md.

Two hooks, because SQLAlchemy routes a failure through ``handle_error`` only when the driver
raised one of its DB-API exceptions: connection-level ``OSError`` / ``TimeoutError`` while
connecting (refused, no route, DNS, connect timeout) come out of the pool raw, so ``do_connect``
translates those, and ``handle_error`` everything else, connecting or executing.
"""

from __future__ import annotations

import shlex
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from sqlalchemy import event
from sqlalchemy.engine import URL, ExceptionContext, make_url
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from tracktiond.config import LIBPQ_DSN_PARAMS, LIBPQ_PARAMS, redact_url
from tracktiond.errors import CatalogConflict, CatalogError, CatalogUnavailable, ConfigError

# PostgreSQL SQLSTATEs (https://www.postgresql.org/docs/current/errcodes-appendix.html).
_PG_CONFLICT = {"40001", "40P01"}  # serialization failure, deadlock detected
# The session is gone: class 08 (connection exception), admin/crash shutdown (the server stops
# or restarts), idle-session and idle-in-transaction timeouts (the server closed the session).
_PG_LOST = {"57P01", "57P02", "57P05", "25P03"}
_PG_LOST_CLASSES = {"08"}
# The server is there but cannot serve us now: starting up or shutting down (57P03), out of
# connections, memory or disk (class 53), a statement or lock timeout / cancel (57014).
_PG_BUSY = {"57P03", "57014"}
_PG_BUSY_CLASSES = {"53"}
# Reached and refused: bad password or role (class 28), no such database, database dropped,
# permission denied (our role may not create the schema).
_PG_REFUSED = {"3D000", "57P04", "42501"}
_PG_REFUSED_CLASSES = {"28"}

# SQLite primary result codes (https://www.sqlite.org/rescode.html).
_SQLITE_BUSY = 5  # locked by another connection past busy_timeout
_SQLITE_BUSY_SNAPSHOT = 517  # WAL: our read snapshot is stale, the transaction must restart
_SQLITE_UNREACHABLE = {
    10,  # IOERR: the disk or the file system failed
    13,  # FULL: database or disk is full
    14,  # CANTOPEN: the file or its directory cannot be opened (missing, unmounted, a directory)
    15,  # PROTOCOL: the WAL lock protocol failed (a race with another process)
}
_SQLITE_UNUSABLE = {
    3,  # PERM: access denied
    8,  # READONLY: the file, its directory or the file system is read-only
    11,  # CORRUPT: the database file is malformed
    23,  # AUTH
    26,  # NOTADB: the file is not a SQLite database
}


def is_sqlite(url: str | URL) -> bool:
    return make_url(url).get_backend_name() == "sqlite"


def create_engine(url: str) -> AsyncEngine:
    parsed = make_url(url)
    shown = redact_url(url)
    if is_sqlite(parsed):
        database = parsed.database
        if database and database != ":memory:":
            try:
                Path(database).expanduser().parent.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise CatalogUnavailable(shown, _one_line(exc)) from exc
        engine = create_async_engine(parsed, connect_args={"timeout": 60})
        event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
    else:
        parsed, connect_args = postgres_connect_args(parsed)
        engine = create_async_engine(
            parsed, pool_size=5, max_overflow=10, pool_pre_ping=True, connect_args=connect_args
        )
    _translate_errors(engine, shown)
    return engine


def postgres_connect_args(url: URL) -> tuple[URL, dict[str, Any]]:
    """The URL without its libpq parameters, and asyncpg's connect arguments for them.

    SQLAlchemy hands a URL's query to ``asyncpg.connect`` as keyword arguments, and asyncpg
    takes none of libpq's (``TypeError: ... unexpected keyword argument 'sslmode'``). The SSL
    and session ones go to asyncpg as a DSN, which it parses the way libpq does (sslmode,
    certificates, target_session_attrs); connect_timeout, application_name and options are
    translated here. Unknown parameters were refused when the configuration was validated."""
    query = {k: (v if isinstance(v, str) else v[-1]) for k, v in url.query.items()}
    unknown = sorted(set(query) - LIBPQ_PARAMS)
    if unknown:
        raise ConfigError(f"unsupported PostgreSQL URL parameter(s): {', '.join(unknown)}")
    settings = {"application_name": query.get("application_name") or "tracktiond"}
    for option in shlex.split(query.get("options", "")):
        # libpq's options: "-c name=value" pairs (or "-cname=value")
        name, _, value = option.removeprefix("-c").strip().partition("=")
        if name and option != "-c":
            settings[name] = value
    args: dict[str, Any] = {
        "timeout": float(query.get("connect_timeout") or 10),
        "server_settings": settings,
    }
    dsn_params = {k: v for k, v in query.items() if k in LIBPQ_DSN_PARAMS}
    if dsn_params:
        args["dsn"] = "postgresql://?" + urlencode(dsn_params)
    return url.set(query={}), args


def translate_error(exc: BaseException, url: str, *, connecting: bool) -> CatalogError | None:
    """The catalog error ``exc`` (a driver exception) stands for, or None when it is not ours
    to translate (a bug: bad SQL, a violated constraint). ``url`` is already redacted; with
    ``connecting`` (SQLAlchemy only hands DB-API errors over then) every error counts."""
    if not isinstance(exc, Exception):
        return None  # cancellation, KeyboardInterrupt: never an outage
    driver = getattr(exc, "orig", None) or exc  # asyncpg errors come wrapped by the adapter
    if isinstance(exc, OSError | TimeoutError) or isinstance(driver, OSError | TimeoutError):
        return CatalogUnavailable(url, _one_line(driver))
    reason = _one_line(exc)
    sqlstate = getattr(exc, "sqlstate", None) or getattr(driver, "sqlstate", None)
    if isinstance(sqlstate, str):
        if sqlstate in _PG_CONFLICT:
            return CatalogConflict(url, reason)
        if _pg_lost(sqlstate) or sqlstate in _PG_BUSY or sqlstate[:2] in _PG_BUSY_CLASSES:
            return CatalogUnavailable(url, reason)
        if sqlstate in _PG_REFUSED or sqlstate[:2] in _PG_REFUSED_CLASSES:
            return CatalogUnavailable(url, reason, state="unusable")
    code = getattr(driver, "sqlite_errorcode", None)
    if isinstance(code, int):
        if code == _SQLITE_BUSY_SNAPSHOT:
            return CatalogConflict(url, reason)
        primary = code & 0xFF
        if primary == _SQLITE_BUSY or primary in _SQLITE_UNREACHABLE:
            return CatalogUnavailable(url, reason)
        if primary in _SQLITE_UNUSABLE:
            return CatalogUnavailable(url, reason, state="unusable")
    if connecting:
        # A DB-API error while connecting or setting up the session (the server's protocol,
        # SSL, our PRAGMAs), no statement of a caller's involved: the catalog cannot be used.
        return CatalogUnavailable(url, reason, state="unusable")
    return None


def _pg_lost(sqlstate: str) -> bool:
    return sqlstate in _PG_LOST or sqlstate[:2] in _PG_LOST_CLASSES


def _translate_errors(engine: AsyncEngine, url: str) -> None:
    def on_error(ctx: ExceptionContext) -> BaseException | None:
        if ctx.is_pre_ping:
            return None  # the pool replaces the dead connection; a failed reconnect comes here
        error = translate_error(ctx.original_exception, url, connecting=ctx.connection is None)
        if error is None:
            if ctx.is_disconnect and isinstance(ctx.original_exception, Exception):
                # SQLAlchemy knows the connection is gone ("connection is closed")
                return CatalogUnavailable(url, _one_line(ctx.original_exception))
            return None
        if isinstance(error, CatalogUnavailable) and _drops_session(ctx.original_exception):
            ctx.is_disconnect = True  # so the pool discards this connection and its siblings
        return error

    def on_connect(dialect: Any, _record: Any, cargs: list[Any], cparams: dict[str, Any]) -> Any:
        try:
            return dialect.connect(*cargs, **cparams)
        except (OSError, TimeoutError) as exc:
            raise CatalogUnavailable(url, _one_line(exc)) from exc

    event.listen(engine.sync_engine, "handle_error", on_error)
    event.listen(engine.sync_engine, "do_connect", on_connect)


def _drops_session(exc: BaseException) -> bool:
    driver = getattr(exc, "orig", None) or exc
    if isinstance(driver, OSError | TimeoutError):
        return True
    sqlstate = getattr(exc, "sqlstate", None) or getattr(driver, "sqlstate", None)
    return isinstance(sqlstate, str) and _pg_lost(sqlstate)


def _one_line(exc: BaseException) -> str:
    for line in str(exc).splitlines():
        if line.strip():
            return line.strip()
    if isinstance(exc, TimeoutError):
        return "timed out"
    return type(exc).__name__


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    # WAL lets readers (status, HTTP) run while the scanner writes; NORMAL sync is durable
    # across process crashes in WAL mode; foreign keys are off by default in SQLite.
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=60000")
    cursor.close()
