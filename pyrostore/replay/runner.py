"""The replay process: read planned ranges from the archive and produce them into the target topic.

Source partitions are replayed one after another, segment by segment, in chunks: each chunk pays the rate
limits, then is handed to the producer record by record. Every ``checkpoint_interval`` seconds (and at each
range's end, and on stop) the position is checkpointed: in exactly-once mode by committing the transaction
that holds both the records and the checkpoint, otherwise after every record sent so far is acknowledged.
"""

from __future__ import annotations

import itertools
import logging
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import pyarrow as pa
from confluent_kafka import KafkaException, Producer

from pyrostore.archive import Archive, PartitionArchive, open_archive
from pyrostore.errors import KafkaUnavailable
from pyrostore.index.node import Entry
from pyrostore.kafka import error_text
from pyrostore.replay.checkpoint import (
    Checkpoint,
    checkpoint_key,
    encode_checkpoint,
    ensure_checkpoint_topic,
    read_checkpoints,
)
from pyrostore.replay.kafka import client_config, ensure_target, producer_config, replay_admin
from pyrostore.replay.options import ReplayOptions
from pyrostore.replay.partitioning import check_target, target_partitions
from pyrostore.replay.plan import PartitionRange, ReplayPlan, plan_replay
from pyrostore.replay.progress import ReplayProgress
from pyrostore.replay.ratelimit import RateLimits
from pyrostore.replay.records import payload_bytes, produce_columns

log = logging.getLogger("pyrostore.replay")

CHUNK_RECORDS = 5000
"""Records handed to the producer between rate-limit and stop checks."""
KAFKA_TIMEOUT = 60.0
COLUMNS = ["offset", "timestamp", "key", "value", "headers"]
"""The segment columns a replay sends (timestamp types and leader epochs stay behind)."""


@dataclass
class _Range:
    """A range being replayed: its plan and the checkpoint it has reached."""

    plan: PartitionRange
    checkpoint: Checkpoint

    @property
    def done(self) -> bool:
        return self.checkpoint.next_offset >= self.plan.stop


class Replayer:
    """Replays one worker's share of a replay; :meth:`run` resumes from the replay's checkpoints."""

    def __init__(
        self,
        options: ReplayOptions,
        on_progress: Callable[[ReplayProgress], None] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.options = options
        self.on_progress = on_progress or (lambda _progress: None)
        self.clock = clock
        self.limits = RateLimits.of(options.rate_limit, options.records_per_second)
        self._errors: list[str] = []
        self._ranges: list[_Range] = []
        self._producer: Producer | None = None
        self._last_checkpoint = 0.0

    @property
    def producer(self) -> Producer:
        """The target producer, while :meth:`run` runs."""
        if self._producer is None:
            raise RuntimeError("the replay is not running")
        return self._producer

    def run(self, stop: threading.Event | None = None) -> ReplayProgress:
        """Replay until every range is done or ``stop`` is set; return the progress reached.

        Everything that can be checked is checked before the first record is sent: the archive and range, the
        target topic, Kafka's reachability.
        """
        stop = stop or threading.Event()
        options = self.options
        archive = open_archive(options.store_url, **options.store_options)
        plan = plan_replay(options, archive)
        admin = replay_admin(options)
        archived = archive.partitions(options.topic)
        target_count = ensure_target(options, admin, max(archived) + 1)
        check_target(
            options.partitioning, [r.partition for r in plan.ranges if r.records], target_count, options.to_topic
        )
        ensure_checkpoint_topic(admin, options.checkpoint_topic, options.bootstrap_servers)
        self._producer = producer = Producer(
            {**producer_config(options), "delivery.report.only.error": True, "on_delivery": self._delivered},
            logger=log,
        )
        if options.exactly_once:
            # Fences a previous incarnation (same transactional.id) and aborts its open transaction, so the
            # checkpoints read next are final.
            producer.init_transactions(KAFKA_TIMEOUT)
        done = read_checkpoints(admin, client_config(options), options.checkpoint_topic, options.identity)
        self._ranges = [_Range(r, done.get(r.partition) or Checkpoint(r.partition, r.start, 0, 0)) for r in plan.ranges]
        if any(r.checkpoint.records_done for r in self._ranges):
            log.info("resuming replay %s: %s", options.identity, self._progress())
        self.on_progress(self._progress())
        log.info(
            "replaying %d records of %s into %s (replay %s)",
            plan.records,
            options.topic,
            options.to_topic,
            options.identity,
        )
        self._begin()
        try:
            for state in self._ranges:
                if state.done or stop.is_set():
                    continue
                self._replay_range(archive.partition(options.topic, state.plan.partition), state, target_count, stop)
                self._checkpoint([state])
        finally:
            self._close()
        return self._progress()

    # --- one range ---------------------------------------------------------------------------------------

    def _replay_range(self, reader: PartitionArchive, state: _Range, targets: int, stop: threading.Event) -> None:
        producer, options = self.producer, self.options
        to_topic, source = options.to_topic, state.plan.partition
        provenance = (options.topic, source) if options.provenance_headers else None
        produce = producer.produce
        for entry, table in _read_ahead(reader, state.checkpoint.next_offset, state.plan.stop):
            for batch in table.to_batches(max_chunksize=self._chunk_records(table)):
                if stop.is_set():
                    return
                rows = produce_columns(batch, provenance)
                if self.limits.limited:
                    self._pay(payload_bytes(batch), len(rows), stop)
                sequence = state.checkpoint.records_done
                partitions = target_partitions(options.partitioning, source, sequence, len(rows), targets)
                records = zip(rows.values, rows.keys, partitions, rows.timestamps, rows.headers, strict=True)
                retry: tuple = ()
                while True:  # one try around the whole chunk: the per-record loop is the hot path
                    try:
                        for value, key, partition, stamp, headers in itertools.chain(retry, records):
                            produce(to_topic, value, key, partition, timestamp=stamp, headers=headers)
                        break
                    except BufferError:
                        retry = ((value, key, partition, stamp, headers),)
                        producer.poll(0.05)
                state.checkpoint = Checkpoint(
                    source,
                    rows.offsets[-1] + 1,
                    sequence + len(rows),
                    min(state.plan.bytes, state.checkpoint.bytes_done + entry.bytes * len(rows) // entry.records),
                )
                self.on_progress(self._progress())
                if self.clock() - self._last_checkpoint >= options.checkpoint_interval:
                    self._checkpoint([state])
            # The range's end, or the entry's end (covering trailing gaps), is where the next one starts.
            state.checkpoint = Checkpoint(
                source,
                min(entry.end, state.plan.stop),
                state.checkpoint.records_done,
                state.plan.bytes if entry.end >= state.plan.stop else state.checkpoint.bytes_done,
            )

    def _chunk_records(self, table: pa.Table) -> int:
        """Records per chunk: fewer when rate limited, so that waits stay short and sending stays smooth."""
        if not self.limits.limited or table.num_rows == 0:
            return CHUNK_RECORDS
        sizes = sum(payload_bytes(batch) for batch in table.to_batches())
        return self.limits.chunk_records(sizes / table.num_rows, CHUNK_RECORDS)

    def _pay(self, nbytes: int, records: int, stop: threading.Event) -> None:
        """Wait out the rate limits for a chunk (waking early on stop)."""
        wait = self.limits.take(nbytes, records, self.clock())
        if wait > 0:
            stop.wait(wait)

    # --- transactions and checkpoints --------------------------------------------------------------------

    def _delivered(self, error, message) -> None:
        if error is not None and len(self._errors) < 10:
            self._errors.append(f"{message.topic()}/{message.partition()}: {error.str()}")

    def _begin(self) -> None:
        if self.options.exactly_once:
            self.producer.begin_transaction()
        self._last_checkpoint = self.clock()

    def _checkpoint(self, states: list[_Range]) -> None:
        """Make the records sent so far and the checkpoints of ``states`` durable together."""
        producer, options = self.producer, self.options
        if not options.exactly_once:
            self._flush()
        for state in states:
            producer.produce(
                options.checkpoint_topic,
                encode_checkpoint(state.checkpoint),
                checkpoint_key(options.identity, state.plan.partition),
            )
        if options.exactly_once:
            producer.commit_transaction(KAFKA_TIMEOUT)
            self._begin()
        else:
            self._last_checkpoint = self.clock()
        self._raise_delivery_errors()

    def _flush(self) -> None:
        left = self.producer.flush(KAFKA_TIMEOUT)
        if left:
            raise KafkaUnavailable(
                f"{left} record(s) to {self.options.to_topic} were not acknowledged within {KAFKA_TIMEOUT:.0f}s"
            )
        self._raise_delivery_errors()

    def _raise_delivery_errors(self) -> None:
        if self._errors:
            raise KafkaUnavailable(f"producing to {self.options.to_topic} failed: {'; '.join(self._errors)}")

    def _close(self) -> None:
        """End the open transaction cleanly (commit what is checkpointed) or flush; leave resumable state."""
        if self._producer is None:
            return
        try:
            if self.options.exactly_once:
                self._producer.abort_transaction(KAFKA_TIMEOUT)
            else:
                self._flush()
        except KafkaException as exc:
            log.warning("closing the producer: %s", error_text(exc))

    def _progress(self) -> ReplayProgress:
        return progress_of([(r.plan, r.checkpoint) for r in self._ranges])


def _read_ahead(reader: PartitionArchive, start: int, stop: int) -> Iterator[tuple[Entry, pa.Table]]:
    """The segments overlapping ``[start, stop)`` with their records in range, the next one read and decoded in
    a thread (pyarrow releases the GIL) while the caller produces the current one."""
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="replay-read") as pool:
        entries = iter(reader.segments(start, stop))

        def read(entry: Entry) -> pa.Table:
            cut_start = start if start > entry.base else None
            return reader.read_segment(entry, COLUMNS, cut_start, stop if stop < entry.end else None)

        current = next(entries, None)
        if current is None:
            return
        pending = pool.submit(read, current)
        while current is not None:
            table = pending.result()
            following = next(entries, None)
            if following is not None:
                pending = pool.submit(read, following)
            yield current, table
            current = following


def progress_of(ranges: list[tuple[PartitionRange, Checkpoint | None]]) -> ReplayProgress:
    """Progress figures from each range's plan and checkpoint (None: not started)."""
    return ReplayProgress(
        records_total=sum(r.records for r, _ in ranges),
        records_done=sum(min(c.records_done, r.records) for r, c in ranges if c),
        bytes_total=sum(r.bytes for r, _ in ranges),
        bytes_done=sum(min(c.bytes_done, r.bytes) for r, c in ranges if c),
        finished=all(r.records == 0 or (c is not None and c.next_offset >= r.stop) for r, c in ranges),
    )


def replay_progress(options: ReplayOptions, archive: Archive | None = None) -> ReplayProgress:
    """The whole replay's progress (every worker's share), from the archive's index and the checkpoints.

    Reads only; creates nothing. Raises EmptyRange, TopicNotFound, KafkaUnavailable.
    """
    plan: ReplayPlan = plan_replay(options, archive, whole=True)
    admin = replay_admin(options)
    done = read_checkpoints(admin, client_config(options), options.checkpoint_topic, options.identity)
    return progress_of([(r, done.get(r.partition)) for r in plan.ranges])
