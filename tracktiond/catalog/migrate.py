"""Alembic migrations, run programmatically (no alembic.ini: the package carries its scripts).

Every command that needs the catalog runs ``upgrade()`` first. When the schema is already at
``HEAD`` (the common case) that costs one query: alembic itself is imported only when there is
something to migrate, which keeps CLI start-up short.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import text
from sqlalchemy.engine import Connection
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine

if TYPE_CHECKING:
    from alembic.config import Config as AlembicConfig

MIGRATIONS_DIR = Path(__file__).with_name("migrations")

# The newest revision in migrations/versions; tests check it against alembic's own view.
HEAD = "0010"


def alembic_config(connection: Connection | None = None) -> AlembicConfig:
    from alembic.config import Config as AlembicConfig

    cfg = AlembicConfig()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    cfg.attributes["connection"] = connection
    return cfg


def head_revision() -> str:
    from alembic.script import ScriptDirectory

    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    assert head is not None
    return head


async def current_revision(engine: AsyncEngine) -> str | None:
    def _current(conn: Connection) -> str | None:
        from alembic.runtime.migration import MigrationContext

        return MigrationContext.configure(conn).get_current_revision()

    async with engine.connect() as conn:
        return await conn.run_sync(_current)


async def _recorded_revision(engine: AsyncEngine) -> str | None:
    try:
        async with engine.connect() as conn:
            row = (await conn.execute(text("SELECT version_num FROM alembic_version"))).first()
    except DBAPIError as exc:
        if _missing_table(exc):
            return None  # a new catalog
        raise
    return str(row[0]) if row else None


def _missing_table(exc: DBAPIError) -> bool:
    message = str(exc.orig or exc).lower()
    return "no such table" in message or "does not exist" in message


async def upgrade(engine: AsyncEngine, revision: str = "head") -> None:
    if revision == "head" and await _recorded_revision(engine) == HEAD:
        return

    def _upgrade(conn: Connection) -> None:
        from alembic import command

        command.upgrade(alembic_config(conn), revision)

    async with engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            # Several instances may start at once against one database: one migrates, the
            # others wait for it and then find nothing left to do.
            await conn.exec_driver_sql("SELECT pg_advisory_xact_lock(74726163)")
        await conn.run_sync(_upgrade)
