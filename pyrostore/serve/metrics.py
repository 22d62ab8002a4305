"""The server's Prometheus metrics, in a registry of its own (tests run several servers in one process)."""

from __future__ import annotations

import struct
from collections.abc import Sequence
from wsgiref.simple_server import WSGIServer

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server

from pyrostore.errors import ListenFailed

_BATCH_HEAD = struct.Struct(">qi")  # base offset, batch length (bytes after these 12)
_COUNT = struct.Struct(">i")
_COUNT_AT = 57  # a v2 batch's record count: after offset, length, epoch, magic, CRC, attributes, deltas, ids


def record_count(records: bytes | memoryview) -> int:
    """The number of records in whole v2 record batches laid end to end (a trailing partial batch, as Kafka may
    send, is not counted)."""
    count, pos = 0, 0
    while pos + _COUNT_AT + _COUNT.size <= len(records):
        _, length = _BATCH_HEAD.unpack_from(records, pos)
        end = pos + _BATCH_HEAD.size + length
        if end > len(records):
            break
        count += _COUNT.unpack_from(records, pos + _COUNT_AT)[0]
        pos = end
    return count


class ServeMetrics:
    """Connections, requests by API and version, bytes and records served by source, fetch latency, holes."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        registry = self.registry
        self.connections = Gauge("pyrostore_serve_connections", "Client connections open", registry=registry)
        self.accepted = Counter("pyrostore_serve_connections_accepted", "Connections accepted", registry=registry)
        self.requests = Counter(
            "pyrostore_serve_requests", "Requests answered, by API and version", ["api", "version"], registry=registry
        )
        self.bytes = Counter(
            "pyrostore_serve_bytes",
            "Record batch bytes served, by source (archive, kafka)",
            ["source"],
            registry=registry,
        )
        self.records = Counter(
            "pyrostore_serve_records", "Records served, by source (archive, kafka)", ["source"], registry=registry
        )
        self.fetch_seconds = Histogram(
            "pyrostore_serve_fetch_seconds", "Time to answer a Fetch, its wait for records included", registry=registry
        )
        self.holes = Counter(
            "pyrostore_serve_holes",
            "Fetches at offsets neither the archive nor Kafka holds",
            ["topic", "partition"],
            registry=registry,
        )
        self._http: WSGIServer | None = None

    def served(self, source: str, batches: Sequence[bytes | memoryview]) -> None:
        """Count record batches served from ``source``."""
        for batch in batches:
            self.bytes.labels(source).inc(len(batch))
            self.records.labels(source).inc(record_count(batch))

    def expose(self, port: int) -> None:
        """Serve the metrics over HTTP on ``port`` (every interface, as the archiver's). Raises ListenFailed."""
        try:
            self._http, _ = start_http_server(port, registry=self.registry)
        except OSError as exc:
            raise ListenFailed(f"cannot serve metrics on port {port}: {exc.strerror or exc}") from exc

    def close(self) -> None:
        """Stop serving the metrics over HTTP."""
        if self._http is not None:
            self._http.shutdown()
            self._http.server_close()
            self._http = None
