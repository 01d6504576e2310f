"""The questions DJs ask of the graph: read-only queries returning plain, JSON-able dicts.

A recording is named by its uuid or by the path of any of its copies. Every function raises
RecordingNotFound for an unknown recording, GraphUnavailable when the server cannot be reached,
and returns dicts whose recording entries share one shape (see ``_summary``).

The harmonic and tempo rules live in tracktiond.graph.camelot; the queries only pre-filter with
them (compatible Camelot codes and BPM windows passed as parameters) and the ranking is done
here in Python, so it is the same whatever the server's ORDER BY semantics.
"""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING, Any, Literal, LiteralString, get_args

from tracktiond.graph.camelot import bpm_windows, compatible_keys, read_key, tempo_match
from tracktiond.graph.errors import NotEnoughData, RecordingNotFound

if TYPE_CHECKING:  # the driver is imported where a client is made, not by the query table
    from tracktiond.graph.client import GraphClient

__all__ = [
    "DEFAULT_BPM_TOLERANCE",
    "NEIGHBOURS_BY",
    "duplicates",
    "get_recording",
    "mix_suggestions",
    "neighbours",
    "shared_tracks",
]

DEFAULT_BPM_TOLERANCE = 0.06

_SUMMARY_KEYS = (
    "uuid",
    "file_path",
    "file_name",
    "title",
    "artist",
    "genre",
    "bpm",
    "key",
    "camelot",
    "energy",
)


def _summary(props: dict[str, Any]) -> dict[str, Any]:
    return {k: props.get(k) for k in _SUMMARY_KEYS}


_BY_UUID: LiteralString = "MATCH (r:Recording {uuid: $uuid}) RETURN properties(r) AS r"
_BY_PATH: LiteralString = (
    "MATCH (r:Recording)-[:LOCATED_AT]->(:Location {path: $path}) RETURN properties(r) AS r"
)


async def get_recording(client: GraphClient, recording: str) -> dict[str, Any]:
    """All properties of the Recording node named by uuid or by the path of one of its copies."""
    try:
        uid: str | None = str(uuid.UUID(recording))
    except ValueError:
        uid = None
    rows = await client.read(_BY_UUID, {"uuid": uid}) if uid else []
    if not rows:
        rows = await client.read(_BY_PATH, {"path": recording})
    if not rows:
        raise RecordingNotFound(f"no recording in the graph with uuid or path {recording!r}")
    return dict(rows[0]["r"])


_CANDIDATES: LiteralString = (
    "MATCH (r:Recording) "
    "WHERE r.camelot IN $keys AND r.uuid <> $uuid AND ("
    "(r.bpm >= $lo0 AND r.bpm <= $hi0) OR "
    "(r.bpm >= $lo1 AND r.bpm <= $hi1) OR "
    "(r.bpm >= $lo2 AND r.bpm <= $hi2)) "
    "RETURN properties(r) AS r"
)


async def mix_suggestions(
    client: GraphClient,
    recording: str,
    *,
    bpm_tolerance: float = DEFAULT_BPM_TOLERANCE,
    limit: int = 20,
) -> dict[str, Any]:
    """Recordings that mix well after ``recording``, best first.

    Harmonic: the same Camelot key, its relative major/minor (same number, other letter), or
    one step around the wheel (same letter). Tempo: within ±``bpm_tolerance`` (a fraction: 0.06
    is 6 %) of the recording's BPM, of half of it or of double it. Ranked by key relation
    (same, relative, adjacent), then by tempo distance, then same tempo before half/double.
    The recording itself (every copy of it) and recordings of the same audio are left out.
    """
    if not 0 <= bpm_tolerance < 1:
        raise ValueError(f"bpm_tolerance is a fraction in [0, 1), got {bpm_tolerance}")
    source = await get_recording(client, recording)
    key = read_key(source.get("camelot"))
    bpm = source.get("bpm")
    missing = [name for name, ok in (("BPM", bool(bpm)), ("key", key is not None)) if not ok]
    if missing or key is None or not isinstance(bpm, int | float):
        raise NotEnoughData(
            f"{source.get('file_path')} has no {' and no '.join(missing)} (tags or analysis)"
        )
    relations = compatible_keys(key)
    params: dict[str, Any] = {"uuid": source["uuid"], "keys": sorted(relations)}
    for i, (low, high) in enumerate(bpm_windows(float(bpm), bpm_tolerance)):
        params[f"lo{i}"], params[f"hi{i}"] = low, high
    ranked: list[tuple[tuple[Any, ...], dict[str, Any]]] = []
    audio = source.get("audio_hash")
    for row in await client.read(_CANDIDATES, params):
        cand = row["r"]
        if audio and cand.get("audio_hash") == audio:
            continue
        relation = relations.get(str(cand.get("camelot")))
        match = tempo_match(float(bpm), float(cand.get("bpm") or 0.0), bpm_tolerance)
        if relation is None or match is None:
            continue
        item = _summary(cand) | {
            "key_relation": relation.label,
            "tempo": match.tempo,
            "bpm_distance": round(match.distance, 4),
        }
        rank = (int(relation), match.distance, match.tempo != "same", str(cand.get("file_path")))
        ranked.append((rank, item))
    ranked.sort(key=lambda pair: pair[0])
    return {
        "recording": _summary(source),
        "bpm_tolerance": bpm_tolerance,
        "suggestions": [item for _, item in ranked[: max(0, limit)]],
    }


_SHARED_TRACKS: LiteralString = (
    "MATCH (r:Recording {uuid: $uuid})-[:HAS_TRACKLIST]->(:Tracklist)-[:CONTAINS_TRACK]->"
    "(t:Track)<-[:CONTAINS_TRACK]-(:Tracklist)<-[:HAS_TRACKLIST]-(o:Recording) "
    "WHERE o.uuid <> $uuid "
    "WITH DISTINCT o, t "
    "WITH o, collect({title: t.title, artist: t.artist}) AS tracks "
    "RETURN properties(o) AS r, tracks "
    "ORDER BY size(tracks) DESC, o.file_path LIMIT $limit"
)


async def shared_tracks(client: GraphClient, recording: str, *, limit: int = 50) -> dict[str, Any]:
    """Recordings whose tracklists share tracks with this one's, most shared first."""
    source = await get_recording(client, recording)
    rows = await client.read(_SHARED_TRACKS, {"uuid": source["uuid"], "limit": limit})
    out = []
    for row in rows:
        tracks = sorted(
            ({"artist": t.get("artist"), "title": t.get("title")} for t in row["tracks"]),
            key=lambda t: (str(t["artist"]).casefold(), str(t["title"]).casefold()),
        )
        out.append(_summary(row["r"]) | {"shared": len(tracks), "tracks": tracks})
    return {"recording": _summary(source), "recordings": out}


_DUPLICATES: LiteralString = (
    "MATCH (r:Recording)-[:LOCATED_AT]->(l:Location) "
    "WITH r, collect(l.path) AS paths WHERE size(paths) > 1 "
    "RETURN properties(r) AS r, paths "
    "ORDER BY size(paths) DESC, r.file_path LIMIT $limit"
)


async def duplicates(client: GraphClient, *, limit: int = 100) -> dict[str, Any]:
    """Recordings present at more than one path (identical content), most copies first."""
    rows = await client.read(_DUPLICATES, {"limit": limit})
    return {
        "duplicates": [
            _summary(row["r"])
            | {"sha256": row["r"].get("sha256"), "copies": len(row["paths"])}
            | {"paths": sorted(row["paths"])}
            for row in rows
        ]
    }


NeighboursBy = Literal["artist", "genre"]
NEIGHBOURS_BY: tuple[NeighboursBy, ...] = get_args(NeighboursBy)

_NEIGHBOURS: dict[NeighboursBy, LiteralString] = {
    "artist": (
        "MATCH (r:Recording {uuid: $uuid})-[:BY]->(x:Artist)<-[:BY]-(o:Recording) "
        "WHERE o.uuid <> $uuid "
        "WITH o, collect(DISTINCT x.name) AS shared "
        "RETURN properties(o) AS r, shared "
        "ORDER BY size(shared) DESC, o.file_path LIMIT $limit"
    ),
    "genre": (
        "MATCH (r:Recording {uuid: $uuid})-[:IN_GENRE]->(x:Genre)<-[:IN_GENRE]-(o:Recording) "
        "WHERE o.uuid <> $uuid "
        "WITH o, collect(DISTINCT x.name) AS shared "
        "RETURN properties(o) AS r, shared "
        "ORDER BY size(shared) DESC, o.file_path LIMIT $limit"
    ),
}


async def neighbours(
    client: GraphClient,
    recording: str,
    *,
    by: NeighboursBy = "artist",
    limit: int = 20,
) -> dict[str, Any]:
    """Other recordings by the same artist(s) or in the same genre(s), most shared first."""
    query = _NEIGHBOURS.get(by)
    if query is None:
        raise ValueError(f"neighbours by {by!r}: expected one of {sorted(_NEIGHBOURS)}")
    source = await get_recording(client, recording)
    rows = await client.read(query, {"uuid": source["uuid"], "limit": limit})
    return {
        "recording": _summary(source),
        "by": by,
        "recordings": [_summary(r["r"]) | {"shared": sorted(r["shared"])} for r in rows],
    }
