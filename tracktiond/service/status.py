"""The status document: what /status and `tracktiond status --json` print, one typed schema.

Two builders make the same ``StatusDocument``: ``daemon_status`` from a running daemon (cached
state only: it never queries the catalog, so /status answers while the catalog is down) and
``catalog_status`` from the catalog alone, for the CLI when no daemon answers. Every key is
present either way; what only a running daemon knows (its pid, run state, watchers, workers,
the graph sync) is ``null`` without one, and ``state`` is ``"not running"``.

The sections are frozen dataclasses rather than TypedDicts: a TypedDict is a promise the type
checker keeps only for code it sees, while ``from_json`` must *check* a document that came over
HTTP from another process (maybe another version): every key present, no unknown key, every
value of its type, else ``StatusSchemaError`` naming the key. Any change to the set of keys or
to a type bumps ``SCHEMA_VERSION``. docs/status.md describes every field.
"""

from __future__ import annotations

import json
import os
import time
import types
from dataclasses import dataclass, field, fields, is_dataclass
from datetime import datetime
from functools import cache
from typing import TYPE_CHECKING, Any, Final, Literal, Union, get_args, get_origin, get_type_hints

from tracktiond import __version__
from tracktiond.catalog.store import Catalog, Failure
from tracktiond.config import Config, redact_url
from tracktiond.errors import TracktiondError

if TYPE_CHECKING:
    from tracktiond.service.daemon import Daemon

SCHEMA_VERSION = 2
#: ``state`` when the document was built from the catalog because no daemon answers.
NOT_RUNNING: Final = "not running"

RunStateName = Literal[
    "starting", "reconciling", "awaiting_watchers", "ready", "stopping", "not running"
]


class StatusSchemaError(TracktiondError):
    """A status document that does not follow this version's schema (which key, and how)."""


# ---- the document ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CatalogInfo:
    up: bool
    reason: str | None
    url: str


@dataclass(frozen=True, slots=True)
class LastReload:
    ok: bool | None
    at: float | None
    error: str | None


@dataclass(frozen=True, slots=True)
class ConfigInfo:
    source: str | None
    last_reload: LastReload


@dataclass(frozen=True, slots=True)
class RootStatus:
    path: str
    mode: str | None
    reason: str | None
    since: float | None
    pending_events: int | None


@dataclass(frozen=True, slots=True)
class Duplicates:
    recordings: int
    files: int


@dataclass(frozen=True, slots=True)
class Backlog:
    pending: int
    oldest_age_seconds: float


@dataclass(frozen=True, slots=True)
class Workers:
    count: int | None
    busy: int | None
    processed: int | None


@dataclass(frozen=True, slots=True)
class AnalysisInfo:
    enabled: bool
    analysed: int | None
    pending: int | None
    failed: int | None
    workers: int | None
    busy: int | None


@dataclass(frozen=True, slots=True)
class FingerprintInfo:
    """The fingerprint index and the identification of sets (``null`` counts when off)."""

    enabled: bool
    tracks: int | None
    sets: int | None
    sets_identified: int | None
    pending: int | None
    failed: int | None
    index_bytes: int | None
    indexed_seconds: float | None
    busy: int | None


@dataclass(frozen=True, slots=True)
class TagProblem:
    path: str
    status: str
    reason: str


@dataclass(frozen=True, slots=True)
class TaggingInfo:
    enabled: bool
    files: dict[str, int] | None
    not_written: list[TagProblem] | None
    busy: int | None


@dataclass(frozen=True, slots=True)
class GraphInfo:
    enabled: bool
    uri: str | None
    dialect: str | None
    up: bool | None
    last_error: str | None
    batches: int | None
    failures: int | None
    synced: int | None
    skipped: int | None
    rebuilds: int | None
    last_sync: str | None
    outbox: Backlog


@dataclass(frozen=True, slots=True)
class RecordedFailure:
    """A failure recorded in the catalog (ingest, analysis, or a tracklist source)."""

    path: str
    stage: str
    class_: str = field(metadata={"json": "class"})
    reason: str
    at: str


@dataclass(frozen=True, slots=True)
class JobFailure:
    """A failed job the daemon saw since it started (also the retried ones)."""

    path: str
    job_id: int | str
    stage: str
    class_: str = field(metadata={"json": "class"})
    reason: str
    at: float
    final: bool


@dataclass(frozen=True, slots=True)
class StatusDocument:
    schema_version: int
    source: Literal["daemon", "catalog"]
    version: str
    pid: int | None
    instance: str | None
    started_at: float | None
    state: RunStateName
    ready: bool
    not_ready_reason: str | None
    catalog: CatalogInfo
    config: ConfigInfo
    roots: list[RootStatus]
    files: dict[str, int]
    recordings: int
    duplicates: Duplicates
    queue: Backlog
    workers: Workers
    analysis: AnalysisInfo
    fingerprint: FingerprintInfo
    tagging: TaggingInfo
    graph: GraphInfo
    reconciling: str | None
    recent_failures: list[RecordedFailure]
    recent_job_failures: list[JobFailure] | None

    def as_dict(self) -> dict[str, Any]:
        """The document as JSON-ready values (what /status sends)."""
        out: dict[str, Any] = _dump(self)
        return out

    def to_json(self, indent: int | None = 2) -> str:
        return json.dumps(self.as_dict(), indent=indent, ensure_ascii=False, allow_nan=False)

    @classmethod
    def from_dict(cls, data: object) -> StatusDocument:
        """Check ``data`` against the schema and build the document; StatusSchemaError if not."""
        if not isinstance(data, dict):
            raise StatusSchemaError(f"expected a JSON object, got {_json_type(data)}")
        version = data.get("schema_version")
        if version != SCHEMA_VERSION or isinstance(version, bool):
            raise StatusSchemaError(
                f"schema_version {json.dumps(version)}, this tracktiond reads {SCHEMA_VERSION}"
            )
        doc: StatusDocument = _load(cls, data, "")
        return doc

    @classmethod
    def from_json(cls, text: str | bytes) -> StatusDocument:
        try:
            data = json.loads(text)
        except ValueError as exc:
            raise StatusSchemaError(f"not JSON: {exc}") from None
        return cls.from_dict(data)


# ---- building it -------------------------------------------------------------------------------


def daemon_status(daemon: Daemon) -> StatusDocument:
    """The document of a running daemon, from its cached state (no catalog query)."""
    books = daemon.books
    snap = books.snapshot
    stages = daemon.stages
    ingest = stages.get("ingest") if stages else None
    analysis = stages.get("analysis") if stages else None
    tagging = stages.get("tags") if stages else None
    fingerprinting = stages.get("fingerprint") if stages else None
    reason = daemon.not_ready_reason()
    outbox = _backlog(snap.outbox_depth, snap.outbox_oldest_epoch)
    if daemon.graph is not None:
        graph: GraphInfo = _load(
            GraphInfo, {"enabled": True, **daemon.graph.status(), "outbox": outbox}, "graph"
        )
    else:
        graph = _graph_without_sync(enabled=False, uri=None, outbox=outbox)
    return StatusDocument(
        schema_version=SCHEMA_VERSION,
        source="daemon",
        version=__version__,
        pid=os.getpid(),
        instance=daemon.owner,
        started_at=daemon.started_at,
        state=_load(RunStateName, daemon.lifecycle.state.value, "state"),
        ready=reason is None,
        not_ready_reason=reason,
        catalog=CatalogInfo(
            up=daemon.health.up, reason=daemon.health.reason, url=daemon.health.url
        ),
        config=ConfigInfo(
            source=str(daemon.config_path) if daemon.config_path else None,
            last_reload=_load(LastReload, daemon.last_reload, "config.last_reload"),
        ),
        roots=_load(list[RootStatus], daemon.roots.describe(), "roots"),
        files=dict(snap.files_by_state),
        recordings=snap.recordings,
        duplicates=Duplicates(recordings=snap.duplicate_recordings, files=snap.duplicate_files),
        queue=_backlog(snap.queue_depth, snap.oldest_pending_epoch),
        workers=Workers(
            count=ingest.concurrency if ingest else 0,
            busy=ingest.busy if ingest else 0,
            processed=ingest.processed if ingest else 0,
        ),
        analysis=_analysis(
            analysis is not None,
            snap.analysis,
            workers=analysis.concurrency if analysis else 0,
            busy=analysis.busy if analysis else 0,
        ),
        fingerprint=_fingerprint(
            fingerprinting is not None,
            snap.fingerprint,
            busy=fingerprinting.busy if fingerprinting else 0,
        ),
        tagging=TaggingInfo(
            enabled=tagging is not None,
            files=dict(books.tag_counts) if tagging is not None else None,
            not_written=(
                _load(list[TagProblem], books.tag_problems, "tagging.not_written")
                if tagging is not None
                else None
            ),
            busy=tagging.busy if tagging else 0,
        ),
        graph=graph,
        reconciling=daemon.roots.reconciling,
        recent_failures=_load(list[RecordedFailure], books.db_failures, "recent_failures"),
        recent_job_failures=_load(
            list[JobFailure], list(books.recent_failures), "recent_job_failures"
        ),
    )


def status_document(daemon: Daemon) -> dict[str, Any]:
    """The body of /status: ``daemon_status(daemon)`` as JSON-ready values."""
    return daemon_status(daemon).as_dict()


async def catalog_status(config: Config, catalog: Catalog, *, failures: int = 10) -> StatusDocument:
    """The document built from the catalog alone, for when no daemon answers: the catalog's
    facts as a daemon would report them, ``null`` for what only a running daemon knows."""
    st = await catalog.status(failures=failures)
    depth, oldest = await catalog.queue_stats()
    outbox_depth, outbox_oldest = await catalog.outbox_stats()
    analysis_counts: dict[str, int] = {}
    analysis_failures: list[Failure] = []
    if config.analysis.enabled:
        from tracktiond.pipeline.analyse import settings_from_config

        fingerprint = settings_from_config(config.analysis).fingerprint()
        analysis_counts = await catalog.analysis_stats(fingerprint)
        analysis_failures = await catalog.analysis_failures(failures)
    index: dict[str, float] = {}
    if config.fingerprint.enabled:
        from dataclasses import asdict

        index = asdict(await catalog.index_stats())
    tag_files: dict[str, int] | None = None
    tag_problems: list[TagProblem] | None = None
    if config.tagging.write:
        from tracktiond.pipeline.tagging import options_fingerprint, options_from_config

        options = options_from_config(config.tagging)
        tag_files = await catalog.tag_stats(options_fingerprint(options))
        tag_problems = [
            TagProblem(path=f.path, status=f.error_class, reason=f.reason)
            for f in await catalog.tag_problems(failures)
        ]
    return StatusDocument(
        schema_version=SCHEMA_VERSION,
        source="catalog",
        version=__version__,
        pid=None,
        instance=None,
        started_at=None,
        state=NOT_RUNNING,
        ready=False,
        not_ready_reason=f"no daemon answers on {config.http.listen}",
        catalog=CatalogInfo(up=True, reason=None, url=redact_url(config.database_url)),
        config=ConfigInfo(
            source=str(config.source) if config.source else None,
            last_reload=LastReload(ok=None, at=None, error=None),
        ),
        roots=[
            RootStatus(path=str(p), mode=None, reason=None, since=None, pending_events=None)
            for p in config.library.roots
        ],
        files=dict(st.files_by_state),
        recordings=st.recordings,
        duplicates=Duplicates(recordings=st.duplicate_recordings, files=st.duplicate_files),
        queue=_backlog(depth, _epoch(oldest)),
        workers=Workers(count=None, busy=None, processed=None),
        analysis=_analysis(config.analysis.enabled, analysis_counts, workers=None, busy=None),
        fingerprint=_fingerprint(config.fingerprint.enabled, index, busy=None),
        tagging=TaggingInfo(
            enabled=config.tagging.write, files=tag_files, not_written=tag_problems, busy=None
        ),
        graph=_graph_without_sync(
            enabled=config.graph.enabled,
            uri=config.graph.uri or None,
            outbox=_backlog(outbox_depth, _epoch(outbox_oldest)),
        ),
        reconciling=None,
        recent_failures=[_recorded("ingest", f) for f in st.recent_failures]
        + [_recorded("analysis", f) for f in analysis_failures]
        + [_recorded("tracklists", f) for f in await catalog.tracklist_failures(failures)],
        recent_job_failures=None,
    )


def _analysis(
    enabled: bool, counts: dict[str, int], *, workers: int | None, busy: int | None
) -> AnalysisInfo:
    # Counted only while analysis is enabled; zeros until the first count.
    if not enabled:
        return AnalysisInfo(False, None, None, None, workers, busy)
    c = {"analysed": 0, "pending": 0, "failed": 0} | counts
    return AnalysisInfo(True, c["analysed"], c["pending"], c["failed"], workers, busy)


def _fingerprint(enabled: bool, stats: dict[str, float], *, busy: int | None) -> FingerprintInfo:
    # Counted only while fingerprinting is enabled; zeros until the first count.
    if not enabled:
        return FingerprintInfo(False, None, None, None, None, None, None, None, busy)
    c: dict[str, float] = {
        "tracks": 0, "sets": 0, "sets_identified": 0, "pending": 0, "failed": 0,
        "index_bytes": 0, "indexed_seconds": 0.0,
    } | stats  # fmt: skip
    return FingerprintInfo(
        True,
        int(c["tracks"]),
        int(c["sets"]),
        int(c["sets_identified"]),
        int(c["pending"]),
        int(c["failed"]),
        int(c["index_bytes"]),
        round(float(c["indexed_seconds"]), 1),
        busy,
    )


def _graph_without_sync(*, enabled: bool, uri: str | None, outbox: Backlog) -> GraphInfo:
    return GraphInfo(
        enabled=enabled,
        uri=uri,
        dialect=None,
        up=None,
        last_error=None,
        batches=None,
        failures=None,
        synced=None,
        skipped=None,
        rebuilds=None,
        last_sync=None,
        outbox=outbox,
    )


def _backlog(pending: int, oldest_epoch: float | None) -> Backlog:
    age = max(0.0, time.time() - oldest_epoch) if oldest_epoch else 0.0
    return Backlog(pending=pending, oldest_age_seconds=round(age, 1))


def _epoch(at: datetime | None) -> float | None:
    return at.timestamp() if at is not None else None


def _recorded(stage: str, f: Failure) -> RecordedFailure:
    return RecordedFailure(
        path=f.path, stage=stage, class_=f.error_class, reason=f.reason, at=f.at.isoformat()
    )


# ---- to and from JSON values -------------------------------------------------------------------


def _json_key(f: Any) -> str:
    key: str = f.metadata.get("json", f.name)
    return key


def _dump(value: Any) -> Any:
    if is_dataclass(value) and not isinstance(value, type):
        return {_json_key(f): _dump(getattr(value, f.name)) for f in fields(value)}
    if isinstance(value, list):
        return [_dump(v) for v in value]
    if isinstance(value, dict):
        return {k: _dump(v) for k, v in value.items()}
    return value


@cache
def _hints(cls: type) -> dict[str, Any]:
    return get_type_hints(cls)


def _load(tp: Any, data: Any, where: str) -> Any:
    """``data`` (JSON values) as type ``tp``; StatusSchemaError naming the key if it is not."""
    origin = get_origin(tp)
    if origin is Union or origin is types.UnionType:
        options = get_args(tp)
        if data is None and type(None) in options:
            return None
        for option in options:
            if option is type(None):
                continue
            try:
                return _load(option, data, where)
            except StatusSchemaError:
                continue
        raise _mismatch(where, tp, data)
    if origin is Literal:
        if isinstance(data, str) and data in get_args(tp):
            return data
        raise _mismatch(where, tp, data)
    if origin is list:
        if not isinstance(data, list):
            raise _mismatch(where, tp, data)
        (item,) = get_args(tp)
        return [_load(item, v, f"{where}[{i}]") for i, v in enumerate(data)]
    if origin is dict:
        if not isinstance(data, dict):
            raise _mismatch(where, tp, data)
        _, value = get_args(tp)
        return {str(k): _load(value, v, _at(where, str(k))) for k, v in data.items()}
    if is_dataclass(tp):
        return _load_dataclass(tp, data, where)
    if tp is bool:
        if isinstance(data, bool):
            return data
    elif tp is int:
        if isinstance(data, int) and not isinstance(data, bool):
            return data
    elif tp is float:
        if isinstance(data, int | float) and not isinstance(data, bool):
            return float(data)
    elif tp is str:
        if isinstance(data, str):
            return data
    else:
        raise StatusSchemaError(f"{where or 'document'}: no rule for type {tp!r}")  # our bug
    raise _mismatch(where, tp, data)


def _load_dataclass(cls: Any, data: Any, where: str) -> Any:
    if not isinstance(data, dict):
        raise _mismatch(where, cls, data)
    hints = _hints(cls)
    keys = {_json_key(f): f for f in fields(cls)}
    unknown = sorted(set(data) - set(keys))
    if unknown:
        raise StatusSchemaError(f"{where or 'document'}: unknown key {unknown[0]!r}")
    kwargs = {}
    for key, f in keys.items():
        if key not in data:
            raise StatusSchemaError(f"{where or 'document'}: missing key {key!r}")
        kwargs[f.name] = _load(hints[f.name], data[key], _at(where, key))
    return cls(**kwargs)


def _at(where: str, key: str) -> str:
    return f"{where}.{key}" if where else key


def _mismatch(where: str, tp: Any, data: Any) -> StatusSchemaError:
    return StatusSchemaError(
        f"{where or 'document'}: expected {_type_name(tp)}, got {_json_type(data)}"
    )


def _type_name(tp: Any) -> str:
    origin = get_origin(tp)
    if origin is Union or origin is types.UnionType:
        return " or ".join(_type_name(a) for a in get_args(tp))
    if origin is Literal:
        return "one of " + ", ".join(json.dumps(a) for a in get_args(tp))
    if origin is list:
        return "a list"
    if origin is dict or is_dataclass(tp):
        return "an object"
    names = {bool: "a boolean", int: "an integer", float: "a number", str: "a string"}
    return names.get(tp, "null" if tp is type(None) else repr(tp))


def _json_type(data: Any) -> str:
    if data is None:
        return "null"
    if isinstance(data, bool):
        return json.dumps(data)
    if isinstance(data, int | float):
        return f"the number {data!r}"
    if isinstance(data, str):
        return f"the string {json.dumps(data)[:60]}"
    if isinstance(data, list):
        return "a list"
    if isinstance(data, dict):
        return "an object"
    return type(data).__name__
