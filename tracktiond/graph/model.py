"""The graph model, and how a recording's catalog projection is written into it.

Nodes and relationships (see docs/graph.md for the full description)::

    (:Recording {uuid, file_path, file_name, sha256, format, copies, title, artist, album, genre,
                 duration, bpm, bpm_source, key, camelot, open_key, key_source, energy,
                 danceability, valence, loudness, mood, audio_hash})
    (:Recording)-[:HAS_METADATA]->(:Metadata {key, value})      one node per distinct pair, shared
    (:Recording)-[:LOCATED_AT]->(:Location {path})               every present copy of the content
    (:Recording)-[:BY]->(:Artist {key, name})
    (:Recording)-[:IN_GENRE]->(:Genre {key, name})
    (:Recording)-[:IN_KEY]->(:Key {camelot, name, open_key})
    (:Recording)-[:HAS_TRACKLIST]->(:Tracklist {uuid, source, cue_file_path})
    (:Tracklist)-[:CONTAINS_TRACK {position, start_time}]->(:Track {key, title, artist})
    (:TracktiondGraph {name: "tracktiond", state, owner, model_version, heartbeat})   the marker

Only Recording and Tracklist nodes belong to one recording; every other node is shared by the
recordings that point at it and is deleted when the last one stops pointing at it.

Writing one batch of projections is a fixed sequence of idempotent auto-commit statements:
detach the recordings' outgoing relationships (remembering the nodes they pointed at), delete the
recordings that are gone, MERGE the current nodes and relationships, then delete the remembered
nodes nothing points at any more. Replaying the sequence converges to the same graph, which is
what lets GraphSync retry a batch blindly. An attempt cut short between the detach and the final
sweep can leave unreferenced leaf nodes behind (the replay's detach no longer finds them);
queries never reach them, and collect_orphans() (run when GraphSync starts) and rebuild remove
them.
"""

from __future__ import annotations

import logging
import math
import re
import time
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, LiteralString

from tracktiond.catalog.store import RecordingProjection
from tracktiond.graph.camelot import read_key
from tracktiond.graph.client import GraphClient
from tracktiond.graph.dialect import IndexSpec
from tracktiond.graph.errors import GraphQueryError
from tracktiond.media.keys import Key

__all__ = [
    "LABELS",
    "MARKER",
    "MODEL_VERSION",
    "SCHEMA",
    "GraphBatch",
    "build_batch",
    "clear_graph",
    "collect_orphans",
    "ensure_schema",
    "normalize",
    "project",
    "read_marker",
    "set_marker",
    "write_batch",
]

log = logging.getLogger(__name__)

# Bump when the shape of the graph changes: GraphSync rebuilds a graph marked with another one.
MODEL_VERSION = 1

MARKER: LiteralString = "TracktiondGraph"
LABELS: tuple[LiteralString, ...] = (
    "Recording",
    "Metadata",
    "Location",
    "Artist",
    "Genre",
    "Key",
    "Tracklist",
    "Track",
)

SCHEMA: tuple[IndexSpec, ...] = (
    IndexSpec("Recording", "uuid", unique=True),
    IndexSpec("Recording", "file_path"),
    IndexSpec("Recording", "sha256"),
    IndexSpec("Recording", "camelot"),
    IndexSpec("Metadata", "value"),
    IndexSpec("Metadata", "key"),
    IndexSpec("Location", "path", unique=True),
    IndexSpec("Artist", "key", unique=True),
    IndexSpec("Genre", "key", unique=True),
    IndexSpec("Key", "camelot", unique=True),
    IndexSpec("Tracklist", "uuid", unique=True),
    IndexSpec("Track", "key", unique=True),
    IndexSpec(MARKER, "name", unique=True),
)

# Longer metadata values (embedded lyrics, long comments, serialized curves) stay in the catalog:
# they would bloat the shared Metadata nodes, and Neo4j cannot index strings of several kB.
MAX_METADATA_VALUE = 1024

# Taggers' multi-value separator as tracktiond.media.tags joins values.
_MULTI = "; "

_NUMBER_RE = re.compile(r"^\s*([-+]?\d+(?:[.,]\d+)?)")


# ---- projection -> rows (pure) -------------------------------------------------------------


def normalize(text: str) -> str:
    """The identity of a shared name: case- and whitespace-insensitive."""
    return " ".join(text.split()).casefold()


def _number(value: str | None, low: float, high: float) -> float | None:
    if not value:
        return None
    m = _NUMBER_RE.match(value)
    if not m:
        return None
    number = float(m[1].replace(",", "."))
    return number if math.isfinite(number) and low < number <= high else None


def _names(value: str | None) -> list[tuple[str, str]]:
    """(key, display name) for each distinct value of a multi-valued tag."""
    out: dict[str, str] = {}
    for part in (value or "").split(_MULTI):
        name = " ".join(part.split())
        if name:
            out.setdefault(normalize(name), name)
    return list(out.items())


def _key_of(meta: Mapping[str, str]) -> tuple[Key | None, str | None]:
    # Analysis first (measured from the audio), then whatever the tags claim.
    for source, name in (
        ("analysis", "analysis.key_camelot"),
        ("analysis", "analysis.key"),
        ("analysis", "analysis.key_openkey"),
        ("tags", "initialkey"),
    ):
        key = read_key(meta.get(name))
        if key is not None:
            return key, source
    return None, None


def _bpm_of(meta: Mapping[str, str]) -> tuple[float | None, str | None]:
    for source, name in (("analysis", "analysis.bpm"), ("tags", "bpm")):
        bpm = _number(meta.get(name), 0.0, 1000.0)
        if bpm is not None:
            return round(bpm, 3), source
    return None, None


def project(p: RecordingProjection) -> dict[str, Any]:
    """The Recording node's properties for one catalog projection (None values left out)."""
    meta = p.metadata
    key, key_source = _key_of(meta)
    bpm, bpm_source = _bpm_of(meta)
    props: dict[str, Any] = {
        "uuid": str(p.id),
        "file_path": p.file_path,
        "file_name": p.file_name,
        "sha256": p.sha256,
        "format": p.format,
        "copies": len(p.paths),
        "title": meta.get("title"),
        "artist": meta.get("artist"),
        "album": meta.get("album"),
        "genre": meta.get("genre"),
        "date": meta.get("date"),
        "duration": _number(meta.get("duration"), 0.0, math.inf),
        "bpm": bpm,
        "bpm_source": bpm_source,
        "key": key.name if key else None,
        "camelot": key.camelot if key else None,
        "open_key": key.open_key if key else None,
        "key_source": key_source,
        "energy": _number(meta.get("analysis.energy"), -math.inf, math.inf),
        "danceability": _number(meta.get("analysis.danceability"), -math.inf, math.inf),
        "valence": _number(meta.get("analysis.valence"), -math.inf, math.inf),
        "loudness": _number(meta.get("analysis.loudness_lufs"), -math.inf, math.inf),
        "mood": meta.get("analysis.mood"),
        # Not every catalog version projects it; when present, mix suggestions skip other
        # recordings of the same audio (a re-tagged copy is not a suggestion).
        "audio_hash": getattr(p, "audio_hash", None),
    }
    return {k: v for k, v in props.items() if v is not None}


@dataclass(slots=True)
class GraphBatch:
    """Parameter rows for one write: every statement gets one list of rows."""

    uuids: list[str] = field(default_factory=list)  # every recording touched
    deletes: list[str] = field(default_factory=list)  # recordings no longer shown
    recordings: list[dict[str, Any]] = field(default_factory=list)
    metadata: dict[tuple[str, str], dict[str, str]] = field(default_factory=dict)
    metadata_links: list[dict[str, str]] = field(default_factory=list)
    locations: dict[str, dict[str, str]] = field(default_factory=dict)
    location_links: list[dict[str, str]] = field(default_factory=list)
    artists: dict[str, dict[str, str]] = field(default_factory=dict)
    artist_links: list[dict[str, str]] = field(default_factory=list)
    genres: dict[str, dict[str, str]] = field(default_factory=dict)
    genre_links: list[dict[str, str]] = field(default_factory=list)
    keys: dict[str, dict[str, str]] = field(default_factory=dict)
    key_links: list[dict[str, str]] = field(default_factory=list)
    tracklists: list[dict[str, Any]] = field(default_factory=list)
    tracks: dict[str, dict[str, str]] = field(default_factory=dict)
    track_links: list[dict[str, Any]] = field(default_factory=list)
    track_recordings: list[dict[str, str]] = field(default_factory=list)  # Track IS Recording

    def add(self, p: RecordingProjection) -> None:
        uid = str(p.id)
        self.recordings.append({"uuid": uid, "props": project(p)})
        for k, v in sorted(p.metadata.items()):
            if len(v) <= MAX_METADATA_VALUE:
                self.metadata.setdefault((k, v), {"key": k, "value": v})
                self.metadata_links.append({"uuid": uid, "key": k, "value": v})
        for path in dict.fromkeys(p.paths):
            self.locations.setdefault(path, {"path": path})
            self.location_links.append({"uuid": uid, "path": path})
        for nkey, name in _names(p.metadata.get("artist")):
            self.artists.setdefault(nkey, {"key": nkey, "name": name})
            self.artist_links.append({"uuid": uid, "key": nkey})
        for nkey, name in _names(p.metadata.get("genre")):
            self.genres.setdefault(nkey, {"key": nkey, "name": name})
            self.genre_links.append({"uuid": uid, "key": nkey})
        key, _ = _key_of(p.metadata)
        if key is not None:
            self.keys.setdefault(
                key.camelot, {"camelot": key.camelot, "name": key.name, "open_key": key.open_key}
            )
            self.key_links.append({"uuid": uid, "camelot": key.camelot})
        for tl in p.tracklists:
            self._add_tracklist(uid, tl)

    def _add_tracklist(self, uid: str, tl: Mapping[str, Any]) -> None:
        tl_id = str(tl.get("id") or "")
        if not tl_id:
            return
        self.tracklists.append(
            {
                "uuid": tl_id,
                "recording": uid,
                "source": str(tl.get("source") or ""),
                "cue_file_path": tl.get("cue_file_path"),
            }
        )
        for position, track in enumerate(tl.get("tracks") or [], start=1):
            if not isinstance(track, Mapping):
                continue
            title = " ".join(str(track.get("title") or "").split())
            artist = " ".join(str(track.get("artist") or "").split())
            if not title and not artist:
                continue
            # The same song in two sets is one Track node: that is what "shared tracks" follows.
            tkey = normalize(artist) + " \u2013 " + normalize(title)
            self.tracks.setdefault(tkey, {"key": tkey, "title": title, "artist": artist})
            start = track.get("start_time")
            matched = track.get("recording")
            if isinstance(matched, str) and matched:
                # The track of the set is this library recording (tracklist matching).
                self.track_recordings.append({"key": tkey, "recording": matched})
            self.track_links.append(
                {
                    "tracklist": tl_id,
                    "key": tkey,
                    "position": position,
                    "start_time": start if isinstance(start, int | float | str) else None,
                }
            )


def build_batch(projections: Mapping[uuid.UUID, RecordingProjection | None]) -> GraphBatch:
    """Rows for writing these recordings as they are now (None: delete from the graph)."""
    batch = GraphBatch()
    for rec_id, proj in projections.items():
        batch.uuids.append(str(rec_id))
        if proj is None:
            batch.deletes.append(str(rec_id))
        else:
            batch.add(proj)
    return batch


# ---- statements ----------------------------------------------------------------------------
# Every statement is written in the Cypher subset Neo4j 5 and FalkorDB share. Shared nodes are
# MERGEd by one statement with distinct rows and linked by a second one: FalkorDB does not apply
# ON CREATE / SET the way Neo4j does when one statement MERGEs the same node twice.


def _detach_tracks(node_id: LiteralString) -> LiteralString:
    return (
        "UNWIND $uuids AS u "
        "MATCH (:Recording {uuid: u})-[:HAS_TRACKLIST]->(:Tracklist)-[c:CONTAINS_TRACK]->(t) "
        "DELETE c RETURN DISTINCT " + node_id + "(t) AS id"
    )


def _detach_identity(node_id: LiteralString) -> LiteralString:
    # A Track IS a library recording as the tracklists of the recordings being written say:
    # those edges are written again from the batch (a rematch may have changed them).
    return (
        "UNWIND $uuids AS u "
        "MATCH (:Recording {uuid: u})-[:HAS_TRACKLIST]->(:Tracklist)-[:CONTAINS_TRACK]->(t)"
        "-[i:IS]->(:Recording) DELETE i RETURN DISTINCT " + node_id + "(t) AS id"
    )


def _detach(node_id: LiteralString) -> LiteralString:
    return (
        "UNWIND $uuids AS u MATCH (:Recording {uuid: u})-[e]->(n) "
        "DELETE e RETURN DISTINCT " + node_id + "(n) AS id"
    )


def _sweep(node_id: LiteralString) -> LiteralString:
    # Only leaves are swept: a Recording has no incoming relationships by design.
    return (
        "UNWIND $ids AS i MATCH (n) WHERE " + node_id + "(n) = i "
        "AND NOT n:Recording AND NOT n:" + MARKER + " "
        "OPTIONAL MATCH (n)<-[x]-() WITH n, count(x) AS refs WHERE refs = 0 "
        "DETACH DELETE n RETURN count(*) AS deleted"
    )


_DELETE_RECORDINGS: LiteralString = (
    "UNWIND $uuids AS u MATCH (r:Recording {uuid: u}) DETACH DELETE r"
)
_UPSERT_RECORDINGS: LiteralString = (
    # SET r = ... replaces every property, so a value the catalog dropped disappears here too.
    "UNWIND $rows AS row MERGE (r:Recording {uuid: row.uuid}) SET r = row.props"
)

# (rows attribute, statement) in the order they run.
_WRITES: tuple[tuple[str | None, LiteralString], ...] = (
    ("metadata", "UNWIND $rows AS row MERGE (:Metadata {key: row.key, value: row.value})"),
    (
        "metadata_links",
        "UNWIND $rows AS row MATCH (r:Recording {uuid: row.uuid}), "
        "(m:Metadata {key: row.key, value: row.value}) MERGE (r)-[:HAS_METADATA]->(m)",
    ),
    ("locations", "UNWIND $rows AS row MERGE (:Location {path: row.path})"),
    (
        "location_links",
        "UNWIND $rows AS row MATCH (r:Recording {uuid: row.uuid}), "
        "(l:Location {path: row.path}) MERGE (r)-[:LOCATED_AT]->(l)",
    ),
    (
        "artists",
        "UNWIND $rows AS row MERGE (a:Artist {key: row.key}) ON CREATE SET a.name = row.name",
    ),
    (
        "artist_links",
        "UNWIND $rows AS row MATCH (r:Recording {uuid: row.uuid}), "
        "(a:Artist {key: row.key}) MERGE (r)-[:BY]->(a)",
    ),
    (
        "genres",
        "UNWIND $rows AS row MERGE (g:Genre {key: row.key}) ON CREATE SET g.name = row.name",
    ),
    (
        "genre_links",
        "UNWIND $rows AS row MATCH (r:Recording {uuid: row.uuid}), "
        "(g:Genre {key: row.key}) MERGE (r)-[:IN_GENRE]->(g)",
    ),
    (
        "keys",
        "UNWIND $rows AS row MERGE (k:Key {camelot: row.camelot}) "
        "SET k.name = row.name, k.open_key = row.open_key",
    ),
    (
        "key_links",
        "UNWIND $rows AS row MATCH (r:Recording {uuid: row.uuid}), "
        "(k:Key {camelot: row.camelot}) MERGE (r)-[:IN_KEY]->(k)",
    ),
    (
        "tracklists",
        "UNWIND $rows AS row MATCH (r:Recording {uuid: row.recording}) "
        "MERGE (t:Tracklist {uuid: row.uuid}) "
        "SET t.source = row.source, t.cue_file_path = row.cue_file_path "
        "MERGE (r)-[:HAS_TRACKLIST]->(t)",
    ),
    (
        "tracks",
        "UNWIND $rows AS row MERGE (t:Track {key: row.key}) "
        "ON CREATE SET t.title = row.title, t.artist = row.artist",
    ),
    (
        "track_links",
        "UNWIND $rows AS row MATCH (l:Tracklist {uuid: row.tracklist}), "
        "(t:Track {key: row.key}) "
        "MERGE (l)-[c:CONTAINS_TRACK {position: row.position}]->(t) "
        "SET c.start_time = row.start_time",
    ),
    (
        "track_recordings",
        "UNWIND $rows AS row MATCH (t:Track {key: row.key}), (r:Recording {uuid: row.recording}) "
        "MERGE (t)-[:IS]->(r)",
    ),
)


def _rows(batch: GraphBatch, name: str) -> list[Any]:
    value = getattr(batch, name)
    return list(value.values()) if isinstance(value, dict) else list(value)


async def write_batch(client: GraphClient, batch: GraphBatch) -> None:
    """Make the graph show exactly the batch's recordings as the catalog has them now."""
    dialect = await client.connect()
    node_id = dialect.node_id
    candidates: list[Any] = []
    for statement in (_detach_identity(node_id), _detach_tracks(node_id), _detach(node_id)):
        for chunk in client.chunks(statement, batch.uuids):
            rows = await client.write(statement, {"uuids": chunk})
            candidates.extend(r["id"] for r in rows)
    for chunk in client.chunks(_DELETE_RECORDINGS, batch.deletes):
        await client.write(_DELETE_RECORDINGS, {"uuids": chunk})
    for name, statement in ((None, _UPSERT_RECORDINGS), *_WRITES):
        rows = batch.recordings if name is None else _rows(batch, name)
        for chunk in client.chunks(statement, rows):
            await client.write(statement, {"rows": chunk})
    sweep = _sweep(node_id)
    for chunk in client.chunks(sweep, list(dict.fromkeys(candidates))):
        await client.write(sweep, {"ids": chunk})


# ---- schema, marker, whole-graph maintenance -----------------------------------------------


async def ensure_schema(client: GraphClient) -> list[str]:
    """Create the model's constraints and indexes where missing; returns what was created."""
    dialect = await client.connect()
    existing: set[tuple[str, str]] = set()
    if dialect.list_indexes is not None:
        existing = dialect.parse_indexes(await client.read(dialect.list_indexes, fresh=True))
    done: list[str] = []
    for statement in dialect.schema_statements(SCHEMA, existing):
        try:
            await client.write(statement)
        except GraphQueryError as exc:
            # E.g. a user-made index on the same property blocks our constraint. The graph
            # works without it (MERGE just gets slower), so this must not stop the sync.
            log.warning(
                "graph schema statement %r failed, continuing without it: %s", statement, exc
            )
            continue
        done.append(statement)
    return done


_READ_MARKER: LiteralString = (
    "MATCH (m:" + MARKER + " {name: 'tracktiond'}) RETURN properties(m) AS marker"
)
_SET_MARKER: LiteralString = (
    "MERGE (m:" + MARKER + " {name: 'tracktiond'}) "
    "SET m.state = $state, m.owner = $owner, m.model_version = $version, m.heartbeat = $now"
)


async def read_marker(client: GraphClient) -> dict[str, Any] | None:
    rows = await client.read(_READ_MARKER, fresh=True)
    return dict(rows[0]["marker"]) if rows else None


async def set_marker(client: GraphClient, state: str, owner: str) -> None:
    """Record the graph's state ("rebuilding" or "complete"), who wrote it, and a heartbeat."""
    await client.write(
        _SET_MARKER,
        {"state": state, "owner": owner, "version": MODEL_VERSION, "now": time.time()},
    )


def _clear_label(label: LiteralString) -> LiteralString:
    return "MATCH (n:" + label + ") WITH n LIMIT $limit DETACH DELETE n RETURN count(*) AS deleted"


def _orphans_of(label: LiteralString) -> LiteralString:
    return (
        "MATCH (n:" + label + ") WHERE NOT (n)<--() "
        "WITH n LIMIT $limit DETACH DELETE n RETURN count(*) AS deleted"
    )


async def _delete_in_chunks(
    client: GraphClient, statements: Iterable[LiteralString], limit: int
) -> int:
    # Bounded deletes: one huge DETACH DELETE would need the whole graph in one transaction.
    total = 0
    for statement in statements:
        while True:
            rows = await client.write(statement, {"limit": limit})
            deleted = int(rows[0]["deleted"]) if rows else 0
            total += deleted
            if deleted < limit:
                break
    return total


async def clear_graph(client: GraphClient, *, chunk: int = 5000) -> int:
    """Delete every node of tracktiond's model (not the marker, nothing else); returns count."""
    return await _delete_in_chunks(client, (_clear_label(lb) for lb in LABELS), chunk)


async def collect_orphans(client: GraphClient, *, chunk: int = 5000) -> int:
    """Delete shared nodes nothing points at (leftovers of an interrupted write)."""
    leaves = [lb for lb in LABELS if lb != "Recording"]
    return await _delete_in_chunks(client, (_orphans_of(lb) for lb in leaves), chunk)
