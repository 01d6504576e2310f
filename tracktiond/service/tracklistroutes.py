"""HTTP read endpoints for tracklists: ``GET /tracklists/{recording}``.

``{recording}`` is a recording's uuid or the percent-encoded path of one of its files
(``/tracklists/%2Fmusic%2Fsets%2Fset.flac``); the answer is the document of
``tracklist show --json`` (tracktiond.tracklists.documents), 404 for an unknown recording.
The route is registered as ``/tracklists/``: the server gives a route ending in "/" every path
under it.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from urllib.parse import unquote

from tracktiond.catalog.store import Catalog
from tracktiond.service.webserver import Request, Response
from tracktiond.tracklists.documents import recording_document

PREFIX = "/tracklists/"


def tracklists_handler(
    catalog: Callable[[], Catalog | None],
) -> Callable[[Request], Awaitable[Response]]:
    async def handle(request: Request) -> Response:
        current = catalog()
        if current is None:
            return Response.json({"error": "the catalog is not open yet"}, 503)
        ref = unquote(request.path[len(PREFIX) :])
        if not ref:
            return Response.json({"error": "give a recording: /tracklists/{uuid or path}"}, 404)
        found = await current.resolve_recording(ref)
        if found is None:
            return Response.json({"error": f"{ref}: not a cataloged file or recording"}, 404)
        rec_id, path = found
        tracklists = await current.tracklists_of(
            rec_id, history=request.query.get("history") == "1"
        )
        problems = await current.source_problems(recording_id=rec_id)
        return Response.json(recording_document(rec_id, path, tracklists, problems), indent=2)

    return handle
