"""The daemon's graph query routes (/graph/...): the registry's queries over HTTP.

Handlers run on the event loop, so they only read state the daemon keeps cached (its catalog
snapshot, counters) or, for the graph, ask the graph server.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from tracktiond.service.webserver import Request, Response

if TYPE_CHECKING:
    from tracktiond.graph import GraphSync


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
