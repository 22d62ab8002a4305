"""An HTTP-aware fault proxy in front of an S3 or GCS server: a configured share of requests fails.

Toxiproxy works on TCP bytes and cannot answer with an HTTP status; this proxy can. It relays HTTP/1.1
requests and responses byte for byte (so S3 signatures stay valid) and, for a ``share`` of requests chosen by a
seeded RNG, injects one of :data:`KINDS` (taking turns):

- ``500``, ``503``, ``429``: answered by the proxy with the backend's error body (S3: XML ``InternalError``,
  ``SlowDown``, ``TooManyRequests``; GCS: JSON ``backendError``, ``rateLimitExceeded``); the request never
  reaches the server.
- ``truncate``: the request is forwarded (it takes effect), the answer declares its full Content-Length but
  only half the body is sent, then the connection closes (a HEAD, having no body, gets no answer at all).
- ``stall``: the request is forwarded, and its answer held back ``stall_seconds`` before it is sent.

The proxy runs an asyncio loop in a thread of the calling process; the test changes its settings with
:meth:`FaultProxy.configure` and reads what it injected from :meth:`FaultProxy.counts`.
"""

from __future__ import annotations

import asyncio
import json
import random
import threading
from collections import Counter, deque
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from urllib.parse import urlsplit

KINDS = ("500", "503", "429", "truncate", "stall")
FLAVOURS = ("s3", "gcs")
_STATUS = {
    "500": (500, "Internal Server Error"),
    "503": (503, "Service Unavailable"),
    "429": (429, "Too Many Requests"),
}
_S3_ERRORS = {
    "500": ("InternalError", "We encountered an internal error. Please try again."),
    "503": ("SlowDown", "Please reduce your request rate."),
    "429": ("TooManyRequests", "Please reduce your request rate."),
}
_GCS_ERRORS = {
    "500": ("backendError", "Backend Error"),
    "503": ("backendError", "Service Unavailable"),
    "429": ("rateLimitExceeded", "The rate of change requests to the object exceeds the rate limit."),
}
_HEAD_LIMIT = 1 << 20
_RECENT = 1000


@dataclass(frozen=True)
class FaultSettings:
    """What to inject: a ``share`` (0..1) of requests fails, the ``kinds`` taking turns."""

    share: float = 0.0
    kinds: tuple[str, ...] = KINDS
    stall_seconds: float = 2.0

    def __post_init__(self) -> None:
        if not 0.0 <= self.share <= 1.0:
            raise ValueError(f"fault share must be within 0 and 1, not {self.share}")
        if unknown := set(self.kinds) - set(KINDS):
            raise ValueError(f"unknown fault kinds {sorted(unknown)}; choose from {', '.join(KINDS)}")
        if self.share and not self.kinds:
            raise ValueError("a fault share above 0 needs at least one fault kind")


def choose(rng: random.Random, settings: FaultSettings, turn: int) -> str | None:
    """The fault for the next request, or None to pass it through: the RNG picks which requests fail, and the
    kinds take turns (``turn``: faults injected so far), so that even a short run sees every kind."""
    if rng.random() >= settings.share:
        return None
    return settings.kinds[turn % len(settings.kinds)]


def error_answer(flavour: str, kind: str, resource: str, request_id: str, head_only: bool = False) -> bytes:
    """The whole HTTP response for an error ``kind`` (500, 503, 429) in the backend's own error format."""
    status, reason = _STATUS[kind]
    if flavour == "s3":
        code, message = _S3_ERRORS[kind]
        body = (
            '<?xml version="1.0" encoding="UTF-8"?>\n'
            f"<Error><Code>{code}</Code><Message>{message}</Message><Resource>{resource}</Resource>"
            f"<RequestId>{request_id}</RequestId></Error>"
        ).encode()
        content_type = "application/xml"
    else:
        code, message = _GCS_ERRORS[kind]
        error = {"code": status, "message": message, "errors": [{"message": message, "reason": code}]}
        body = json.dumps({"error": error}).encode()
        content_type = "application/json; charset=UTF-8"
    head = (
        f"HTTP/1.1 {status} {reason}\r\nContent-Type: {content_type}\r\nContent-Length: {len(body)}\r\n"
        f"x-amz-request-id: {request_id}\r\n\r\n"
    ).encode()
    return head if head_only else head + body


@dataclass
class _Message:
    """An HTTP/1.1 request or response head: its first line and headers, in order and as sent."""

    start: bytes
    headers: list[tuple[bytes, bytes]] = field(default_factory=list)

    @classmethod
    def parse(cls, head: bytes) -> _Message:
        lines = head[:-4].split(b"\r\n")
        headers = [(name.strip(), value.strip()) for name, _, value in (line.partition(b":") for line in lines[1:])]
        return cls(lines[0], headers)

    def get(self, name: bytes) -> bytes | None:
        found = [value for key, value in self.headers if key.lower() == name]
        return found[-1] if found else None

    def without(self, *names: bytes) -> _Message:
        return _Message(self.start, [(k, v) for k, v in self.headers if k.lower() not in names])

    def encode(self) -> bytes:
        return self.start + b"\r\n" + b"".join(k + b": " + v + b"\r\n" for k, v in self.headers) + b"\r\n"

    def closes(self) -> bool:
        return (self.get(b"connection") or b"").lower() == b"close"


async def _read_head(reader: asyncio.StreamReader) -> _Message | None:
    """The next message head, or None when the peer closed between messages."""
    try:
        return _Message.parse(await reader.readuntil(b"\r\n\r\n"))
    except asyncio.IncompleteReadError as exc:
        if exc.partial.strip():
            raise
        return None


def _delimited(message: _Message) -> bool:
    """Whether the message's body has a length or chunked framing (else a response's body ends at close)."""
    chunked = b"chunked" in (message.get(b"transfer-encoding") or b"").lower()
    return chunked or message.get(b"content-length") is not None


async def _read_body(reader: asyncio.StreamReader, message: _Message, until_close: bool) -> tuple[bytes, bytes]:
    """The body as sent and as decoded (chunked framing removed); without a length and with ``until_close``,
    everything until the peer closes."""
    if b"chunked" in (message.get(b"transfer-encoding") or b"").lower():
        raw, decoded = bytearray(), bytearray()
        while True:
            line = await reader.readuntil(b"\r\n")
            raw += line
            size = int(line.split(b";")[0].strip(), 16)
            if size == 0:
                while (trailer := await reader.readuntil(b"\r\n")) != b"\r\n":
                    raw += trailer
                raw += trailer
                return bytes(raw), bytes(decoded)
            chunk = await reader.readexactly(size + 2)
            raw += chunk
            decoded += chunk[:-2]
    if (length := message.get(b"content-length")) is not None:
        data = await reader.readexactly(int(length))
        return data, data
    data = await reader.read() if until_close else b""
    return data, data


_Connection = tuple[asyncio.StreamReader, asyncio.StreamWriter]


@dataclass
class _Answer:
    """The server's answer to one request: head, body as sent and decoded, and whether the connection ends."""

    head: _Message
    raw: bytes
    decoded: bytes
    ends_connection: bool


def _has_body(method: bytes, status: int) -> bool:
    return method != b"HEAD" and status >= 200 and status not in (204, 304)


class FaultProxy:
    """A proxy on a free loopback port in front of ``upstream`` (``http://host:port``) that fails a share of
    requests; ``flavour`` (s3 or gcs) picks the error bodies. Start it with :meth:`start`."""

    def __init__(self, upstream: str, flavour: str, seed: int = 2026) -> None:
        if flavour not in FLAVOURS:
            raise ValueError(f"unknown flavour {flavour!r}; choose from {', '.join(FLAVOURS)}")
        parts = urlsplit(upstream)
        if parts.scheme != "http" or not parts.hostname or not parts.port:
            raise ValueError(f"upstream must be http://host:port, not {upstream!r}")
        self.upstream = upstream
        self.flavour = flavour
        self._target = (parts.hostname, parts.port)
        self._rng = random.Random(seed)
        self._turn = 0
        self._settings = FaultSettings()
        self._counts: Counter[str] = Counter()
        self._recent: deque[tuple[str, str, str | None]] = deque(maxlen=_RECENT)
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._server: asyncio.base_events.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._thread: threading.Thread | None = None
        self.endpoint = ""

    def configure(
        self, share: float, kinds: tuple[str, ...] = KINDS, stall_seconds: float = 2.0, seed: int | None = None
    ) -> None:
        """Fail ``share`` of the requests from now on, the ``kinds`` taking turns; ``seed`` restarts the
        RNG. Raises ValueError for a share outside [0, 1] or an unknown kind."""
        settings = FaultSettings(share, tuple(kinds), stall_seconds)
        with self._lock:
            self._settings = settings
            if seed is not None:
                self._rng, self._turn = random.Random(seed), 0

    @contextmanager
    def failing(
        self, share: float, kinds: tuple[str, ...] = KINDS, stall_seconds: float = 2.0, seed: int | None = None
    ) -> Iterator[FaultProxy]:
        """Faults as :meth:`configure` sets them for the ``with`` block, counted from zero; none after it."""
        self.configure(share, kinds, stall_seconds, seed)
        self.reset_counts()
        try:
            yield self
        finally:
            self.configure(0.0)

    def counts(self) -> dict[str, int]:
        """Requests seen (``requests``) and faults injected by kind, since start or :meth:`reset_counts`."""
        with self._lock:
            return {"requests": 0, **{kind: 0 for kind in KINDS}, **self._counts}

    def recent(self) -> list[tuple[str, str, str | None]]:
        """The last requests (up to 1000) as (method, path, fault or None), oldest first: what failed where."""
        with self._lock:
            return list(self._recent)

    def reset_counts(self) -> None:
        """Start counting from zero (and forget the recent requests)."""
        with self._lock:
            self._counts.clear()
            self._recent.clear()

    def start(self) -> FaultProxy:
        """Listen on a free port of 127.0.0.1 (``endpoint``) and serve from a background thread."""
        loop = asyncio.new_event_loop()
        started = threading.Event()

        def run() -> None:
            asyncio.set_event_loop(loop)
            self._server = loop.run_until_complete(asyncio.start_server(self._serve, "127.0.0.1", 0, limit=_HEAD_LIMIT))
            self.endpoint = f"http://127.0.0.1:{self._server.sockets[0].getsockname()[1]}"
            started.set()
            loop.run_forever()
            loop.close()

        self._loop = loop
        self._thread = threading.Thread(target=run, name=f"fault-proxy-{self.flavour}", daemon=True)
        self._thread.start()
        if not started.wait(10):
            raise RuntimeError(f"the fault proxy to {self.upstream} did not start")
        return self

    def stop(self) -> None:
        """Close the port and every connection, and end the thread."""
        if self._loop is None or self._thread is None:
            return

        async def shut() -> None:
            assert self._server is not None
            self._server.close()
            for writer in list(self._writers):
                writer.close()
            await asyncio.sleep(0)

        asyncio.run_coroutine_threadsafe(shut(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop = None

    # --- the loop's side ---------------------------------------------------------------------------------

    def _next_fault(self, method: bytes, path: bytes) -> tuple[str | None, float]:
        with self._lock:
            self._counts["requests"] += 1
            fault = choose(self._rng, self._settings, self._turn)
            self._recent.append((method.decode(), path.decode(errors="replace"), fault))
            if fault is not None:
                self._turn += 1
                self._counts[fault] += 1
            return fault, self._settings.stall_seconds

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """One client connection: its requests in turn, over one upstream connection opened when needed."""
        self._writers.add(writer)
        upstream: _Connection | None = None
        try:
            while (request := await _read_head(reader)) is not None:
                if (request.get(b"expect") or b"").lower() == b"100-continue":
                    writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
                    request = request.without(b"expect")  # S3 signatures never cover Expect
                body, _ = await _read_body(reader, request, until_close=False)
                method, path = request.start.split(b" ")[:2]
                fault, stall = self._next_fault(method, path)
                if fault in _STATUS:
                    writer.write(
                        error_answer(
                            self.flavour,
                            fault,
                            path.decode(errors="replace"),
                            "fault-proxy",
                            head_only=method == b"HEAD",
                        )
                    )
                    await writer.drain()
                    if request.closes():
                        break
                    continue
                upstream, answer = await self._forward(upstream, request.encode() + body, method)
                if answer.ends_connection and upstream is not None:
                    upstream[1].close()
                    upstream = None
                if fault == "truncate":
                    await self._truncated(writer, answer, method)
                    break
                if fault == "stall":
                    await asyncio.sleep(stall)
                writer.write(answer.head.encode() + answer.raw)
                await writer.drain()
                if request.closes() or answer.ends_connection:
                    break
        except (ConnectionError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError):
            pass  # the client or the server went away mid-message: drop the connection, as a server would
        finally:
            if upstream is not None:
                upstream[1].close()
            writer.close()
            self._writers.discard(writer)

    async def _forward(
        self, upstream: _Connection | None, request: bytes, method: bytes
    ) -> tuple[_Connection, _Answer]:
        """Send one request upstream (on a new connection if the kept one was closed) and read the answer."""
        for attempt in range(2):
            if upstream is None:
                upstream = await asyncio.open_connection(*self._target, limit=_HEAD_LIMIT)
            up_reader, up_writer = upstream
            try:
                up_writer.write(request)
                await up_writer.drain()
                head = await _read_head(up_reader)
                while head is not None and head.start.split(b" ")[1].startswith(b"1"):
                    head = await _read_head(up_reader)  # interim answers (100 Continue): the client had one
            except ConnectionError:
                head = None
            if head is None:  # a kept connection the server had closed: once more on a fresh one
                up_writer.close()
                upstream = None
                if attempt:
                    raise ConnectionResetError(f"{self.upstream} closed the connection without answering")
                continue
            if not _has_body(method, int(head.start.split(b" ")[1])):
                return upstream, _Answer(head, b"", b"", head.closes())
            raw, decoded = await _read_body(up_reader, head, until_close=True)
            return upstream, _Answer(head, raw, decoded, head.closes() or not _delimited(head))
        raise AssertionError("unreachable")

    async def _truncated(self, writer: asyncio.StreamWriter, answer: _Answer, method: bytes) -> None:
        """Declare the whole body (at least one byte), send half of it, and let the caller close."""
        if method == b"HEAD":
            return  # no body to cut: the connection closes with no answer
        head = answer.head.without(b"content-length", b"transfer-encoding", b"connection")
        head.headers += [(b"Content-Length", str(max(len(answer.decoded), 1)).encode()), (b"Connection", b"close")]
        writer.write(head.encode() + answer.decoded[: len(answer.decoded) // 2])
        await writer.drain()
