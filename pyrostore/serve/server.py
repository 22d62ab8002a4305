"""The asyncio server: listens, accepts connections, and stops cleanly.

:class:`Server` is usable inside an event loop (``await server.start()``, ``await server.close()``);
:func:`run` is the blocking entry point of ``pyrostore serve``, which runs until its stop event is set.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import itertools
import logging
import threading

from pyrostore.archive import Archive, open_archive
from pyrostore.errors import ListenFailed
from pyrostore.hugepages import disable_transparent_huge_pages
from pyrostore.serve.apis import APIS
from pyrostore.serve.cache import BatchCache
from pyrostore.serve.catalog import Catalog
from pyrostore.serve.config import Address, ServeConfig
from pyrostore.serve.connection import Connection
from pyrostore.serve.context import Broker
from pyrostore.serve.groups import Coordinator, GroupOffsets, GroupSettings
from pyrostore.serve.kafka_options import client_options
from pyrostore.serve.live import LiveCluster
from pyrostore.serve.metrics import ServeMetrics
from pyrostore.serve.tls import server_context
from pyrostore.serve.versions import advertised

log = logging.getLogger("pyrostore.serve")


def cluster_id(store_url: str) -> str:
    """The cluster id clients see: stable for one archive, in Kafka's 22-character form."""
    digest = hashlib.sha256(f"pyrostore:{store_url}".encode()).digest()[:16]
    return base64.urlsafe_b64encode(digest).decode().rstrip("=")


class Server:
    """A Kafka-protocol server over one archive."""

    def __init__(self, config: ServeConfig, archive: Archive | None = None) -> None:
        self.config = config
        self.archive = archive or open_archive(config.store_url, **config.store_options)
        self.catalog = Catalog(self.archive, config.topics, config.refresh_interval, config.topics_interval)
        self.apis = {api.key: api for api in APIS}
        self.live = (
            LiveCluster(client_options(config.kafka_properties, config.bootstrap_servers), config.refresh_interval)
            if config.bootstrap_servers
            else None
        )
        self.metrics = ServeMetrics()
        self.broker: Broker | None = None
        self._server: asyncio.Server | None = None
        self._connections: set[asyncio.Task] = set()
        self._numbers = itertools.count(1)

    async def start(self) -> Address:
        """List the served topics, listen, and return the address clients are told. Raises TopicNotFound,
        StoreError, ListenFailed."""
        topics = await asyncio.to_thread(self.catalog.load)
        if self.live is not None:
            await self.live.start(topics)
        listen = self.config.listen
        context = server_context(self.config.tls) if self.config.tls is not None else None
        try:
            self._server = await asyncio.start_server(self._accept, listen.host or None, listen.port, ssl=context)
        except OSError as exc:
            raise ListenFailed(f"cannot listen on {listen}: {exc.strerror or exc}") from exc
        port = self._server.sockets[0].getsockname()[1]
        if self.config.metrics_port is not None:
            self.metrics.expose(self.config.metrics_port)
        address = self.config.advertised(port)
        self.broker = Broker(
            config=self.config,
            catalog=self.catalog,
            batches=BatchCache(self.config.cache_bytes, self.config.batch_bytes, self.config.compression),
            node_id=self.config.node_id,
            address=address,
            cluster_id=cluster_id(self.archive.store.url),
            groups=Coordinator(
                GroupSettings(initial_rebalance_delay=self.config.group_initial_rebalance_delay),
                GroupOffsets(self.archive.store),
            ),
            versions=advertised((api.key, api.versions) for api in APIS),
            live=self.live,
            metrics=self.metrics,
        )
        log.info(
            "serving %s from %s%s on %s%s as node %d at %s",
            ", ".join(sorted(topics)) or "no topic yet",
            self.archive.store.url,
            f" and live Kafka at {self.live.bootstrap}" if self.live else "",
            Address(listen.host, port),
            _tls_mode(self.config),
            self.config.node_id,
            address,
            extra={"listen": str(Address(listen.host, port)), "advertise": str(address), "topics": sorted(topics)},
        )
        return address

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self.broker is None:  # not started: cannot happen, the socket is bound in start()
            writer.close()
            return
        task = asyncio.current_task()
        assert task is not None
        self._connections.add(task)
        try:
            await Connection(self.broker, self.apis, reader, writer, next(self._numbers)).run()
        except asyncio.CancelledError:
            pass  # close() ends connections; asyncio's stream callback must not see a cancelled task
        finally:
            self._connections.discard(task)

    async def close(self) -> None:
        """Stop listening, stop the group coordinator's timers and close every connection."""
        if self.broker is not None:
            self.broker.groups.close()
        if self._server is not None:
            self._server.close()
        for task in list(self._connections):
            task.cancel()
        for task in list(self._connections):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        if self._server is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), 5)
        if self.live is not None:
            await self.live.close()
        self.metrics.close()


def _tls_mode(config: ServeConfig) -> str:
    if config.tls is None:
        return ""
    return " over TLS" + (" with client certificates" if config.tls.client_ca is not None else "")


def run(config: ServeConfig, stop: threading.Event) -> None:
    """Serve until ``stop`` is set (the command line sets it on SIGINT and SIGTERM). Raises what
    :meth:`Server.start` raises."""
    disable_transparent_huge_pages()

    async def main() -> None:
        server = Server(config)
        try:
            await server.start()
            while not stop.is_set():
                await asyncio.sleep(0.2)
            log.info("stopping")
        finally:
            await server.close()
            server.archive.close()

    asyncio.run(main())
