"""The archiver's Prometheus metrics, in a registry of its own (several archivers can share a process)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server


class ArchiverMetrics:
    """Records, bytes, segments, commit latency, lag and lost offsets, labelled by topic and partition."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        labels = ["topic", "partition"]
        self.records = Counter("pyrostore_archived_records", "Records archived", labels, registry=self.registry)
        self.bytes = Counter("pyrostore_archived_bytes", "Segment bytes archived", labels, registry=self.registry)
        self.segments = Counter("pyrostore_archived_segments", "Segments archived", labels, registry=self.registry)
        self.commit_seconds = Histogram(
            "pyrostore_commit_seconds",
            "Time to upload and commit a segment",
            ["topic"],
            registry=self.registry,
        )
        self.lag = Gauge(
            "pyrostore_lag_records",
            "Kafka high watermark minus the archive's next offset",
            labels,
            registry=self.registry,
        )
        self.next_offset = Gauge(
            "pyrostore_archived_next_offset", "The archive's next offset", labels, registry=self.registry
        )
        self.lost = Counter(
            "pyrostore_lost_offsets",
            "Offsets Kafka deleted before they were archived",
            labels,
            registry=self.registry,
        )

    def serve(self, port: int) -> None:
        """Expose the metrics over HTTP on ``port`` (0.0.0.0)."""
        start_http_server(port, registry=self.registry)
