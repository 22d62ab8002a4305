"""The live Kafka cluster behind the server (``--bootstrap-servers``): its extents, offsets and record batches.

Past the archive's end, records come from Kafka as Kafka sent them: the Fetch response's record batches are
passed to the client undecoded, with Kafka's aborted-transaction list. A broker answers one request at a time
per connection, so each client connection gets a Kafka client of its own for fetches (its long polls then
hold no other client's requests); extents and offsets are asked on one shared client.

Kafka being unreachable is not an error here: every call answers None (logged once per outage), and the server
serves the archive alone until Kafka answers again. Kafka refusing the server at start (wrong credentials, an
untrusted certificate, no ACL for a served topic) is: waiting would not fix it.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

from aiokafka.client import AIOKafkaClient
from aiokafka.conn import create_conn
from aiokafka.errors import KafkaError, SaslAuthenticationFailed
from aiokafka.protocol.fetch import FetchRequest
from aiokafka.protocol.offset import OffsetRequest
from aiokafka.structs import TopicPartition

from pyrostore.errors import KafkaAccessDenied
from pyrostore.serve.decisions import EARLIEST, LATEST

log = logging.getLogger("pyrostore.serve")
T = TypeVar("T")
RETRY_INTERVAL = 1.0  # seconds between attempts to reach an unreachable cluster
METADATA_ATTEMPTS = 3  # metadata requests to learn of a topic Kafka may not know
_FAILURES = (KafkaError, OSError, asyncio.TimeoutError)
# AIOKafkaClient arguments that make its connections (create_conn takes the same names).
_CONNECTION = (
    "client_id",
    "request_timeout_ms",
    "ssl_context",
    "security_protocol",
    "sasl_mechanism",
    "sasl_plain_username",
    "sasl_plain_password",
)
logging.getLogger("aiokafka").setLevel(logging.CRITICAL)  # its connection errors repeat ours, once per attempt


@dataclass(frozen=True)
class KafkaExtent:
    """What Kafka holds of a partition: ``[low, high)``, as of ``taken`` (time.monotonic())."""

    low: int
    high: int
    taken: float


@dataclass(frozen=True)
class LiveWant:
    """One partition a fetch asks Kafka for."""

    topic: str
    partition: int
    offset: int
    max_bytes: int


@dataclass(frozen=True)
class LivePartition:
    """Kafka's answer for one partition of a fetch, as Kafka gave it."""

    error: int
    high_watermark: int
    last_stable_offset: int
    log_start_offset: int
    aborted: tuple[tuple[int, int], ...] | None  # (producer id, first offset); None when Kafka sent none
    records: bytes


class _Link:
    """One aiokafka client and whether it is connected; reconnects at most every RETRY_INTERVAL."""

    def __init__(self, options: Mapping[str, Any]) -> None:
        self.options = options
        self.client: AIOKafkaClient | None = None
        self._failed_at = float("-inf")
        self._lock = asyncio.Lock()

    async def ready(self) -> AIOKafkaClient | None:
        if self.client is not None:
            return self.client
        if time.monotonic() - self._failed_at < RETRY_INTERVAL:
            return None
        async with self._lock:
            if self.client is None and time.monotonic() - self._failed_at >= RETRY_INTERVAL:
                client = AIOKafkaClient(**self.options)
                try:
                    await client.bootstrap()
                except _FAILURES:
                    self._failed_at = time.monotonic()
                    await client.close()
                    return None
                self.client = client
        return self.client

    async def close(self) -> None:
        if self.client is not None:
            await self.client.close()
            self.client = None


class LiveCluster:
    """The live cluster: shared look-ups, and a fetching client per client connection."""

    def __init__(self, options: Mapping[str, Any], refresh_interval: float) -> None:
        self.options = options
        self.refresh_interval = refresh_interval
        self.bootstrap = ",".join(options["bootstrap_servers"])
        self._lookups = _Link(options)
        self._fetchers: dict[int, _Link] = {}
        self._extents: dict[tuple[str, int], KafkaExtent] = {}
        self._refreshing: dict[str, asyncio.Future] = {}
        self._down_since: float | None = None

    async def start(self, topics: Iterable[str] = ()) -> None:
        """Connect for look-ups; an unreachable cluster is logged and tried again when needed. Raises
        KafkaAccessDenied when Kafka refuses the server's credentials or certificate, or denies it one of
        ``topics`` (the served ones)."""
        client = await self._lookups.ready()
        if client is None:
            if (why := await self._refusal()) is not None:
                raise KafkaAccessDenied(why)
            self._went_down("cannot reach it at start")
            return
        for topic in topics:
            try:
                await _learn(client, topic)
            except _FAILURES:
                continue  # a look-up that fails now is retried when a client needs it
            if topic in client.cluster.unauthorized_topics:
                raise KafkaAccessDenied(
                    f"Kafka at {self.bootstrap}: not authorized for topic {topic!r}: the server's user has no ACL "
                    "allowing it to describe and read the topic"
                )

    async def _refusal(self) -> str | None:
        """Why Kafka refuses a connection (authentication, certificate), or None: aiokafka's bootstrap says only
        that it failed, so one connection is made here to see the reason."""
        host, _, port = self.options["bootstrap_servers"][0].rpartition(":")
        try:
            conn = await create_conn(host, int(port), **{k: self.options[k] for k in _CONNECTION if k in self.options})
        except SaslAuthenticationFailed as exc:
            return f"Kafka at {self.bootstrap}: authentication failed: {exc}"
        except ssl.SSLCertVerificationError as exc:
            return f"Kafka at {self.bootstrap}: TLS certificate verify failed: {exc.verify_message}"
        except (*_FAILURES, ValueError):
            return None
        conn.close()
        return None

    async def close(self) -> None:
        """Close every client."""
        for link in [self._lookups, *self._fetchers.values()]:
            await link.close()
        self._fetchers.clear()

    async def release(self, connection: int) -> None:
        """Close the fetching client of a client connection that ended."""
        link = self._fetchers.pop(connection, None)
        if link is not None:
            await link.close()

    async def extent(self, topic: str, partition: int, max_age: float) -> KafkaExtent | None:
        """What Kafka holds of a partition, no older than ``max_age`` seconds (every partition of the topic is
        asked at once); None when Kafka cannot be asked or does not know the partition."""
        known = self._extents.get((topic, partition))
        if known is not None and time.monotonic() - known.taken <= max_age:
            return known
        running = self._refreshing.get(topic)
        if running is None:
            running = self._refreshing[topic] = asyncio.ensure_future(self._refresh(topic))
            running.add_done_callback(lambda _: self._refreshing.pop(topic, None))
        await asyncio.shield(running)
        return self._extents.get((topic, partition))

    async def _refresh(self, topic: str) -> None:
        async def ask(client: AIOKafkaClient) -> tuple[float, dict[int, tuple[int, int]], dict[int, tuple[int, int]]]:
            partitions = sorted(client.cluster.partitions_for_topic(topic) or ())
            taken = time.monotonic()
            lows = await self._list(client, topic, partitions, EARLIEST, 0)
            return taken, lows, await self._list(client, topic, partitions, LATEST, 0)

        answer = await self._lookup(topic, ask)
        if answer is not None:
            taken, lows, highs = answer
            for partition, (low, _) in lows.items():
                if partition in highs:
                    self._extents[(topic, partition)] = KafkaExtent(low, highs[partition][0], taken)

    async def offset(self, topic: str, partition: int, timestamp: int, isolation_level: int) -> tuple[int, int] | None:
        """ListOffsets on Kafka for one partition: (offset, timestamp), (-1, -1) when none; None when Kafka
        cannot be asked."""
        found = await self._lookup(
            topic, lambda client: self._list(client, topic, [partition], timestamp, isolation_level)
        )
        return found.get(partition) if found is not None else None

    async def _lookup(self, topic: str, ask: Callable[[AIOKafkaClient], Awaitable[T]]) -> T | None:
        """``ask`` on the look-up client, knowing ``topic``'s leaders; None when Kafka cannot be asked."""
        client = await self._lookups.ready()
        if client is None:
            self._went_down("cannot reach it")
            return None
        try:
            await _learn(client, topic)
            answer = await ask(client)
        except _FAILURES as exc:
            self._went_down(str(exc) or type(exc).__name__)
            return None
        self._came_back()
        return answer

    async def _list(
        self, client: AIOKafkaClient, topic: str, partitions: Iterable[int], timestamp: int, isolation_level: int
    ) -> dict[int, tuple[int, int]]:
        """Partition: (offset, timestamp) from each partition's leader; partitions answering an error are left out."""
        by_leader: dict[int, list[tuple[int, int]]] = {}
        for partition in partitions:
            leader = client.cluster.leader_for_partition(TopicPartition(topic, partition))
            if leader is not None and leader >= 0:
                by_leader.setdefault(leader, []).append((partition, timestamp))
        answers = await asyncio.gather(
            *(
                client.send(leader, OffsetRequest(-1, isolation_level, [(topic, wanted)]))
                for leader, wanted in by_leader.items()
            )
        )
        found = {}
        for response in answers:
            for _, rows in response.topics:
                for row in rows:
                    partition, error, stamp, offset = row[0], row[1], row[2], row[3]
                    if error == 0:
                        found[partition] = (offset, stamp)
        return found

    async def fetch(
        self,
        connection: int,
        wanted: list[LiveWant],
        max_wait_ms: int,
        min_bytes: int,
        max_bytes: int,
        isolation_level: int,
    ) -> dict[tuple[str, int], LivePartition] | None:
        """Fetch ``wanted`` from their leaders on the connection's own client, waiting as the client asked;
        None when Kafka cannot be asked. Partitions whose leader is unknown are left out."""
        link = self._fetchers.get(connection)
        if link is None:
            link = self._fetchers[connection] = _Link(self.options)
        client = await link.ready()
        if client is None:
            self._went_down("cannot reach it")
            return None
        try:
            for topic in {w.topic for w in wanted}:
                await _learn(client, topic)
            by_leader: dict[int, dict[str, list[tuple[int, int, int]]]] = {}
            for w in wanted:
                leader = client.cluster.leader_for_partition(TopicPartition(w.topic, w.partition))
                if leader is not None and leader >= 0:
                    asks = by_leader.setdefault(leader, {}).setdefault(w.topic, [])
                    asks.append((w.partition, w.offset, w.max_bytes))
            responses = await asyncio.gather(
                *(
                    client.send(
                        leader,
                        FetchRequest(max_wait_ms, min_bytes, max_bytes, isolation_level, list(topics.items())),
                    )
                    for leader, topics in by_leader.items()
                )
            )
        except _FAILURES as exc:
            await link.close()
            self._went_down(str(exc) or type(exc).__name__)
            return None
        self._came_back()
        found = {}
        for response in responses:
            for topic, rows in response.topics:
                for row in rows:
                    found[(topic, row[0])] = _partition(row)
        return found

    def _went_down(self, why: str) -> None:
        if self._down_since is None:
            self._down_since = time.monotonic()
            log.warning("live Kafka at %s: %s; serving the archive alone until it answers", self.bootstrap, why)

    def _came_back(self) -> None:
        if self._down_since is not None:
            log.info("live Kafka at %s answers again after %.0f s", self.bootstrap, time.monotonic() - self._down_since)
            self._down_since = None


async def _learn(client: AIOKafkaClient, topic: str) -> None:
    """Have the client know ``topic``'s partitions and leaders. ``add_topic`` alone can return with a metadata
    update that was already under way for other topics (several topics being learnt at once): ask again."""
    await client.add_topic(topic)
    for _ in range(METADATA_ATTEMPTS):
        if client.cluster.partitions_for_topic(topic) is not None:
            return
        await client.force_metadata_update()


def _partition(row: tuple[Any, ...]) -> LivePartition:
    """A Fetch response partition (v4: no log start offset; v5+: one, and from v11 a preferred replica)."""
    error, high, stable = row[1], row[2], row[3]
    log_start, aborted = (-1, row[4]) if len(row) == 6 else (row[4], row[5])
    return LivePartition(
        error=error,
        high_watermark=high,
        last_stable_offset=stable,
        log_start_offset=log_start,
        aborted=tuple((pid, first) for pid, first in aborted) if aborted is not None else None,
        records=row[-1] or b"",
    )
