"""A wake-up call for a claim loop that is never lost.

The stages (ingest pool, analysis, tag writing) look for work in the catalog, then sleep until
woken or until their idle poll. A wake-up that arrives while they are still looking must not be
lost, so the loop arms a fresh call *before* looking and sleeps on that one.
"""

from __future__ import annotations

import anyio


class Wakeup:
    def __init__(self) -> None:
        self._event = anyio.Event()

    def arm(self) -> None:
        """Before looking for work: wake-ups from now on end the next wait()."""
        self._event = anyio.Event()

    def set(self) -> None:
        self._event.set()

    async def wait(self, at_most: float) -> None:
        """Sleep until set() or for ``at_most`` seconds (the idle poll), whichever is first."""
        with anyio.move_on_after(at_most):
            await self._event.wait()
