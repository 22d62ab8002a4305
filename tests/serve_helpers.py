"""Helpers for ``pyrostore serve`` tests: a server on a thread with its own event loop, raw Kafka requests over a
socket (encoded and decoded with kio), and ``pyrostore serve`` as a child process."""

from __future__ import annotations

import asyncio
import io
import socket
import struct
import sys
import threading
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

from kio.index import load_request_schema, load_response_schema
from kio.serial import entity_reader, entity_writer

from pyrostore.serve import Address, ServeConfig, Server
from pyrostore.serve.messages import item_type, make
from tests.kafka_helpers import ChildProcess, wait_for


class ServerThread:
    """A :class:`Server` running on a thread with its own event loop (``with ServerThread(config) as s``)."""

    def __init__(self, config: ServeConfig) -> None:
        self.config = config
        self.address: Address | None = None
        self._stop = threading.Event()
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=lambda: asyncio.run(self._main()), daemon=True)

    async def _main(self) -> None:
        server = Server(self.config)
        try:
            self.address = await server.start()
        except BaseException as exc:
            self._error = exc
            self._ready.set()
            return
        self._ready.set()
        try:
            while not self._stop.is_set():
                await asyncio.sleep(0.05)
        finally:
            await server.close()
            server.archive.close()

    def __enter__(self) -> ServerThread:
        self._thread.start()
        self._ready.wait(30)
        if self._error is not None:
            raise self._error
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(30)

    @property
    def bootstrap(self) -> str:
        """``host:port`` for clients."""
        assert self.address is not None
        return str(self.address)

    def connect(self, timeout: float = 10) -> socket.socket:
        """A raw connection to the server."""
        assert self.address is not None
        return socket.create_connection((self.address.host, self.address.port), timeout=timeout)


def request_frame(api_key: int, version: int, correlation_id: int = 1, **values: Any) -> bytes:
    """A request frame (length prefix included) of kio's type for the version, built from ``values``."""
    schema = load_request_schema(api_key, version)
    header = schema.__header_schema__
    out = io.BytesIO()
    entity_writer(header)(
        out, header(request_api_key=api_key, request_api_version=version, correlation_id=correlation_id, client_id="t")
    )
    entity_writer(schema)(out, make(schema, **values))
    data = out.getvalue()
    return struct.pack(">i", len(data)) + data


def request_type(api_key: int, version: int, *path: str) -> type[Any]:
    """The class of a nested request field: ``request_type(1, 12, "topics", "partitions")``."""
    cls: type[Any] = load_request_schema(api_key, version)
    for name in path:
        cls = item_type(cls, name)
    return cls


def read_frame(sock: socket.socket) -> bytes:
    """One response frame's bytes (without the length prefix)."""
    size = struct.unpack(">i", _read_exactly(sock, 4))[0]
    return _read_exactly(sock, size)


def read_response(sock: socket.socket, api_key: int, version: int) -> tuple[int, Any]:
    """(correlation id, body) of the next response, decoded as kio's type for the API version."""
    frame = read_frame(sock)
    schema = load_response_schema(api_key, version)
    header, used = entity_reader(schema.__header_schema__)(frame, 0)
    body, _ = entity_reader(schema)(frame, used)
    return header.correlation_id, body


def call(sock: socket.socket, api_key: int, version: int, correlation_id: int = 1, **values: Any) -> Any:
    """Send one request and return its response body."""
    sock.sendall(request_frame(api_key, version, correlation_id, **values))
    got, body = read_response(sock, api_key, version)
    assert got == correlation_id
    return body


def fetch_values(version: int, topic: str, topic_id: Any, partition: int, offset: int, **overrides: Any) -> dict:
    """The values of a Fetch request for one partition (by name or id as the version wants)."""
    part = make(
        request_type(1, version, "topics", "partitions"),
        partition=partition,
        fetch_offset=offset,
        partition_max_bytes=overrides.pop("partition_max_bytes", 1 << 20),
        current_leader_epoch=-1,
        log_start_offset=-1,
        last_fetched_epoch=-1,
    )
    values = dict(
        replica_id=-1,
        max_wait=timedelta(milliseconds=0),
        min_bytes=0,
        max_bytes=50 << 20,
        isolation_level=1,
        session_id=0,
        session_epoch=-1,
        topics=(make(request_type(1, version, "topics"), topic=topic, topic_id=topic_id, partitions=(part,)),),
        forgotten_topics_data=(),
        rack_id="",
    )
    values.update(overrides)
    return values


def closed_by_peer(sock: socket.socket, timeout: float = 10) -> bool:
    """Whether the server closes the connection within ``timeout`` (reading and discarding what it sends)."""
    sock.settimeout(timeout)
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            if not sock.recv(65536):
                return True
    except ConnectionResetError:
        return True
    except TimeoutError:
        return False
    return False


def _read_exactly(sock: socket.socket, size: int) -> bytes:
    chunks, left = [], size
    while left:
        chunk = sock.recv(min(left, 1 << 20))
        if not chunk:
            raise ConnectionError(f"the server closed the connection with {left} of {size} bytes unread")
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)


class ServeProcess(ChildProcess):
    """``pyrostore serve`` as a child process, logging JSON; ``start()`` waits until it accepts connections."""

    def __init__(self, store: str, port: int, log: Path, *extra: str, env: dict[str, str] | None = None) -> None:
        args = [sys.executable, "-m", "pyrostore", "serve", "--store", store, "--listen", f"127.0.0.1:{port}"]
        super().__init__([*args, "--log-format", "json", *extra], log, env)
        self.port = port

    @property
    def bootstrap(self) -> str:
        """``host:port`` for clients."""
        return f"127.0.0.1:{self.port}"

    def start(self) -> ServeProcess:
        """Start and wait until the port accepts connections (fails early if the process exits)."""
        super().start()

        def accepting() -> bool:
            assert self.running(), f"pyrostore serve exited: {self.log_text()[-2000:]}"
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return True
            except OSError:
                return False

        wait_for(accepting, timeout=60, what=f"pyrostore serve to listen (log {self.log})", interval=0.2)
        return self


def free_port() -> int:
    """A TCP port nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]
