"""Shared fixtures: the catalog backends (SQLite file, real PostgreSQL) and temp libraries.

Every catalog test runs against both backends. The PostgreSQL server is started once per test
session from the machine's binaries (tests/support/pgserver.py); if it cannot start, the tests
that need it fail with the reason: they are never skipped.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from tests.support.pgserver import PostgresServer
from tracktiond.catalog import Catalog

BACKENDS = ("sqlite", "postgres")


@pytest.fixture(scope="session")
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="session")
def pg_server() -> Iterator[PostgresServer]:
    server = PostgresServer()
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(params=BACKENDS)
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh, empty catalog database URL on each backend."""
    if request.param == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp_path / 'state' / 'catalog.db'}"
        return
    server: PostgresServer = request.getfixturevalue("pg_server")
    name = f"t_{uuid.uuid4().hex[:12]}"
    server.create_database(name)
    try:
        yield server.dsn(name)
    finally:
        server.drop_database(name)


@pytest.fixture
async def catalog(db_url: str) -> AsyncIterator[Catalog]:
    cat = await Catalog.open(db_url)
    try:
        yield cat
    finally:
        await cat.close()


@pytest.fixture
def library(tmp_path: Path) -> Path:
    root = tmp_path / "music"
    root.mkdir()
    return root


@pytest.fixture
def cli_env(tmp_path: Path, db_url: str) -> dict[str, str]:
    """Environment for running the `tracktiond` CLI as a subprocess against db_url."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("TRACKTIOND_")}
    env["XDG_STATE_HOME"] = str(tmp_path / "xdg-state")
    env["XDG_CONFIG_HOME"] = str(tmp_path / "xdg-config")
    env["TRACKTIOND_DATABASE_URL"] = db_url
    return env
