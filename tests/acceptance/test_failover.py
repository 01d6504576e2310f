"""The work of a dead instance moves on within two minutes (heartbeat leases).

Two daemons share one PostgreSQL catalog. One of them is killed with SIGKILL while it analyses:
its leases are no longer renewed, run out a minute after its last heartbeat, and the survivor
(which does not restart, so it cannot tell the dead owner's leases by their pid) takes the work
over. Until the lease mechanism had heartbeats, the analysis lease was 30 minutes long.
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest
from sqlalchemy import select

from tests.acceptance.test_daemon import (
    Daemons,
    daemon_env,
    free_port,
    pg_catalog,  # noqa: F401 (a fixture)
    wait_until,
    write_config,
)
from tests.acceptance.test_daemon import daemons as daemons  # the fixture
from tests.support import audiogen
from tracktiond.catalog import Catalog
from tracktiond.catalog.models import analyses

pytestmark = pytest.mark.anyio

STREAMS = 10
FAILOVER_LIMIT = 120.0  # seconds: what DESIGN invariant 1 promises


def _config(path: Path, root: Path, port: int) -> Path:
    return write_config(path, roots=[root], port=port, workers=1, analysis=True)


async def _leases(catalog: Catalog) -> dict[str, str]:
    async with catalog.engine.connect() as conn:
        rows = await conn.execute(
            select(analyses.c.audio_hash, analyses.c.lease_owner).where(
                analyses.c.lease_owner.is_not(None)
            )
        )
        return {r.audio_hash: r.lease_owner for r in rows}


async def _done(catalog: Catalog) -> set[str]:
    async with catalog.engine.connect() as conn:
        rows = await conn.execute(select(analyses.c.audio_hash).where(analyses.c.state == "done"))
        return {r.audio_hash for r in rows}


async def test_analysis_of_a_killed_instance_moves_on_within_two_minutes(
    tmp_path: Path,
    pg_catalog: tuple[str, Catalog],  # noqa: F811
    library: Path,
    daemons: Daemons,
) -> None:
    db_url, catalog = pg_catalog
    for i in range(STREAMS):
        audiogen.make_audio(library / f"set{i}.flac", seconds=45.0, freq=180.0 + 50 * i, seed=i)
    pair = []
    for name in ("a", "b"):
        port = free_port()
        config = _config(tmp_path / f"etc-{name}" / "tracktiond.toml", library, port)
        pair.append(daemons.start(config, daemon_env(tmp_path / name, db_url), port, f"d-{name}"))
    victim, survivor = pair
    for d in pair:
        d.wait_ready(60)

    async def both_analysing() -> bool:
        owners = {owner.split(":")[1] for owner in (await _leases(catalog)).values()}
        return {str(victim.pid), str(survivor.pid)} <= owners

    await wait_until(both_analysing, 120, "both daemons holding an analysis lease", *pair)
    held = {h for h, o in (await _leases(catalog)).items() if o.split(":")[1] == str(victim.pid)}
    os.kill(victim.pid, signal.SIGKILL)
    killed_at = time.monotonic()
    victim.wait(10)

    async def taken_over() -> bool:
        return held <= await _done(catalog)

    await wait_until(taken_over, FAILOVER_LIMIT + 30, lambda: f"leases now {held}", survivor)
    failover = time.monotonic() - killed_at
    print(f"analysis of the killed instance done by the survivor {failover:.0f} s after the kill")
    assert failover <= FAILOVER_LIMIT, f"failover took {failover:.0f} s"

    async def all_done() -> bool:
        return len(await _done(catalog)) == STREAMS

    await wait_until(all_done, 120, "every stream analysed", survivor)
    assert await _leases(catalog) == {} or all(
        o.split(":")[1] == str(survivor.pid) for o in (await _leases(catalog)).values()
    )
