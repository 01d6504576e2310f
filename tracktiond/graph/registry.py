"""The graph queries as one table: each query's name, its parameters and the function it runs.

The daemon's HTTP routes (``/graph/<route>?param=...``) and the CLI (``tracktiond graph <name>
--param ...``) both look queries up here; they only translate (query string or click options
to values, errors to status codes or exit codes). A new query is one entry in :data:`QUERIES`.

Importing this module does not import the graph driver, so the CLI can build its commands
from the table without paying for it.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from tracktiond.graph import queries

if TYPE_CHECKING:
    from tracktiond.graph.client import GraphClient

__all__ = ["QUERIES", "GraphQuery", "Param", "by_name", "by_route"]

Value = int | float | str


@dataclass(frozen=True, slots=True)
class Param:
    """One parameter of a query; ``default`` None means required."""

    name: str  # as HTTP and the CLI spell it: ?limit=5, --limit 5
    type: type[int] | type[float] | type[str]
    default: Value | None = None
    choices: tuple[str, ...] = ()  # the only values allowed, when not empty
    keyword: str = ""  # the query function's argument, when it is not ``name``
    help: str = ""
    metavar: str = ""  # how to show a required value: RECORDING, UUID-or-path

    @property
    def required(self) -> bool:
        return self.default is None

    @property
    def argument(self) -> str:
        return self.keyword or self.name

    def check(self, query: str, value: Value) -> Value:
        """``value`` if it is allowed; ValueError otherwise."""
        if self.choices and value not in self.choices:
            raise ValueError(
                f"{query} {self.name} {value!r}: expected one of {sorted(self.choices)}"
            )
        return value

    def parse(self, query: str, text: str) -> Value:
        """The value written ``text`` (a query string's); ValueError when it is not one."""
        return self.check(query, self.type(text))


@dataclass(frozen=True, slots=True)
class GraphQuery:
    name: str  # the CLI command: `tracktiond graph <name>`
    route: str  # the HTTP path: /graph/<route>
    help: str
    # In the order they are checked: a request with several bad values hears of the first.
    params: tuple[Param, ...]
    function: Callable[..., Awaitable[dict[str, Any]]]  # (client, **arguments) -> JSON-able

    async def run(self, client: GraphClient, values: Mapping[str, Any]) -> dict[str, Any]:
        """Run the query with checked ``values`` (one per parameter, by name)."""
        return await self.function(client, **{p.argument: values[p.name] for p in self.params})


_LIMIT = Param("limit", int, 20)
_RECORDING = Param("recording", str, metavar="UUID-or-path")

QUERIES: tuple[GraphQuery, ...] = (
    GraphQuery(
        "suggest",
        "suggestions",
        "What mixes well after RECORDING (uuid or path): same or adjacent Camelot key, BPM "
        "within the tolerance (half and double tempo included), ranked.",
        (
            _LIMIT,
            _RECORDING,
            Param(
                "tolerance",
                float,
                queries.DEFAULT_BPM_TOLERANCE,
                keyword="bpm_tolerance",
                help="BPM tolerance (fraction).",
            ),
        ),
        queries.mix_suggestions,
    ),
    GraphQuery(
        "shared",
        "shared",
        "Recordings sharing tracks with RECORDING (via tracklists).",
        (_LIMIT, _RECORDING),
        queries.shared_tracks,
    ),
    GraphQuery(
        "neighbours",
        "neighbours",
        "Recordings by the same artist or in the same genre.",
        (_LIMIT, _RECORDING, Param("by", str, "artist", choices=queries.NEIGHBOURS_BY)),
        queries.neighbours,
    ),
    GraphQuery(
        "duplicates",
        "duplicates",
        "The same content at several paths.",
        (_LIMIT,),
        queries.duplicates,
    ),
)


def by_name(name: str) -> GraphQuery | None:
    return next((q for q in QUERIES if q.name == name), None)


def by_route(route: str) -> GraphQuery | None:
    return next((q for q in QUERIES if q.route == route), None)
