"""One client connection: frames in, handlers run, responses out in request order.

Requests are read as they arrive and each is handled at once (a long-polling Fetch does not stop the
requests behind it from being worked on), but responses go back strictly in request order, as Kafka's
protocol requires: a waiting Fetch holds the responses behind it. At most ``MAX_IN_FLIGHT`` requests are
worked on per connection; reading pauses beyond that.

A length prefix above the maximum, a frame that does not decode, an unknown API key or version, or a handler's
ProtocolError closes this connection only, with one log line; other connections never notice.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from pyrostore.errors import ProtocolError
from pyrostore.serve.context import Api, Broker, RequestContext
from pyrostore.serve.protocol import (
    LENGTH,
    Frame,
    Request,
    decode_request,
    encode_response,
    frame_size,
    send_pieces,
)

MAX_IN_FLIGHT = 64
log = logging.getLogger("pyrostore.serve")


class Connection:
    """Serves one accepted connection until the client leaves, the server stops, or the client breaks the
    protocol."""

    def __init__(
        self,
        broker: Broker,
        apis: dict[int, Api],
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        number: int,
    ) -> None:
        self.broker = broker
        self.apis = apis
        self.reader = reader
        self.writer = writer
        self.number = number
        # drain() waits until nothing is queued: the next piece is then sent straight from its own buffer.
        writer.transport.set_write_buffer_limits(high=0)
        peer = writer.get_extra_info("peername")
        self.peer = f"{peer[0]}:{peer[1]}" if isinstance(peer, tuple) else str(peer)

    async def run(self) -> None:
        """Read, answer and write until the connection ends; never raises (except cancellation)."""
        pending: asyncio.Queue[asyncio.Task[Frame] | None] = asyncio.Queue(MAX_IN_FLIGHT)
        responder = asyncio.create_task(self._respond(pending))
        self.broker.metrics.accepted.inc()
        self.broker.metrics.connections.inc()
        try:
            await self._read(pending)
            await pending.put(None)  # the responder writes what was read, then stops
            await responder
        finally:
            responder.cancel()
            while not pending.empty():  # answers nobody will read
                if (task := pending.get_nowait()) is not None:
                    task.cancel()
            self.writer.close()
            with contextlib.suppress(Exception):
                await self.writer.wait_closed()
            self.broker.metrics.connections.dec()
            if self.broker.live is not None:
                await self.broker.live.release(self.number)

    async def _read(self, pending: asyncio.Queue[asyncio.Task[Frame] | None]) -> None:
        maximum = self.broker.config.max_request_bytes
        while True:
            try:
                prefix = await self.reader.readexactly(LENGTH.size)
                frame = await self.reader.readexactly(frame_size(prefix, maximum))
                request = decode_request(frame, self.broker.versions)
            except (asyncio.IncompleteReadError, ConnectionError):
                return  # the client left (possibly mid-frame)
            except ProtocolError as exc:
                self._close_for(exc)
                return
            task = asyncio.create_task(self._answer(request))
            await pending.put(task)

    async def _answer(self, request: Request) -> Frame:
        ctx = RequestContext(self.broker, request, self.peer, self.number)
        api = self.apis[request.api_key]
        self.broker.metrics.requests.labels(api.name, str(request.api_version)).inc()
        response = await api.handle(ctx)
        return encode_response(request.correlation_id, response)

    async def _respond(self, pending: asyncio.Queue[asyncio.Task[Frame] | None]) -> None:
        """Write answers in request order until told to stop (None). After a failed answer the connection is
        closed and later answers are dropped (still taken from the queue, so the reader never waits on it)."""
        writing = True
        while (task := await pending.get()) is not None:
            if not writing:
                task.cancel()
                continue
            try:
                parts = await task
            except ProtocolError as exc:
                self._close_for(exc)
                writing = False
                continue
            except Exception:
                log.exception("connection %d from %s: a request failed; closing the connection", self.number, self.peer)
                self.writer.transport.abort()
                writing = False
                continue
            try:
                if self.writer.transport.is_closing():
                    raise ConnectionResetError
                for piece in send_pieces(parts):
                    self.writer.write(piece)
                    await self.writer.drain()  # returns at once unless the socket left some of it queued
            except ConnectionError:
                self.writer.transport.abort()
                writing = False

    def _close_for(self, exc: ProtocolError) -> None:
        log.warning("closing connection %d from %s: %s", self.number, self.peer, exc)
        self.writer.transport.abort()
