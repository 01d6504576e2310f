"""The JSON document of a recording's tracklists (``tracklist show --json``, ``/tracklists/…``).

Times are seconds from the start of the recording; each matched entry names the library file it
is (``match.path``); docs/tracklists.md lists every field.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

from tracktiond.catalog.tracklistvalues import StoredEntry, StoredTracklist


def entry_json(stored: StoredEntry) -> dict[str, Any]:
    e, m = stored.entry, stored.match
    return {
        "position": e.position,
        "start": e.start,
        "end": e.end,
        "artist": e.artist,
        "title": e.title,
        "version": e.version,
        "label": e.label,
        "confidence": e.confidence,
        "unknown": e.unknown,
        "played_with": e.played_with,
        "source_path": e.source_path,
        "match": {
            "status": m.status,
            "score": round(m.score, 4) if m.score is not None else None,
            "recording": str(m.recording_id) if m.recording_id else None,
            "path": stored.path if m.status == "matched" else None,
            "candidates": [c.as_json() for c in m.candidates],
        },
    }


def tracklist_json(t: StoredTracklist) -> dict[str, Any]:
    return {
        "id": str(t.id),
        "recording": str(t.recording_id),
        "source": t.source,
        "version": t.version,
        "current": t.current,
        "created_at": t.created_at.isoformat(),
        "superseded_at": t.superseded_at.isoformat() if t.superseded_at else None,
        "origin": t.origin,
        "format": t.format,
        "encoding": t.encoding,
        "title": t.title,
        "performer": t.performer,
        "warnings": list(t.warnings),
        "entries": [entry_json(s) for s in t.entries],
    }


def recording_document(
    recording_id: uuid.UUID,
    path: str,
    tracklists: Sequence[StoredTracklist],
    problems: Sequence[dict[str, Any]],
) -> dict[str, Any]:
    return {
        "recording": str(recording_id),
        "path": path,
        "tracklists": [tracklist_json(t) for t in tracklists],
        "problems": list(problems),
    }
