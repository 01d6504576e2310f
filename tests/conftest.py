"""Shared fixtures: the catalog backends (SQLite file, real PostgreSQL) and temp libraries.

Every catalog test runs against both backends. The PostgreSQL server is started once per test
session from the machine's binaries (tests/support/pgserver.py); if it cannot start, the tests
that need it fail with the reason: they are never skipped.

Markers follow the directories: every test under tests/unit is marked ``unit``, under
tests/integration ``integration``, under tests/acceptance ``acceptance``; every test that needs
the PostgreSQL server (the ``postgres`` parameter of ``db_url``/``catalog``, or ``pg_server``
itself) is marked ``postgres``. So ``-m unit`` or ``-m "not postgres"`` select what they say.

PostgreSQL databases are cheap: one template database is migrated to the newest schema once per
session, and each test's database is a ``CREATE DATABASE ... TEMPLATE`` copy of it (a file copy
on the server, no migration run per test).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
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
#: The session's migrated template database on the PostgreSQL server.
PG_TEMPLATE = "tracktiond_template"
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
    with PostgresServer() as server:
        yield server


@pytest.fixture(scope="module")
def private_pg() -> Iterator[PostgresServer]:
    """A server of the module's own, for tests that stop it without disturbing the session's."""
    with PostgresServer() as server:
        yield server


def _migrate(url: str) -> None:
    """Bring the catalog at ``url`` to the newest schema (from sync code, inside a loop or not)."""

    async def run() -> None:
        catalog = await Catalog.open(url)
        await catalog.close()

    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        pool.submit(asyncio.run, run()).result()


@pytest.fixture(scope="session")
def pg_template(pg_server: PostgresServer) -> str:
    """The name of a database migrated once per session, to copy with CREATE DATABASE TEMPLATE.

    Frozen once migrated (IS_TEMPLATE, no connections): a copy needs the template to have no
    open session, and nothing may change it after the first copy.
    """
    pg_server.create_database(PG_TEMPLATE)
    _migrate(pg_server.dsn(PG_TEMPLATE))
    pg_server.execute(
        f'ALTER DATABASE "{PG_TEMPLATE}" WITH IS_TEMPLATE true ALLOW_CONNECTIONS false'
    )
    return PG_TEMPLATE


class DatabaseCopies:
    """Test databases copied from the template, the next one made ahead in a background thread.

    A copy costs the server ~0.15 s (it copies the template's files, system catalogs included);
    made while the previous test runs, it costs a test nothing. A copy made ahead that failed
    (a test stopped the server to simulate an outage) is simply made again when it is needed.
    """

    def __init__(self, server: PostgresServer, template: str) -> None:
        self._server = server
        self._template = template
        self._executor = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="pg-copy")
        self._ahead: concurrent.futures.Future[str] | None = None

    def _copy(self) -> str:
        name = f"t_{uuid.uuid4().hex[:12]}"
        self._server.create_database(name, template=self._template)
        return name

    def take(self) -> str:
        """A new database, already at the newest schema, that no other test has seen."""
        ahead, self._ahead = self._ahead, None
        name: str | None = None
        if ahead is not None:
            try:
                name = ahead.result()
            except Exception:
                name = None
        if name is None:
            name = self._copy()
        self._ahead = self._executor.submit(self._copy)
        return name

    def close(self) -> None:
        self._executor.shutdown(wait=True)


@pytest.fixture(scope="session")
def pg_databases(pg_server: PostgresServer, pg_template: str) -> Iterator[DatabaseCopies]:
    copies = DatabaseCopies(pg_server, pg_template)
    try:
        yield copies
    finally:
        copies.close()


@pytest.fixture(params=BACKENDS)
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh catalog database URL on each backend.

    SQLite: a path where nothing exists yet (the first open creates and migrates it).
    PostgreSQL: a new database, already at the newest schema (a copy of ``pg_template``).
    """
    if request.param == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp_path / 'state' / 'catalog.db'}"
        return
    server: PostgresServer = request.getfixturevalue("pg_server")
    copies: DatabaseCopies = request.getfixturevalue("pg_databases")
    name = copies.take()
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
