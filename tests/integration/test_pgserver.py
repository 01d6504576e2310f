"""The throw-away PostgreSQL server the test suite runs on (tests/support/pgserver.py)."""

from __future__ import annotations

import asyncio
import os
import socket
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from tests.support import pgserver
from tests.support.pgserver import PgBinaries, PostgresServer, find_binaries

pytestmark = pytest.mark.postgres


@pytest.fixture(scope="module")
def server() -> Iterator[PostgresServer]:
    # Its own server, not the session's: these tests stop and restart it.
    with PostgresServer() as pg:
        yield pg


async def _fetchval(dsn: str, sql: str) -> Any:
    conn = await asyncpg.connect(dsn, timeout=10)
    try:
        return await conn.fetchval(sql)
    finally:
        await conn.close()


def fetchval(server: PostgresServer, sql: str, dbname: str = "postgres") -> Any:
    return asyncio.run(_fetchval(server.libpq_dsn(dbname), sql))


def _uid_of(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("Uid:"):
            return int(line.split()[1])
    raise AssertionError(f"no Uid line for pid {pid}")


def test_find_binaries_finds_the_server_programs() -> None:
    found = find_binaries()
    assert found.initdb.name == "initdb"
    assert found.postgres.name == "postgres"
    assert os.access(found.initdb, os.X_OK)
    assert os.access(found.postgres, os.X_OK)


def test_missing_binaries_fail_loudly_with_an_install_hint(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.setattr(pgserver, "DEBIAN_ROOT", tmp_path / "no-postgresql")
    with pytest.raises(RuntimeError, match=r"not found.*apt-get install postgresql"):
        find_binaries()
    with pytest.raises(RuntimeError, match="apt-get install postgresql"):
        PostgresServer().start()


def test_dsn_points_at_a_listening_loopback_port(server: PostgresServer) -> None:
    assert server.dsn("catalog") == f"postgresql+asyncpg://postgres@127.0.0.1:{server.port}/catalog"
    assert server.libpq_dsn() == f"postgresql://postgres@127.0.0.1:{server.port}/postgres"
    with socket.create_connection(("127.0.0.1", server.port), timeout=5):
        pass


def test_select_one_over_asyncpg(server: PostgresServer) -> None:
    assert fetchval(server, "select 1") == 1


def test_dsn_works_with_sqlalchemy(server: PostgresServer) -> None:
    async def check() -> Any:
        engine = create_async_engine(server.dsn("postgres"))
        try:
            async with engine.connect() as conn:
                return (await conn.execute(text("select 1"))).scalar_one()
        finally:
            await engine.dispose()

    assert asyncio.run(check()) == 1


def test_throwaway_settings_and_unprivileged_user(server: PostgresServer) -> None:
    for name in ("fsync", "full_page_writes", "synchronous_commit"):
        assert fetchval(server, f"show {name}") == "off"
    assert fetchval(server, "show listen_addresses") == "127.0.0.1"
    assert fetchval(server, "show unix_socket_directories") == str(server.socket_dir)
    assert fetchval(server, "select current_user") == "postgres"
    assert server.pid is not None
    uid = _uid_of(server.pid)
    if os.geteuid() == 0:
        assert uid != 0
        assert server.base_dir.stat().st_uid == uid
    else:
        assert uid == os.geteuid()


def test_create_and_drop_database(server: PostgresServer) -> None:
    dsn = server.create_database("t_create")
    assert dsn == server.dsn("t_create")
    assert fetchval(server, "select current_database()", dbname="t_create") == "t_create"

    server.drop_database("t_create")
    assert fetchval(server, "select count(*) from pg_database where datname = 't_create'") == 0
    server.drop_database("t_create")  # IF EXISTS: a second drop is fine


def test_drop_database_disconnects_its_clients(server: PostgresServer) -> None:
    server.create_database("t_busy")

    async def hold_then_drop() -> None:
        conn = await asyncpg.connect(server.libpq_dsn("t_busy"), timeout=10)
        try:
            server.drop_database("t_busy")  # synchronous API, called from a running loop
        finally:
            conn.terminate()

    asyncio.run(hold_then_drop())
    assert fetchval(server, "select count(*) from pg_database where datname = 't_busy'") == 0


def test_create_database_from_template(server: PostgresServer) -> None:
    server.create_database("t_template")
    server.execute("create table t (x int); insert into t values (42)", dbname="t_template")
    server.create_database("t_copy", template="t_template")
    try:
        assert fetchval(server, "select x from t", dbname="t_copy") == 42
    finally:
        server.drop_database("t_copy")
        server.drop_database("t_template")


def test_stop_and_start_server_keep_port_and_data(server: PostgresServer) -> None:
    server.create_database("t_outage")
    server.execute("create table t (x text); insert into t values ('kept')", dbname="t_outage")
    port = server.port

    server.stop_server()
    assert not server.is_running
    with pytest.raises(OSError):
        asyncio.run(_fetchval(server.libpq_dsn("t_outage"), "select 1"))

    server.start_server()
    assert server.is_running
    assert server.port == port
    assert fetchval(server, "select x from t", dbname="t_outage") == "kept"
    server.drop_database("t_outage")


def test_outage_can_be_simulated_from_inside_an_event_loop(server: PostgresServer) -> None:
    async def outage() -> Any:
        conn = await asyncpg.connect(server.libpq_dsn(), timeout=10)
        server.stop_server()
        with pytest.raises((asyncpg.PostgresError, asyncpg.InterfaceError, OSError)):
            await conn.fetchval("select 1")
        conn.terminate()
        server.start_server()
        return await _fetchval(server.libpq_dsn(), "select 1")

    assert asyncio.run(outage()) == 1


def test_context_manager_removes_everything() -> None:
    with PostgresServer() as pg:
        base, pid = pg.base_dir, pg.pid
        assert base.is_dir()
        assert pid is not None
        assert fetchval(pg, "select 1") == 1
    assert not base.exists()
    assert not Path(f"/proc/{pid}").exists()
    assert not pg.is_running
    pg.stop()  # idempotent
    with pytest.raises(RuntimeError, match="start"):
        pg.start_server()


def test_startup_failure_reports_the_server_log_and_cleans_up() -> None:
    # A "postgres" that dies at once: the error must say so and show what it printed.
    with tempfile.TemporaryDirectory(dir="/tmp") as scratch:
        fake = Path(scratch) / "postgres"
        fake.write_text("#!/bin/sh\necho 'FATAL:  simulated startup failure' >&2\nexit 3\n")
        fake.chmod(0o755)
        Path(scratch).chmod(0o755)  # readable by the unprivileged user when we are root
        pg = PostgresServer(binaries=PgBinaries(initdb=find_binaries().initdb, postgres=fake))
        with pytest.raises(RuntimeError, match="exited with code 3") as excinfo:
            pg.start()
    assert "simulated startup failure" in str(excinfo.value)
    assert not pg.is_running
    with pytest.raises(RuntimeError, match="not started"):
        _ = pg.base_dir
