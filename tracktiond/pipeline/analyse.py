"""The analysis stage of the daemon: claims audio streams from the catalog and analyses them.

The queue is the catalog's ``analyses`` table (one row per distinct audio stream, so identical
copies and tag edits never cost a second analysis); the work itself runs in the crash-isolated
worker processes of tracktiond.analysis.pool. Results land in ``metadata`` rows (source
"analysis") of every recording with that audio.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from datetime import timedelta
from functools import partial
from typing import Any

import anyio

from tracktiond.analysis.pool import AnalysisFailed, AnalysisPool
from tracktiond.analysis.settings import ANALYSIS_VERSION, AnalysisSettings
from tracktiond.catalog.health import CatalogHealth, guarded
from tracktiond.catalog.store import AnalysisJob, Catalog
from tracktiond.config import AnalysisConfig
from tracktiond.errors import FailureClass
from tracktiond.pipeline.wakeup import Wakeup

log = logging.getLogger(__name__)

LEASE = timedelta(minutes=30)

# (job, state, seconds, failure class or None, audio seconds)
ResultHook = Callable[[AnalysisJob, str, float, str | None, float], None]


def settings_from_config(config: AnalysisConfig) -> AnalysisSettings:
    return AnalysisSettings(
        bpm_min=config.bpm_min,
        bpm_max=config.bpm_max,
        long_recording_seconds=config.long_recording_seconds,
        curve_window_seconds=config.curve_window_seconds,
        key_profile=config.key_profile,
        models_dir=str(config.models_dir) if config.models_dir else None,
    )


def worker_count(config: AnalysisConfig, cpus: int) -> int:
    return config.workers or max(1, cpus // 2)


class AnalysisStage:
    def __init__(
        self,
        catalog: Catalog,
        config: AnalysisConfig,
        *,
        owner: str,
        cpus: int,
        health: CatalogHealth | None = None,
        on_result: ResultHook | None = None,
        idle_poll: float = 5.0,
    ) -> None:
        self.catalog = catalog
        self.config = config
        self.settings = settings_from_config(config)
        self.owner = owner
        self.concurrency = worker_count(config, cpus)
        self.health = health
        self.on_result = on_result
        self.idle_poll = idle_poll
        self.busy = 0
        self._wake = Wakeup()
        self._accepting = True
        self.pool = AnalysisPool(
            self.concurrency,
            memory_limit_bytes=config.memory_limit_mb * 1024 * 1024,
            timeout_base=config.timeout_base,
            timeout_factor=config.timeout_factor,
        )

    def wake(self) -> None:
        self._wake.set()

    def stop_claiming(self) -> None:
        self._accepting = False
        self._wake.set()

    def reconfigure(self, config: AnalysisConfig) -> None:
        """New settings apply to the next claims; finished analyses with other settings are
        re-analysed lazily (their settings fingerprint no longer matches)."""
        self.config = config
        self.settings = settings_from_config(config)
        self._wake.set()

    async def _db(self, fn: Callable[[], Any]) -> Any:
        return await guarded(self.health, fn)

    async def run(self) -> None:
        limiter = anyio.CapacityLimiter(self.concurrency)
        try:
            async with anyio.create_task_group() as tg:
                while self._accepting:
                    # fresh event before claiming: a wake() during the claim is not lost
                    self._wake.arm()
                    free = self.concurrency - self.busy
                    jobs: list[AnalysisJob] = []
                    if free > 0:
                        jobs = await self._db(
                            partial(
                                self.catalog.claim_analyses,
                                self.owner,
                                free,
                                LEASE,
                                self.settings.fingerprint(),
                            )
                        )
                    for job in jobs:
                        self.busy += 1
                        tg.start_soon(self._analyse, job, limiter)
                    if jobs:
                        continue
                    await self._wake.wait(self.idle_poll)
        finally:
            with anyio.CancelScope(shield=True):
                await self.pool.aclose()

    async def _analyse(self, job: AnalysisJob, limiter: anyio.CapacityLimiter) -> None:
        settings = self.settings
        extra = {"path": job.path, "job_id": job.audio_hash}
        started = time.monotonic()
        failure: tuple[FailureClass, str] | None = None
        results: dict[str, Any] | None = None
        metadata: dict[str, str] | None = None
        try:
            async with limiter:
                result = await self.pool.analyze(job.path, settings, job.duration)
            results = {"result": result.to_dict(), "metadata": result.to_metadata()}
            metadata = result.to_metadata()
            audio_seconds = float(result.duration)
        except AnalysisFailed as exc:
            failure = (exc.failure_class, exc.reason)
            audio_seconds = 0.0
            log.warning(
                "analysis of %s failed: %s",
                job.path,
                exc.reason,
                extra={**extra, "failure_class": exc.failure_class.value},
            )
        finally:
            self.busy -= 1
            self._wake.set()  # a worker is free: claim the next job now
        elapsed = time.monotonic() - started
        with anyio.CancelScope(shield=True):
            state = await self._db(
                partial(
                    self.catalog.record_analysis,
                    job,
                    self.owner,
                    fingerprint=settings.fingerprint(),
                    version=ANALYSIS_VERSION,
                    results=results,
                    metadata=metadata,
                    failure=failure,
                    elapsed=elapsed,
                    max_attempts=self.config.max_attempts,
                )
            )
        if failure is None:
            log.info(
                "analysed %s in %.1f s (%.0fx real time)",
                job.path,
                elapsed,
                audio_seconds / elapsed if elapsed > 0 else 0.0,
                extra=extra,
            )
        if self.on_result is not None:
            self.on_result(
                job, state, elapsed, failure[0].value if failure else None, audio_seconds
            )
