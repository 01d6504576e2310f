"""PostgreSQL URLs as hosted providers hand them out: libpq parameters in the query.

``?sslmode=require``, ``connect_timeout=``, ``application_name=`` used to reach asyncpg as
keyword arguments and crash every command with a ``TypeError``; now they are translated for
asyncpg, and a parameter we cannot honour is refused by name when the configuration is read.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import text

from tracktiond.catalog import Catalog
from tracktiond.config import load_config
from tracktiond.errors import CatalogUnavailable, ConfigError

pytestmark = pytest.mark.anyio


@pytest.mark.parametrize("db_url", ["postgres"], indirect=True)
async def test_libpq_parameters_are_honoured(db_url: str) -> None:
    url = (
        f"{db_url}?sslmode=prefer&connect_timeout=7&application_name=tracktiond-test"
        "&options=-c%20statement_timeout%3D12345"
    )
    catalog = await Catalog.open(url)
    try:
        async with catalog.engine.connect() as conn:
            name = (await conn.execute(text("SHOW application_name"))).scalar_one()
            timeout = (await conn.execute(text("SHOW statement_timeout"))).scalar_one()
            ssl = (
                await conn.execute(text("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()"))
            ).scalar_one()
    finally:
        await catalog.close()
    assert name == "tracktiond-test"
    assert timeout == "12345ms"
    assert ssl is False  # prefer: the test server has no certificate, so plain is accepted


@pytest.mark.parametrize("db_url", ["postgres"], indirect=True)
async def test_sslmode_require_against_a_server_without_tls_is_a_clear_catalog_error(
    db_url: str,
) -> None:
    with pytest.raises(CatalogUnavailable) as caught:
        await Catalog.open(f"{db_url}?sslmode=require&connect_timeout=5")
    message = str(caught.value)
    assert "TypeError" not in message and "unexpected keyword" not in message, message
    assert "SSL" in message or "ssl" in message, message


def test_unknown_parameter_is_refused_by_name_in_the_config(tmp_path: Path) -> None:
    config = tmp_path / "tracktiond.toml"
    config.write_text('[database]\nurl = "postgresql://u:p@db.example/tracktiond?keepalives=1"\n')
    with pytest.raises(ConfigError) as caught:
        load_config(config)
    assert "keepalives" in str(caught.value) and "sslmode" in str(caught.value)


def test_connect_timeout_must_be_seconds(tmp_path: Path) -> None:
    config = tmp_path / "tracktiond.toml"
    config.write_text(
        '[database]\nurl = "postgresql://u@db.example/tracktiond?connect_timeout=soon"\n'
    )
    with pytest.raises(ConfigError, match="connect_timeout"):
        load_config(config)


def test_the_url_from_the_environment_is_checked_too(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "no-config"))
    monkeypatch.setenv(
        "TRACKTIOND_DATABASE_URL", "postgresql://u@db.example/t?sslmode=require&foo=1"
    )
    with pytest.raises(ConfigError, match="foo"):
        load_config(None)
