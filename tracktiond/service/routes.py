"""The daemon's HTTP documents that take more than a line: /status and the graph queries.

Handlers run on the event loop, so they only read state the daemon keeps cached (its catalog
snapshot, counters) or, for the graph, ask the graph server.
"""

from __future__ import annotations

import os
import time
from typing import TYPE_CHECKING, Any

from tracktiond import __version__
from tracktiond.service.webserver import Request, Response

if TYPE_CHECKING:
    from tracktiond.graph import GraphSync
    from tracktiond.service.bookkeeping import Bookkeeping


async def graph_query(graph: GraphSync | None, request: Request) -> Response:
    """/graph/<route>: a query of tracktiond.graph.registry, its parameters from the query string
    (?recording=UUID-or-path&limit=20...), its result as JSON."""
    from tracktiond.graph import (
        GraphError,
        GraphUnavailable,
        NotEnoughData,
        RecordingNotFound,
        registry,
    )

    if graph is None:
        return Response.json({"error": "no graph configured ([graph] uri)"}, status=404)
    query = registry.by_route(request.path.removeprefix("/graph/"))
    if query is None:
        return Response.json({"error": f"no graph query at {request.path}"}, status=404)
    values: dict[str, Any] = {}
    try:
        for param in query.params:
            text = request.query.get(param.name)
            if param.required and not text:
                return Response.json({"error": f"?{param.name}={param.metavar} is required"}, 400)
            values[param.name] = param.default if text is None else param.parse(query.name, text)
        data = await query.run(graph.client, values)
    except RecordingNotFound as exc:
        return Response.json({"error": str(exc)}, status=404)
    except NotEnoughData as exc:
        return Response.json({"error": str(exc)}, status=422)
    except GraphUnavailable as exc:
        return Response.json({"error": str(exc)}, status=503)
    except (GraphError, ValueError) as exc:
        return Response.json({"error": str(exc)}, status=400)
    return Response.json(data, indent=2)


def status_document(daemon: Bookkeeping) -> dict[str, Any]:
    """/status: what the daemon is doing, for people and scripts (cached state only)."""
    snap = daemon.snapshot
    oldest_age = (
        max(0.0, time.time() - snap.oldest_pending_epoch) if snap.oldest_pending_epoch else 0.0
    )
    return {
        "version": __version__,
        "pid": os.getpid(),
        "instance": daemon.owner,
        "started_at": daemon.started_at,
        "ready": daemon.not_ready_reason() is None,
        "not_ready_reason": daemon.not_ready_reason(),
        "catalog": {
            "up": daemon.health.up,
            "reason": daemon.health.reason,
            "url": daemon.health.url,
        },
        "config": {
            "source": str(daemon.config_path) if daemon.config_path else None,
            "last_reload": daemon.last_reload,
        },
        "roots": [w.describe() for w, _ in daemon.watchers.values()],
        "files": snap.files_by_state,
        "recordings": snap.recordings,
        "duplicate_recordings": snap.duplicate_recordings,
        "queue": {"pending": snap.queue_depth, "oldest_age_seconds": round(oldest_age, 1)},
        "workers": {
            "count": daemon.pool.concurrency if daemon.pool else 0,
            "busy": daemon.pool.stats.busy if daemon.pool else 0,
            "processed": daemon.pool.stats.processed if daemon.pool else 0,
        },
        "analysis": {
            "enabled": daemon.analysis is not None,
            **({"analysed": 0, "pending": 0, "failed": 0} | snap.analysis),
            "workers": daemon.analysis.concurrency if daemon.analysis else 0,
            "busy": daemon.analysis.busy if daemon.analysis else 0,
        },
        "tagging": {
            "enabled": daemon.tagging is not None,
            "files": daemon.tag_counts,
            "not_written": daemon.tag_problems,
            "busy": daemon.tagging.busy if daemon.tagging else 0,
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
        "reconciling": daemon.reconciling,
        "recent_failures": daemon.db_failures,
        "recent_job_failures": list(daemon.recent_failures),
    }
