"""The analysis stage of the daemon: claims audio streams from the catalog and analyses them.

The queue is the catalog's ``analyses`` table (one row per distinct audio stream, so identical
copies and tag edits never cost a second analysis); the work itself runs in the crash-isolated
worker processes of tracktiond.analysis.pool. Results land in ``metadata`` rows (source
"analysis") of every recording with that audio.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from tracktiond.analysis.pool import AnalysisFailed, AnalysisPool
from tracktiond.analysis.settings import ANALYSIS_VERSION, AnalysisSettings
from tracktiond.catalog.leases import DEFAULT_BACKOFF, Backoff
from tracktiond.catalog.store import AnalysisJob, Catalog
from tracktiond.catalog.work import AnalysisClaim, AnalysisQueue
from tracktiond.config import AnalysisConfig
from tracktiond.errors import FailureClass
from tracktiond.pipeline.stage import Finished, Stage, StageEvent

log = logging.getLogger(__name__)


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


@dataclass(frozen=True, slots=True)
class Analysed:
    """What analysing one stream gave: results, or the failure; and the settings used."""

    settings: AnalysisSettings
    results: dict[str, Any] | None = None
    metadata: dict[str, str] | None = None
    audio_seconds: float = 0.0
    failure: tuple[FailureClass, str] | None = None


class AnalysisStage(Stage[AnalysisJob, Analysed]):
    name = "analysis"

    def __init__(
        self,
        catalog: Catalog,
        config: AnalysisConfig,
        *,
        cpus: int,
        backoff: Backoff = DEFAULT_BACKOFF,
        pool: AnalysisPool | None = None,
    ) -> None:
        self.catalog = catalog
        self.config = config
        self.settings = settings_from_config(config)
        self.concurrency = worker_count(config, cpus)
        self.backoff = backoff
        self.roots: list[str] = []  # analyse only streams held under these (a one-shot scan)
        self.pool = pool or AnalysisPool(
            self.concurrency,
            memory_limit_bytes=config.memory_limit_mb * 1024 * 1024,
            timeout_base=config.timeout_base,
            timeout_factor=config.timeout_factor,
        )

    @property
    def queue(self) -> AnalysisQueue:
        return self.catalog.analysis_queue

    def reconfigure(self, config: AnalysisConfig) -> None:
        """New settings apply to the next claims; finished analyses with other settings are
        re-analysed lazily (their settings fingerprint no longer matches)."""
        self.config = config
        self.settings = settings_from_config(config)

    def claim_context(self) -> AnalysisClaim:
        return AnalysisClaim(self.settings.fingerprint(), tuple(self.roots))

    async def claim(self, owner: str, limit: int, lease: timedelta) -> list[AnalysisJob]:
        return await self.catalog.analysis_queue.claim(owner, limit, self.claim_context(), lease)

    async def drained(self) -> bool:
        """Nothing left to analyse under the stage's roots (a one-shot run is done)."""
        return await self.catalog.analysis_queue.due_count(self.claim_context()) == 0

    def describe(self, job: AnalysisJob) -> tuple[int | str, str]:
        return job.audio_hash, job.path

    async def process(self, job: AnalysisJob) -> Analysed:
        settings = self.settings
        try:
            result = await self.pool.analyze(job.path, settings, job.duration)
        except AnalysisFailed as exc:
            log.warning(
                "analysis of %s failed: %s",
                job.path,
                exc.reason,
                extra={
                    "path": job.path,
                    "job_id": job.audio_hash,
                    "failure_class": exc.failure_class.value,
                },
            )
            return Analysed(settings, failure=(exc.failure_class, exc.reason))
        metadata = result.to_metadata()
        return Analysed(
            settings,
            results={"result": result.to_dict(), "metadata": metadata},
            metadata=metadata,
            audio_seconds=float(result.duration),
        )

    def crashed(self, job: AnalysisJob, exc: Exception) -> Analysed:
        reason = f"internal error: {type(exc).__name__}: {exc}"
        return Analysed(self.settings, failure=(FailureClass.BUG, reason))

    async def record(
        self, owner: str, done: Sequence[Finished[AnalysisJob, Analysed]]
    ) -> list[StageEvent]:
        events = []
        for f in done:
            job, a = f.job, f.result
            state = await self.catalog.record_analysis(
                job,
                owner,
                fingerprint=a.settings.fingerprint(),
                version=ANALYSIS_VERSION,
                results=a.results,
                metadata=a.metadata,
                failure=a.failure,
                elapsed=f.seconds,
                max_attempts=self.config.max_attempts,
                backoff=self.backoff,
            )
            extra = {"path": job.path, "job_id": job.audio_hash}
            if state == "lost":
                log.warning(
                    "analysis of %s finished after its lease went to another worker; "
                    "its result is dropped",
                    job.path,
                    extra=extra,
                )
            elif a.failure is None:
                log.info(
                    "analysed %s in %.1f s (%.0fx real time)",
                    job.path,
                    f.seconds,
                    a.audio_seconds / f.seconds if f.seconds > 0 else 0.0,
                    extra=extra,
                )
            events.append(
                StageEvent(
                    stage=self.name,
                    job_id=job.audio_hash,
                    path=job.path,
                    outcome=state,
                    seconds=f.seconds,
                    failure_class=a.failure[0].value if a.failure else None,
                    reason=a.failure[1] if a.failure else None,
                    final=state != "pending",
                    audio_seconds=a.audio_seconds,
                )
            )
        return events

    async def aclose(self) -> None:
        await self.pool.aclose()
