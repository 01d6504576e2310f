"""The graph: a Neo4j 5 (or FalkorDB) projection of the catalog. The only place that speaks Cypher.

    client = GraphClient.from_config(config.graph)
    sync = GraphSync(catalog, client)          # the daemon runs `await sync.run()` in a task
    await sync.rebuild()                       # `tracktiond graph rebuild`
    await queries.mix_suggestions(client, "/music/track.flac")
    registry.by_name("suggest")                # the queries' table, for HTTP and the CLI

The modules, in the order data goes through them:

- ``errors``: what can go wrong, classified once (unavailable, rejected, not found);
- ``dialect``: every difference between Neo4j 5 and FalkorDB;
- ``client``: the connection (the official ``neo4j`` async driver), auto-commit statements;
- ``model``: nodes, relationships, schema, and how a catalog projection is written;
- ``sync``: ``GraphSync``, the outbox drained into the graph, backoff, rebuild;
- ``camelot``: which keys and tempi mix (pure; keys are tracktiond.media.keys.Key);
- ``queries``: the read-only questions (mix suggestions, shared tracks, duplicates, neighbours);
- ``registry``: the queries' table (name, parameters, function) for HTTP and the CLI.

See docs/graph.md for the model, the sync and the queries. The client and the sync (and with
them the Neo4j driver) are imported on first use, so the CLI can read the query table without
loading the driver.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from tracktiond.graph import queries, registry
from tracktiond.graph.errors import (
    GraphError,
    GraphQueryError,
    GraphUnavailable,
    NotEnoughData,
    RecordingNotFound,
)

if TYPE_CHECKING:
    from tracktiond.graph.client import GraphClient
    from tracktiond.graph.sync import GraphSync

_LAZY = {"GraphClient": "tracktiond.graph.client", "GraphSync": "tracktiond.graph.sync"}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)


__all__ = [
    "GraphClient",
    "GraphError",
    "GraphQueryError",
    "GraphSync",
    "GraphUnavailable",
    "NotEnoughData",
    "RecordingNotFound",
    "queries",
    "registry",
]
