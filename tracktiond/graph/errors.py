"""What can go wrong with the graph, classified once (DESIGN invariant 5).

``GraphUnavailable`` is transient: the server is down, restarting, unreachable or refuses our
credentials; callers wait and retry, and the daemon reports itself degraded, not broken.
``GraphQueryError`` means the server is up but rejected a statement: a bug or a value the server
cannot store, never fixed by retrying the same statement. The lookup errors are for queries asked
about a recording the graph does not know, or cannot answer for.
"""

from __future__ import annotations

from tracktiond.errors import TracktiondError


class GraphError(TracktiondError):
    """Root of the graph's errors."""


class GraphUnavailable(GraphError):
    """The graph server cannot be reached or used right now; retrying later may work."""


class GraphQueryError(GraphError):
    """The server is reachable but rejected a statement."""


class RecordingNotFound(GraphError):
    """No recording in the graph has this uuid or path."""


class NotEnoughData(GraphError):
    """The recording lacks what the query needs (e.g. no BPM or key for mix suggestions)."""
