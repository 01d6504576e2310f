"""Driver errors are translated once, by the catalog's engine, against the real backends.

An outage (server stopped, connection terminated, port closed, SQLite file that cannot be opened
or is locked) is CatalogUnavailable; a deadlock or serialization failure is CatalogConflict; a
plain mistake in a statement is neither, and stays SQLAlchemy's error.
"""

from __future__ import annotations

import socket
import sqlite3
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import anyio
import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection

from tests.support.pgserver import PostgresServer
from tracktiond.catalog import Catalog
from tracktiond.catalog.health import is_conflict, is_transient
from tracktiond.errors import CatalogConflict, CatalogError, CatalogUnavailable, TracktiondError

pytestmark = pytest.mark.anyio


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port  # nothing listens on it once the socket is closed


@pytest.fixture
async def pg_catalog(pg_server: PostgresServer) -> AsyncIterator[Catalog]:
    name = f"e_{uuid.uuid4().hex[:12]}"
    url = pg_server.create_database(name)
    catalog = await Catalog.open(url)
    try:
        yield catalog
    finally:
        await catalog.close()
        pg_server.drop_database(name)


# ---- PostgreSQL unreachable -----------------------------------------------------------------


@pytest.mark.postgres
async def test_a_closed_port_is_unavailable_on_open_without_the_password() -> None:
    url = f"postgresql+asyncpg://scott:tiger-secret@127.0.0.1:{closed_port()}/catalog"
    with pytest.raises(CatalogUnavailable) as caught:
        await Catalog.open(url)
    err = caught.value
    assert "tiger-secret" not in str(err) and "scott:***@127.0.0.1" in err.url
    assert str(err) == f"catalog {err.url} unreachable: {err.reason}"
    assert "\n" not in str(err)
    assert isinstance(err.__cause__, OSError)  # chained from what the driver raised
    assert is_transient(err) and not is_conflict(err)


@pytest.mark.postgres
async def test_a_stopped_server_is_unavailable_mid_life_and_on_open(
    private_pg: PostgresServer,
) -> None:
    url = private_pg.create_database("stopped")
    catalog = await Catalog.open(url)
    try:
        await catalog.status()
        private_pg.stop_server()
        try:
            with pytest.raises(CatalogUnavailable, match="unreachable"):
                await catalog.status()
            with pytest.raises(CatalogUnavailable, match="unreachable"):
                await Catalog.open(url)
        finally:
            private_pg.start_server()
        await catalog.status()  # the same catalog works again once the server is back
    finally:
        await catalog.close()


@pytest.mark.postgres
async def test_a_backend_terminated_mid_query_is_unavailable(
    pg_server: PostgresServer, pg_catalog: Catalog
) -> None:
    async with pg_catalog.engine.connect() as conn:
        pid = (await conn.execute(text("SELECT pg_backend_pid()"))).scalar_one()

        async def terminate_soon() -> None:
            await anyio.sleep(0.5)
            await anyio.to_thread.run_sync(
                pg_server.execute, f"SELECT pg_terminate_backend({int(pid)})"
            )

        async with anyio.create_task_group() as tg:
            tg.start_soon(terminate_soon)
            with pytest.raises(CatalogUnavailable) as caught:
                await conn.execute(text("SELECT pg_sleep(30)"))
    assert "administrator command" in caught.value.reason
    await pg_catalog.status()  # the pool dropped that connection and opens a new one


@pytest.mark.postgres
async def test_an_idle_connection_terminated_is_replaced_without_an_error(
    pg_server: PostgresServer, pg_catalog: Catalog
) -> None:
    await pg_catalog.status()  # leaves a connection in the pool
    database = pg_catalog.engine.url.database
    status = pg_server.execute(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
        f"WHERE datname = '{database}' AND pid <> pg_backend_pid()"
    )
    assert status == "SELECT 1", status
    await pg_catalog.status()  # pre-ping notices, the pool reconnects: nothing to translate


# ---- PostgreSQL conflicts -------------------------------------------------------------------


async def _scratch_table(catalog: Catalog) -> None:
    async with catalog.engine.begin() as conn:
        await conn.execute(text("CREATE TABLE scratch (id INTEGER PRIMARY KEY, v INTEGER)"))
        await conn.execute(text("INSERT INTO scratch VALUES (1, 0), (2, 0)"))


@pytest.mark.postgres
async def test_a_deadlock_is_a_conflict(pg_catalog: Catalog) -> None:
    await _scratch_table(pg_catalog)
    first_locked, second_locked = anyio.Event(), anyio.Event()
    raised: list[BaseException] = []

    async def one(conn: AsyncConnection, mine: int, other: int, me: anyio.Event) -> None:
        await conn.execute(text("SET deadlock_timeout = '100ms'"))
        await conn.execute(text("UPDATE scratch SET v = 1 WHERE id = :id"), {"id": mine})
        me.set()
        await first_locked.wait()
        await second_locked.wait()
        try:
            await conn.execute(text("UPDATE scratch SET v = 1 WHERE id = :id"), {"id": other})
        except TracktiondError as exc:
            raised.append(exc)
            await conn.rollback()

    async with (
        pg_catalog.engine.connect() as a,
        pg_catalog.engine.connect() as b,
        anyio.create_task_group() as tg,
    ):
        tg.start_soon(one, a, 1, 2, first_locked)
        tg.start_soon(one, b, 2, 1, second_locked)
    [err] = raised  # PostgreSQL aborts one of the two; the other goes through
    assert isinstance(err, CatalogConflict) and "deadlock" in err.reason, err
    assert is_conflict(err) and not is_transient(err)


@pytest.mark.postgres
async def test_a_serialization_failure_is_a_conflict(pg_catalog: Catalog) -> None:
    await _scratch_table(pg_catalog)
    engine = pg_catalog.engine.execution_options(isolation_level="REPEATABLE READ")
    async with engine.connect() as reader, pg_catalog.engine.connect() as writer:
        await reader.execute(text("SELECT v FROM scratch WHERE id = 1"))  # snapshot taken
        await writer.execute(text("UPDATE scratch SET v = 2 WHERE id = 1"))
        await writer.commit()
        with pytest.raises(CatalogConflict, match="could not serialize") as caught:
            await reader.execute(text("UPDATE scratch SET v = 3 WHERE id = 1"))
        await reader.rollback()
    assert isinstance(caught.value.__cause__, Exception)


# ---- SQLite -----------------------------------------------------------------------------------


async def test_a_sqlite_file_that_cannot_be_opened_is_unavailable_with_its_path(
    tmp_path: Path,
) -> None:
    directory = tmp_path / "catalog.db"
    directory.mkdir()  # a directory where the file should be
    with pytest.raises(CatalogUnavailable, match="unable to open database file") as caught:
        await Catalog.open(f"sqlite+aiosqlite:///{directory}")
    assert str(directory) in str(caught.value)
    # aiosqlite stops a failed connection's thread without waiting for it: let it finish
    # before the test's event loop closes (else the thread finds the loop closed).
    await anyio.sleep(0.2)

    blocker = tmp_path / "not-a-dir"
    blocker.write_text("")
    inside = blocker / "state" / "catalog.db"  # its parent cannot be created
    with pytest.raises(CatalogUnavailable) as caught:
        await Catalog.open(f"sqlite+aiosqlite:///{inside}")
    assert str(inside) in str(caught.value)


async def test_a_sqlite_file_that_is_not_a_database_is_unusable(tmp_path: Path) -> None:
    path = tmp_path / "catalog.db"
    path.write_bytes(b"this is not a SQLite database, just some bytes " * 100)
    with pytest.raises(CatalogUnavailable, match="unusable: file is not a database"):
        await Catalog.open(f"sqlite+aiosqlite:///{path}")


async def test_a_locked_sqlite_database_is_unavailable(tmp_path: Path) -> None:
    path = tmp_path / "catalog.db"
    catalog = await Catalog.open(f"sqlite+aiosqlite:///{path}")
    other = sqlite3.connect(path, isolation_level=None)
    try:
        other.execute("BEGIN EXCLUSIVE")  # another process holds the write lock
        async with catalog.engine.connect() as conn:
            await conn.execute(text("PRAGMA busy_timeout = 0"))  # do not wait 60 s for it
            with pytest.raises(CatalogUnavailable, match="database is locked"):
                await conn.execute(text("CREATE TABLE scratch (id INTEGER)"))
    finally:
        other.close()
        await catalog.close()


# ---- not ours to translate ----------------------------------------------------------------


async def test_a_bad_statement_is_neither(catalog: Catalog) -> None:
    with pytest.raises(DBAPIError) as caught:
        async with catalog.engine.connect() as conn:
            await conn.execute(text("SELEC 1 FROM nowhere"))
    assert not isinstance(caught.value, CatalogError)
    assert not is_transient(caught.value) and not is_conflict(caught.value)
    await catalog.status()  # and the catalog is fine

    async with catalog.engine.begin() as conn:
        await conn.execute(text("CREATE TABLE scratch (id INTEGER PRIMARY KEY)"))
        await conn.execute(text("INSERT INTO scratch VALUES (1)"))
    with pytest.raises(DBAPIError) as caught:
        async with catalog.engine.begin() as conn:
            await conn.execute(text("INSERT INTO scratch VALUES (1)"))  # a duplicate key
    assert not isinstance(caught.value, CatalogError)
