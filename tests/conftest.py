"""Shared fixtures: the catalog backends (SQLite file, real PostgreSQL) and temp libraries.

Every catalog test runs against both backends. The PostgreSQL server is started once per test
session from the machine's binaries (tests/support/pgserver.py); if it cannot start, the tests
that need it fail with the reason: they are never skipped.

Markers follow the directories: every test under tests/unit is marked ``unit``, under
tests/integration ``integration``, under tests/acceptance ``acceptance``; every test that needs
the PostgreSQL server (the ``postgres`` parameter of ``db_url``/``catalog``, or ``pg_server``
itself) is marked ``postgres``. So ``-m unit`` or ``-m "not postgres"`` select what they say.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from tests.support.pgserver import PostgresServer
from tracktiond.catalog import Catalog

BACKENDS = (
    pytest.param("sqlite"),
    pytest.param("postgres", marks=pytest.mark.postgres),
)
#: The marker each top-level test directory gives its tests.
DIRECTORY_MARKERS = ("unit", "integration", "acceptance")
_TESTS_DIR = Path(__file__).parent


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        try:
            top = item.path.relative_to(_TESTS_DIR).parts[0]
        except ValueError:  # collected from outside tests/
            continue
        if top in DIRECTORY_MARKERS:
            item.add_marker(top)
        # The fixture's own postgres parameter carries the marker; this also covers a test that
        # picks the backend itself (parametrize("db_url", ["postgres"], indirect=True)) or asks
        # for the server directly.
        callspec = getattr(item, "callspec", None)
        on_postgres = callspec is not None and callspec.params.get("db_url") == "postgres"
        if on_postgres or "pg_server" in getattr(item, "fixturenames", ()):
            item.add_marker("postgres")


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
