"""/status: what the daemon is doing, for people and scripts (cached state only)."""

from __future__ import annotations

import os
import time
from typing import TYPE_CHECKING, Any

from tracktiond import __version__

if TYPE_CHECKING:
    from tracktiond.service.daemon import Daemon


def status_document(daemon: Daemon) -> dict[str, Any]:
    books = daemon.books
    snap = books.snapshot
    oldest_age = (
        max(0.0, time.time() - snap.oldest_pending_epoch) if snap.oldest_pending_epoch else 0.0
    )
    stages = daemon.stages
    ingest = stages.get("ingest") if stages else None
    analysis = stages.get("analysis") if stages else None
    tagging = stages.get("tags") if stages else None
    reason = daemon.not_ready_reason()
    return {
        "version": __version__,
        "pid": os.getpid(),
        "instance": daemon.owner,
        "started_at": daemon.started_at,
        "state": daemon.lifecycle.state.value,
        "ready": reason is None,
        "not_ready_reason": reason,
        "catalog": {
            "up": daemon.health.up,
            "reason": daemon.health.reason,
            "url": daemon.health.url,
        },
        "config": {
            "source": str(daemon.config_path) if daemon.config_path else None,
            "last_reload": daemon.last_reload,
        },
        "roots": daemon.roots.describe(),
        "files": snap.files_by_state,
        "recordings": snap.recordings,
        "duplicate_recordings": snap.duplicate_recordings,
        "queue": {"pending": snap.queue_depth, "oldest_age_seconds": round(oldest_age, 1)},
        "workers": {
            "count": ingest.concurrency if ingest else 0,
            "busy": ingest.busy if ingest else 0,
            "processed": ingest.processed if ingest else 0,
        },
        "analysis": {
            "enabled": analysis is not None,
            **({"analysed": 0, "pending": 0, "failed": 0} | snap.analysis),
            "workers": analysis.concurrency if analysis else 0,
            "busy": analysis.busy if analysis else 0,
        },
        "tagging": {
            "enabled": tagging is not None,
            "files": books.tag_counts,
            "not_written": books.tag_problems,
            "busy": tagging.busy if tagging else 0,
        },
        "graph": (
            {
                "enabled": True,
                **daemon.graph.status(),
                "outbox": {
                    "pending": snap.outbox_depth,
                    "oldest_age_seconds": round(max(0.0, time.time() - snap.outbox_oldest_epoch), 1)
                    if snap.outbox_oldest_epoch
                    else 0.0,
                },
            }
            if daemon.graph is not None
            else {"enabled": False}
        ),
        "reconciling": daemon.roots.reconciling,
        "recent_failures": books.db_failures,
        "recent_job_failures": list(books.recent_failures),
    }
