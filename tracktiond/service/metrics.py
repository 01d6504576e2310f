"""Prometheus metrics on an injected registry.

Counters and histograms are updated where things happen; gauges about the catalog (files by
state, queue depth, oldest pending age) are computed at scrape time from the daemon's latest
catalog snapshot by a collector, so a scrape never queries the database. Names follow the
Prometheus conventions: prefix ``tracktiond_``, base units, ``_total`` counters, and no file
paths as labels (DESIGN invariant 8).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    Info,
    generate_latest,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.gc_collector import GCCollector
from prometheus_client.platform_collector import PlatformCollector
from prometheus_client.process_collector import ProcessCollector
from prometheus_client.registry import Collector

from tracktiond import __version__
from tracktiond.pipeline.stage import StageEvent

CONTENT_TYPE = CONTENT_TYPE_LATEST
DURATION_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 1800)


@dataclass(slots=True)
class CatalogSnapshot:
    """What the catalog looked like at ``taken`` (monotonic seconds); refreshed by the daemon."""

    files_by_state: dict[str, int] = field(default_factory=dict)
    recordings: int = 0
    duplicate_recordings: int = 0
    duplicate_files: int = 0
    queue_depth: int = 0
    oldest_pending_epoch: float | None = None
    analysis: dict[str, int] = field(default_factory=dict)
    outbox_depth: int = 0
    outbox_oldest_epoch: float | None = None
    # tracklist_counts(): current tracklists by source, their entries by match status,
    # tracklist sources by state (empty when the tracklist stage is off)
    tracklists: dict[str, dict[str, int]] = field(default_factory=dict)
    # index_stats() as a dict (empty when fingerprinting is off)
    fingerprint: dict[str, float] = field(default_factory=dict)
    taken: float = 0.0


class _SnapshotCollector(Collector):
    def __init__(
        self,
        snapshot: Callable[[], CatalogSnapshot],
        graph: Callable[[], dict[str, object] | None],
    ) -> None:
        self._snapshot = snapshot
        self._graph = graph

    def collect(self) -> Iterable[Metric]:
        snap = self._snapshot()
        files = GaugeMetricFamily(
            "tracktiond_files", "Cataloged file locations by state.", labels=["state"]
        )
        for state, n in sorted(snap.files_by_state.items()):
            files.add_metric([state], n)
        yield files
        yield GaugeMetricFamily(
            "tracktiond_recordings", "Distinct recordings (content) in the catalog.",
            value=snap.recordings,
        )  # fmt: skip
        yield GaugeMetricFamily(
            "tracktiond_duplicate_recordings",
            "Recordings present at more than one path.",
            value=snap.duplicate_recordings,
        )
        yield GaugeMetricFamily(
            "tracktiond_queue_depth", "Files waiting to be processed.", value=snap.queue_depth
        )
        analysis = GaugeMetricFamily(
            "tracktiond_analysis_streams",
            "Distinct audio streams by analysis state (analysed, pending, failed).",
            labels=["state"],
        )
        for state, n in sorted(snap.analysis.items()):
            analysis.add_metric([state], n)
        yield analysis
        yield from _tracklist_gauges(snap.tracklists)
        yield from _fingerprint_gauges(snap.fingerprint)
        graph = self._graph()
        if graph is not None:
            yield GaugeMetricFamily(
                "tracktiond_graph_up",
                "1 when the graph server answers.",
                value=int(bool(graph["up"])),
            )
            yield CounterMetricFamily(
                "tracktiond_graph_sync_batches",
                "Outbox batches written to the graph.",
                value=float(str(graph["batches"])),
            )
            yield CounterMetricFamily(
                "tracktiond_graph_sync_failures",
                "Graph sync attempts that failed (graph unreachable or rejecting).",
                value=float(str(graph["failures"])),
            )
            yield GaugeMetricFamily(
                "tracktiond_graph_outbox_rows",
                "Catalog changes not yet written to the graph.",
                value=snap.outbox_depth,
            )
            outbox_age = 0.0
            if snap.outbox_oldest_epoch is not None:
                outbox_age = max(0.0, time.time() - snap.outbox_oldest_epoch)
            yield GaugeMetricFamily(
                "tracktiond_graph_outbox_oldest_age_seconds",
                "Age of the oldest change not yet in the graph (0 when none).",
                value=outbox_age,
            )
        age = 0.0
        if snap.oldest_pending_epoch is not None:
            age = max(0.0, time.time() - snap.oldest_pending_epoch)
        yield GaugeMetricFamily(
            "tracktiond_queue_oldest_age_seconds",
            "Age of the oldest pending file (0 when the queue is empty).",
            value=age,
        )


_TRACKLIST_GAUGES = (
    ("tracklists", "tracktiond_tracklists", "Current tracklists by source.", "source"),
    (
        "entries",
        "tracktiond_tracklist_entries",
        "Entries of current tracklists by match (matched, ambiguous, possible, unmatched, "
        "unknown).",
        "match",
    ),
    ("sources", "tracktiond_tracklist_sources", "Tracklist sources by state.", "state"),
)


def _fingerprint_gauges(stats: dict[str, float]) -> Iterable[Metric]:
    if not stats:
        return
    yield GaugeMetricFamily(
        "tracktiond_fingerprint_tracks", "Tracks in the fingerprint index.", value=stats["tracks"]
    )
    yield GaugeMetricFamily(
        "tracktiond_fingerprint_index_bytes",
        "Bytes of the fingerprint index's posting batches in the catalog.",
        value=stats["index_bytes"],
    )
    yield GaugeMetricFamily(
        "tracktiond_fingerprint_indexed_audio_seconds",
        "Seconds of audio in the fingerprint index.",
        value=stats["indexed_seconds"],
    )
    sets = GaugeMetricFamily(
        "tracktiond_fingerprint_sets",
        "Fingerprinted sets, by whether they were identified against the index.",
        labels=["state"],
    )
    sets.add_metric(["identified"], stats["sets_identified"])
    sets.add_metric(["waiting"], max(0.0, stats["sets"] - stats["sets_identified"]))
    yield sets
    streams = GaugeMetricFamily(
        "tracktiond_fingerprint_streams",
        "Audio streams waiting to be fingerprinted, or failed.",
        labels=["state"],
    )
    streams.add_metric(["pending"], stats["pending"])
    streams.add_metric(["failed"], stats["failed"])
    yield streams


def _tracklist_gauges(counts: dict[str, dict[str, int]]) -> Iterable[Metric]:
    if not counts:
        return
    for key, name, doc, label in _TRACKLIST_GAUGES:
        gauge = GaugeMetricFamily(name, doc, labels=[label])
        for value, n in sorted(counts.get(key, {}).items()):
            gauge.add_metric([value], n)
        yield gauge


class Metrics:
    def __init__(
        self,
        registry: CollectorRegistry | None = None,
        snapshot: Callable[[], CatalogSnapshot] | None = None,
        graph: Callable[[], dict[str, object] | None] | None = None,
    ) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        ProcessCollector(registry=r)
        PlatformCollector(registry=r)
        GCCollector(registry=r)
        Info("tracktiond_build", "Build information.", registry=r).info({"version": __version__})
        self.jobs = Counter(
            "tracktiond_jobs_processed_total",
            "Jobs finished, by pipeline stage and outcome.",
            ["stage", "outcome"],
            registry=r,
        )
        self.job_failures = Counter(
            "tracktiond_jobs_failed_total",
            "Jobs that failed, by stage and failure class (bad_input, transient, bug).",
            ["stage", "failure_class"],
            registry=r,
        )
        self.stage_duration = Histogram(
            "tracktiond_stage_duration_seconds",
            "Time spent in a pipeline stage per file.",
            ["stage"],
            buckets=DURATION_BUCKETS,
            registry=r,
        )
        self.watcher_events = Counter(
            "tracktiond_watcher_events_total",
            "Filesystem events received, by kind (added, modified, deleted).",
            ["kind"],
            registry=r,
        )
        self.watch_fallbacks = Counter(
            "tracktiond_watcher_fallbacks_total",
            "Times a root fell back from live watching to periodic reconciliation.",
            registry=r,
        )
        self.roots_by_mode = Gauge(
            "tracktiond_roots", "Library roots by watch mode.", ["mode"], registry=r
        )
        self.reconciliations = Counter(
            "tracktiond_reconciliations_total",
            "Reconciliation walks completed, by trigger (startup, poll, full, reload, watcher).",
            ["trigger"],
            registry=r,
        )
        self.reconcile_last_duration = Gauge(
            "tracktiond_reconcile_last_duration_seconds",
            "Duration of the last completed full-root reconciliation.",
            registry=r,
        )
        self.reconcile_last_completion = Gauge(
            "tracktiond_reconcile_last_completion_timestamp_seconds",
            "Unix time the last full-root reconciliation completed.",
            registry=r,
        )
        self.catalog_up = Gauge(
            "tracktiond_catalog_up", "1 when the catalog database is reachable.", registry=r
        )
        self.catalog_errors = Counter(
            "tracktiond_catalog_errors_total",
            "Catalog operations that failed transiently and were retried.",
            registry=r,
        )
        self.reload_success = Gauge(
            "tracktiond_config_last_reload_successful",
            "1 when the last configuration reload succeeded.",
            registry=r,
        )
        self.reload_timestamp = Gauge(
            "tracktiond_config_last_reload_success_timestamp_seconds",
            "Unix time of the last successful configuration (re)load.",
            registry=r,
        )
        self.reloads = Counter(
            "tracktiond_config_reloads_total",
            "Configuration reloads, by result (success, failure).",
            ["result"],
            registry=r,
        )
        self.analysis_audio = Counter(
            "tracktiond_analysis_audio_seconds_total",
            "Seconds of audio analysed (its rate over the analysis busy time is the speed).",
            registry=r,
        )
        self.analysis_realtime = Gauge(
            "tracktiond_analysis_realtime_factor",
            "Audio seconds per wall-clock second of the last analysed file.",
            registry=r,
        )
        self.analysis_busy = Gauge(
            "tracktiond_analysis_workers_busy", "Analysis worker processes at work.", registry=r
        )
        self.fingerprint_audio = Counter(
            "tracktiond_fingerprint_audio_seconds_total",
            "Seconds of audio fingerprinted (tracks indexed and sets).",
            registry=r,
        )
        self.fingerprint_realtime = Gauge(
            "tracktiond_fingerprint_realtime_factor",
            "Audio seconds per wall-clock second of the last fingerprinted recording.",
            registry=r,
        )
        self.identify_audio = Counter(
            "tracktiond_identify_audio_seconds_total",
            "Seconds of sets identified against the fingerprint index.",
            registry=r,
        )
        self.identify_entries = Counter(
            "tracktiond_identify_entries_total",
            "Library tracks found in sets (entries of their auto tracklists).",
            registry=r,
        )
        self.tag_writes = Counter(
            "tracktiond_tag_writes_total",
            "Tag write-back results per file (written, unchanged, skipped, failed).",
            ["result"],
            registry=r,
        )
        self.workers = Gauge("tracktiond_workers", "Configured worker count.", registry=r)
        self.workers_busy = Gauge(
            "tracktiond_workers_busy", "Workers processing a file right now.", registry=r
        )
        self.ready = Gauge("tracktiond_ready", "1 when the daemon reports ready.", registry=r)
        self.catalog_up.set(0)
        self.reload_success.set(1)
        self.reload_timestamp.set_to_current_time()
        if snapshot is not None:
            r.register(_SnapshotCollector(snapshot, graph or (lambda: None)))

    def observe(self, event: StageEvent) -> None:
        """Count what one job of a stage came to."""
        self.jobs.labels(event.stage, event.outcome).inc()
        self.stage_duration.labels(event.stage).observe(event.seconds)
        if event.failure_class is not None:
            self.job_failures.labels(event.stage, event.failure_class).inc()
        if event.stage == "analysis" and event.audio_seconds > 0 and event.seconds > 0:
            self.analysis_audio.inc(event.audio_seconds)
            self.analysis_realtime.set(event.audio_seconds / event.seconds)
        if event.stage == "tags":
            self.tag_writes.labels(event.outcome).inc()
        if event.stage == "fingerprint" and event.audio_seconds > 0 and event.seconds > 0:
            self.fingerprint_audio.inc(event.audio_seconds)
            self.fingerprint_realtime.set(event.audio_seconds / event.seconds)
        if event.stage == "identify":
            self.identify_audio.inc(event.audio_seconds)
            self.identify_entries.inc(event.entries)

    # the watchers' counters (pipeline.watch.WatchCounters)

    def saw(self, change: str) -> None:
        self.watcher_events.labels(change).inc()

    def fell_back(self) -> None:
        self.watch_fallbacks.inc()

    def exposition(self) -> bytes:
        return generate_latest(self.registry)
