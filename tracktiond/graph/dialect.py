"""Everything that differs between Neo4j 5 and FalkorDB, in one place.

tracktiond targets Neo4j 5; its tests run against FalkorDB's Bolt endpoint (Neo4j cannot be
installed on the test machines). Every other module writes the Cypher subset both servers accept
and asks this module for the few things that differ:

* schema: Neo4j has named, idempotent ``CREATE CONSTRAINT/INDEX ... IF NOT EXISTS``; FalkorDB
  has only ``CREATE INDEX FOR (n:L) ON (n.p)``, which fails when the index exists, so existing
  indexes are listed first (``CALL db.indexes()``). FalkorDB's unique constraints are a Redis
  command, not Cypher, so none are created there: MERGE on an indexed key is enough because
  FalkorDB runs the writes to one graph one at a time.
* node identity: ``elementId(n)`` on Neo4j 5 (``id()`` is deprecated there), ``id(n)`` on FalkorDB
  (which has no ``elementId``).
* connection handling: FalkorDB 4.16 stops accepting new Bolt connections for about a minute
  after a client sends GOODBYE (the driver does on ``close()`` and when it retires a connection
  past ``max_connection_lifetime``). So connections to FalkorDB are never retired by age and are
  closed without the goodbye (see client.py).
* which graph a statement reaches: FalkorDB 4.16 names the graph after the first key of the Bolt
  RUN message's metadata, not after its value. With a database set, a write carries {db: ...}
  and lands in the graph called "db"; a read in READ access mode carries {mode: "r", db: ...}
  and lands in the graph called "mode". So on FalkorDB reads are sent in WRITE access mode, and
  one FalkorDB server holds one tracktiond graph whatever ``database`` says.
* request size: FalkorDB 4.16's Bolt endpoint turns each statement and its parameters into one
  Cypher text in a fixed buffer of about 4 kB, and a larger request smashes its stack and
  crashes the whole server. So on FalkorDB statements are kept under a budget (the client
  splits UNWIND rows into chunks that fit and refuses a single row that cannot).
* writes inside explicit Bolt transactions are not kept by FalkorDB; nothing in tracktiond uses
  them on either server (every statement is an idempotent auto-commit query), so there is no
  switch for it here.

The server is recognised by what it answers, not by its agent string: FalkorDB announces itself
as "Neo4j/5.x". Neo4j answers ``CALL dbms.components()``; FalkorDB rejects it but answers
``CALL db.indexes()``, a procedure Neo4j 5 no longer has.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, LiteralString

from tracktiond.graph.errors import GraphQueryError

__all__ = ["DIALECTS", "FALKORDB", "NEO4J", "Dialect", "IndexSpec", "detect"]


@dataclass(frozen=True, slots=True)
class IndexSpec:
    """A property the model looks nodes up by; ``unique`` where the model guarantees it."""

    label: str
    prop: str
    unique: bool = False


@dataclass(frozen=True, slots=True)
class Dialect:
    name: str
    # Cypher function giving a node's identity for re-finding it in a later statement.
    node_id: LiteralString
    # The driver sends GOODBYE when it closes a connection; False where that harms the server.
    polite_close: bool
    # Whether reads may be sent in READ access mode (Neo4j routes them to any cluster member).
    read_mode: bool
    # Extra keyword arguments for neo4j.AsyncGraphDatabase.driver().
    driver_options: dict[str, Any] = field(default_factory=dict)
    # A query listing existing indexes as (label, properties) rows; None when the schema
    # statements are idempotent by themselves.
    list_indexes: LiteralString | None = None
    # Largest request (query text plus parameters written as Cypher literals, in bytes) the
    # server survives; None for no limit.
    max_request_bytes: int | None = None

    def schema_statements(
        self, specs: Sequence[IndexSpec], existing: set[tuple[str, str]]
    ) -> list[LiteralString]:
        """The statements that create what ``specs`` declare and ``existing`` lacks."""
        out: list[LiteralString] = []
        for spec in specs:
            # Labels and properties come from the model's constant table, never from data.
            label: LiteralString = _literal(spec.label)
            prop: LiteralString = _literal(spec.prop)
            if self.name == "neo4j":
                name: LiteralString = "tracktiond_" + label.lower() + "_" + prop
                if spec.unique:
                    out.append(
                        "CREATE CONSTRAINT " + name + " IF NOT EXISTS FOR (n:" + label + ") "
                        "REQUIRE n." + prop + " IS UNIQUE"
                    )
                else:
                    out.append(
                        "CREATE INDEX " + name + " IF NOT EXISTS FOR (n:" + label + ") "
                        "ON (n." + prop + ")"
                    )
            elif (spec.label, spec.prop) not in existing:
                out.append("CREATE INDEX FOR (n:" + label + ") ON (n." + prop + ")")
        return out

    def parse_indexes(self, rows: Iterable[dict[str, Any]]) -> set[tuple[str, str]]:
        """(label, property) pairs already indexed, from the rows of ``list_indexes``."""
        found: set[tuple[str, str]] = set()
        for row in rows:
            label = row.get("label")
            props = row.get("properties") or []
            if isinstance(label, str) and isinstance(props, list):
                found.update((label, str(p)) for p in props)
        return found


def _literal(text: str) -> LiteralString:
    # The schema table is code, not input; refuse anything that could smuggle Cypher in.
    if not text.isidentifier():
        raise ValueError(f"not a plain identifier: {text!r}")
    return text


NEO4J = Dialect(name="neo4j", node_id="elementId", polite_close=True, read_mode=True)

FALKORDB = Dialect(
    name="falkordb",
    node_id="id",
    polite_close=False,
    read_mode=False,
    # Retiring a connection by age means a GOODBYE, which stalls FalkorDB (see above).
    driver_options={"max_connection_lifetime": 10 * 365 * 24 * 3600.0},
    list_indexes="CALL db.indexes() YIELD label, properties RETURN label, properties",
    # Measured: about 4,100 bytes pass and more crash it; the margin absorbs estimation error.
    max_request_bytes=3600,
)

DIALECTS: dict[str, Dialect] = {d.name: d for d in (NEO4J, FALKORDB)}

Runner = Callable[[LiteralString], Awaitable[list[dict[str, Any]]]]


async def detect(run: Runner) -> Dialect:
    """Tell Neo4j from FalkorDB by asking each a procedure only it has.

    ``run`` executes a read-only statement and raises GraphQueryError when the server rejects
    it (and GraphUnavailable when it cannot be reached, which propagates).
    """
    try:
        rows = await run("CALL dbms.components() YIELD name RETURN name")
    except GraphQueryError:
        pass
    else:
        if any(str(r.get("name", "")).lower().startswith("neo4j") for r in rows):
            return NEO4J
    try:
        await run("CALL db.indexes() YIELD label RETURN label LIMIT 1")
    except GraphQueryError:
        pass
    else:
        return FALKORDB
    raise GraphQueryError(
        "the Bolt server is neither Neo4j 5 nor FalkorDB as far as tracktiond can tell "
        "(CALL dbms.components() and CALL db.indexes() both failed)"
    )
