"""The mirror's Prometheus metrics, in a registry of its own."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, start_http_server


class MirrorMetrics:
    """Objects and bytes copied, commits copied, and each partition's lag in commits and in seconds."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        labels = ["topic", "partition"]
        self.objects = Counter(
            "pyrostore_mirror_objects", "Objects written to the target", ["kind"], registry=self.registry
        )
        self.bytes = Counter("pyrostore_mirror_bytes", "Bytes written to the target", ["kind"], registry=self.registry)
        self.commits = Counter("pyrostore_mirror_commits", "Commits copied", labels, registry=self.registry)
        self.lag_commits = Gauge(
            "pyrostore_mirror_lag_commits", "Source commits not in the target yet", labels, registry=self.registry
        )
        self.lag_seconds = Gauge(
            "pyrostore_mirror_lag_seconds",
            "Seconds since the oldest source commit the target lacks was made (0 when caught up)",
            labels,
            registry=self.registry,
        )

    def serve(self, port: int) -> None:
        """Expose the metrics over HTTP on ``port`` (0.0.0.0)."""
        start_http_server(port, registry=self.registry)


def kind_of(key: str) -> str:
    """The kind of archive object a key names, as the metrics label it."""
    parts = key.split("/")
    return {"data": "segment", "index": "node", "log": "commit", "head": "hint", "topics": "descriptor"}.get(
        parts[2] if len(parts) > 2 else "", "other"
    )
