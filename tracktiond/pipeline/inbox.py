"""The inbox flow in the daemon: new files in ``[organise] inbox`` roots, once cataloged (and
analysed, when the patterns use analysis fields), are moved into the library by the patterns.

Opt-in (``[organise] auto``). The queue is ``organise_queue`` (catalog.work.OrganiseQueue); each
job plans one file with its sidecars (and the directory's cover art with the last audio file to
leave), stores the plan (kind "inbox", undoable with ``tracktiond organise undo PLAN``) and
applies it through the journal (tracktiond.organise.journal). The journal moves the file's
catalog row in the transaction that records the move, so the watcher's events for the old and
the new path find nothing new: no re-hash, no re-analysis, the recording, its analysis, its
tracklist and its graph node stay. A moved file is outside every inbox, so it is never due again;
an undone one is marked so, until it changes.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta

import anyio

from tracktiond.catalog.leases import Backoff
from tracktiond.catalog.models import utcnow
from tracktiond.catalog.plans import InboxClaim, InboxJob, StepState
from tracktiond.catalog.store import Catalog
from tracktiond.catalog.work import OrganiseQueue
from tracktiond.organise.journal import Journal, PlanBusy, apply_plan
from tracktiond.organise.plans import Planner
from tracktiond.organise.settings import Settings
from tracktiond.pipeline.stage import Finished, Stage, StageEvent

log = logging.getLogger(__name__)

RETRY_BACKOFF = Backoff(base=60.0, cap=1800.0)


@dataclass(frozen=True, slots=True)
class InboxResult:
    """ "moved", "skipped" (with the planner's reason), "retry" or "failed"."""

    outcome: str
    reason: str | None = None
    plan_id: int | None = None
    target: str | None = None


def journal_for(settings: Settings) -> Journal:
    return Journal(protected=frozenset(settings.protected_dirs), batch=settings.journal_batch)


class InboxStage(Stage[InboxJob, InboxResult]):
    name = "organise"
    shield_process = True  # a move in progress is finished and journalled, never torn

    def __init__(self, catalog: Catalog, settings: Settings, *, max_attempts: int = 3) -> None:
        self.catalog = catalog
        self.settings = settings
        self.max_attempts = max_attempts
        self.owner = ""

    @property
    def queue(self) -> OrganiseQueue:
        return self.catalog.organise_queue

    def reconfigure(self, settings: Settings) -> None:
        self.settings = settings

    async def claim(self, owner: str, limit: int, lease: timedelta) -> list[InboxJob]:
        self.owner = owner
        await self.catalog.enqueue_inbox(self.settings.inboxes)
        context = InboxClaim(self.settings.inboxes, self.settings.uses_analysis)
        return await self.catalog.organise_queue.claim(owner, limit, context, lease)

    async def process(self, job: InboxJob) -> InboxResult:
        planner = Planner(self.settings)
        async for chunk in self.catalog.organise_sources([job.path]):
            await anyio.to_thread.run_sync(planner.add_all, chunk)
        draft = await anyio.to_thread.run_sync(planner.finish)
        if not any(s.state == StepState.PLANNED for s in draft.steps):
            skipped = [s.reason for s in draft.steps if s.kind == "audio" and s.reason]
            reason = skipped[0] if skipped else "already in place"
            return InboxResult("skipped", reason)
        summary = {"planned": draft.summary(), "options": self.settings.options}
        plan_id = await self.catalog.create_plan(
            "inbox", [job.path], draft.steps, summary, self.owner
        )
        try:
            await apply_plan(self.catalog, plan_id, self.owner, journal_for(self.settings))
        except PlanBusy as exc:
            return InboxResult("retry", str(exc), plan_id)
        steps = await self.catalog.plan_steps(plan_id)
        audio = next((s for s in steps if s.kind == "audio" and s.file_id == job.file_id), None)
        if audio is not None and audio.state == StepState.DONE:
            return InboxResult("moved", None, plan_id, audio.target)
        why = (audio.reason if audio is not None else None) or "not moved"
        return InboxResult("retry", why, plan_id)

    def crashed(self, job: InboxJob, exc: Exception) -> InboxResult:
        return InboxResult("failed", f"internal error: {type(exc).__name__}: {exc}")

    async def record(
        self, owner: str, done: Sequence[Finished[InboxJob, InboxResult]]
    ) -> list[StageEvent]:
        events = []
        for f in done:
            job, result = f.job, f.result
            outcome = result.outcome
            if outcome in ("moved", "skipped"):
                values = OrganiseQueue.done()
                state = "done" if outcome == "moved" else "skipped"
            else:
                attempt = OrganiseQueue.failed(
                    job.attempts,
                    retryable=outcome == "retry",
                    max_attempts=self.max_attempts,
                    now=utcnow(),
                    backoff=RETRY_BACKOFF,
                )
                values = attempt.values
                state = "pending" if attempt.retry else "failed"
                outcome = "retry" if attempt.retry else "failed"
            kept = await self.catalog.record_inbox(
                job.file_id, owner, state, result.reason, result.plan_id, values
            )
            extra = {"path": job.path, "job_id": job.file_id, "plan": result.plan_id}
            if not kept:
                outcome = "lost"
            elif outcome == "moved":
                log.info("organised %s -> %s", job.path, result.target, extra=extra)
            elif outcome in ("skipped", "failed"):
                log.warning("not organised %s: %s", job.path, result.reason, extra=extra)
            else:
                log.info("will organise %s later: %s", job.path, result.reason, extra=extra)
            events.append(
                StageEvent(
                    stage=self.name,
                    job_id=job.file_id,
                    path=result.target if outcome == "moved" and result.target else job.path,
                    outcome=outcome,
                    seconds=f.seconds,
                    reason=result.reason if outcome != "moved" else None,
                    final=outcome != "retry",
                )
            )
        return events
