"""The graph: a Neo4j 5 (or FalkorDB) projection of the catalog. The only place that speaks Cypher.

    client = GraphClient.from_config(config.graph)
    sync = GraphSync(catalog, client)          # the daemon runs `await sync.run()` in a task
    await sync.rebuild()                       # `tracktiond graph rebuild`
    await queries.mix_suggestions(client, "/music/track.flac")

See docs/graph.md for the model, the sync and the queries.
"""

from tracktiond.graph import queries
from tracktiond.graph.client import GraphClient
from tracktiond.graph.errors import (
    GraphError,
    GraphQueryError,
    GraphUnavailable,
    NotEnoughData,
    RecordingNotFound,
)
from tracktiond.graph.sync import GraphSync

__all__ = [
    "GraphClient",
    "GraphError",
    "GraphQueryError",
    "GraphSync",
    "GraphUnavailable",
    "NotEnoughData",
    "RecordingNotFound",
    "queries",
]
