"""Routing each assigned partition to its source: starts looked up in the background and applied, archived
records turned into Messages, the crossover into Kafka at the archive's end, and Kafka's refusals routed again.

Nothing here blocks on Kafka. The inner consumer's partition is fetching exactly when the partition reads from
Kafka, is not paused by the application and has no seek pending (:attr:`PartitionState.reads_kafka`).
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from concurrent.futures import Future, ThreadPoolExecutor

from confluent_kafka import KafkaError, KafkaException, Message, TopicPartition

from pyrostore.archive import Archive
from pyrostore.consumer.config import ConsumerSettings
from pyrostore.consumer.cursor import ArchiveCursor
from pyrostore.consumer.decisions import OFFSET_INVALID, ReadMode, Source
from pyrostore.consumer.inner import InnerConsumer
from pyrostore.consumer.offsets import OffsetBook
from pyrostore.consumer.partition import Key, PartitionState, Phase
from pyrostore.consumer.ready import ReadyMessages, message_key
from pyrostore.consumer.starts import Start, StartFinder, StartRequest
from pyrostore.errors import PyrostoreError
from pyrostore.messages import event, messages_of


class Router:
    """The assigned partitions and the source each reads from."""

    def __init__(
        self,
        settings: ConsumerSettings,
        archive: Archive,
        inner: InnerConsumer | None,
        ready: ReadyMessages,
        book: OffsetBook,
    ) -> None:
        self.partitions: dict[Key, PartitionState] = {}
        self._settings = settings
        self._mode = settings.mode
        self._inner = inner
        self._ready = ready
        self._book = book
        self._finder = StartFinder(settings, archive, book.local)
        # Look-ups running, and whether the application asked for them (then the partition's next offset moves).
        self._starting: dict[Key, tuple[Future[Start], bool]] = {}
        self._prefetch = ThreadPoolExecutor(max_workers=2, thread_name_prefix="pyrostore-prefetch")

    # -- assignment -------------------------------------------------------------------------------------------

    def assign(self, partitions: list[TopicPartition], incremental: bool) -> None:
        """Add ``partitions`` (replacing the assignment unless ``incremental``), each started at its offset."""
        if not incremental:
            self.forget(list(self.partitions))
        states = []
        for tp in partitions:
            old = self.partitions.pop((tp.topic, tp.partition), None)
            if old is not None:
                old.close()
            state = PartitionState(tp.topic, tp.partition, old.reader if old is not None else None, tp.offset)
            self.partitions[state.key] = state
            states.append((state, tp.offset))
        if self._inner is not None:
            self._inner.assign([state for state, _ in states], incremental)
        for state, offset in states:
            self._start(state, offset, asked=True)

    def forget(self, keys: Iterable[Key]) -> None:
        """Drop partitions from the assignment, after storing the offsets handed out of them."""
        gone = set(keys)
        self.flush_offsets()
        for key in gone:
            state = self.partitions.pop(key, None)
            if state is not None:
                state.close()
                self._book.forget(state)
            self._starting.pop(key, None)
        self._ready.drop(gone)

    def unassign(self, partitions: list[TopicPartition] | None) -> None:
        """Drop the given partitions (None: all) from the assignment and from the inner consumer's."""
        self.forget(list(self.partitions) if partitions is None else [(tp.topic, tp.partition) for tp in partitions])
        if self._inner is not None:
            self._inner.unassign(partitions)

    def flush_offsets(self) -> None:
        """Hand the offsets stored on delivery to the inner consumer (before a commit or a revocation)."""
        self._book.flush(self.partitions.values())

    def close(self) -> None:
        """Stop look-ups and prefetching."""
        for state in self.partitions.values():
            state.close()
        self._finder.close()
        self._prefetch.shutdown(wait=False, cancel_futures=True)

    # -- the application's moves --------------------------------------------------------------------------------

    def seek(self, state: PartitionState, offset: int) -> None:
        """Read the partition from ``offset`` (logical allowed) next; its position becomes unknown."""
        self._drop_ready(state)
        state.seeked()
        self._start(state, offset, asked=True)

    def pause(self, states: list[PartitionState]) -> None:
        """Stop handing out the partitions' messages; what was fetched ahead is dropped."""
        for state in states:
            state.pause()
            self._drop_ready(state)
        if self._inner is not None:
            self._inner.pause(states)

    def resume(self, states: list[PartitionState]) -> None:
        """Hand out the partitions' messages again, from the next one the application has not had."""
        for state in states:
            if state.resume() and state.phase in (Phase.KAFKA, Phase.ARCHIVE):
                self._start(state, state.next)

    # -- starts -----------------------------------------------------------------------------------------------

    def _start(self, state: PartitionState, offset: int, asked: bool = False, refused: Message | None = None) -> None:
        """Look up where the partition reads ``offset`` from (``asked``: by the application's assign or seek;
        ``refused``: Kafka's out-of-range event for the offset)."""
        fetching = state.reads_kafka
        generation = state.start(offset)
        if fetching and self._inner is not None:
            self._inner.pause([state])
        request = StartRequest(state.topic, state.partition, offset, generation, refused)
        future = self._finder.submit(request, lambda: state.generation)
        self._starting[state.key] = (future, asked)

    def apply_starts(self) -> None:
        """Apply the starts whose look-ups finished. Raises KafkaException when the archive could not be read
        (the look-up is tried again)."""
        for key, (future, asked) in list(self._starting.items()):
            if not future.done():
                continue
            del self._starting[key]
            state = self.partitions[key]
            try:
                start = future.result()
            except PyrostoreError as exc:
                self._start(state, state.starting_at, asked)
                raise _archive_error(state, state.starting_at, exc) from exc
            self._apply(state, start, asked)

    def _apply(self, state: PartitionState, start: Start, asked: bool) -> None:
        if start.reader is not None:
            state.reader = start.reader
        decision = start.decision
        if decision is None:
            state.halt()
            reason = "no committed offset to start from, and auto.offset.reset is error"
            code = KafkaError._AUTO_OFFSET_RESET
            self._ready.append(event(state.topic, state.partition, OFFSET_INVALID, code, reason))
            return
        if asked:
            state.next = decision.offset
        if decision.source is Source.ARCHIVE:
            # kafka-preferred: only up to where Kafka's log starts (decision.until); otherwise to the archive's end
            stop = decision.until if self._mode is ReadMode.KAFKA_PREFERRED else None
            assert state.reader is not None  # the archive was chosen from what this reader holds
            depth = self._settings.prefetch_segments
            state.read_archive(ArchiveCursor(state.reader, decision.offset, self._prefetch, depth, stop))
        elif decision.source is Source.KAFKA:
            state.read_kafka(decision.offset)
            self._move(state)
        elif decision.source is Source.END:
            state.wait_at_end(self._settings.refresh_seconds)
            if self._settings.partition_eof and not state.eof_sent:
                state.eof_sent = True
                text = f"Archive reached end of partition at offset {decision.offset}"
                self._ready.append(
                    event(state.topic, state.partition, decision.offset, KafkaError._PARTITION_EOF, text)
                )
        else:
            state.halt()
            self._ready.append(start.event or _hole_event(state, decision.offset, decision.hole_end))

    @property
    def busy(self) -> bool:
        """Whether something will be ready soon without Kafka: a start looked up, a segment decoding, a seek of the
        inner consumer to retry. Waits for Kafka are then cut short to look again."""
        return bool(self._starting) or any(
            (s.phase is Phase.KAFKA and s.seek_to is not None)
            or (s.phase is Phase.ARCHIVE and not s.paused and s.cursor is not None and not s.cursor.ready())
            for s in self.partitions.values()
        )

    # -- the archive side --------------------------------------------------------------------------------------

    def archive_states(self) -> list[tuple[PartitionState, ArchiveCursor]]:
        """The partitions the archive serves now (not paused), each with its cursor."""
        return [
            (s, s.cursor)
            for s in self.partitions.values()
            if s.phase is Phase.ARCHIVE and not s.paused and s.cursor is not None
        ]

    def advance_archive(self, chunk: int) -> None:
        """Turn ready archived records into Messages (``chunk`` per partition; 0: leave them as batches), and move
        partitions that reached the archive's end on."""
        now = time.monotonic()
        for state in list(self.partitions.values()):
            if state.paused:
                continue
            if state.phase is Phase.END and now >= state.refresh_at:
                self._start(state, state.next)
            cursor = state.cursor
            if state.phase is not Phase.ARCHIVE or cursor is None:
                continue
            if chunk and cursor.ready():
                batch = self.take(state, cursor, chunk)
                if batch is not None and batch.num_rows:
                    self._ready.extend(messages_of(batch, state.topic, state.partition))
                    state.archived_below = batch.column("offset")[-1].as_py() + 1
            if cursor.at_end:
                self._archive_ended(state, cursor)

    @staticmethod
    def take(state: PartitionState, cursor: ArchiveCursor, max_records: int):  # -> pa.RecordBatch | None
        """Up to ``max_records`` archived records ready now. Raises KafkaException when a segment cannot be read."""
        try:
            return cursor.take(max_records)
        except PyrostoreError as exc:
            raise _archive_error(state, cursor.offset, exc) from exc

    def _archive_ended(self, state: PartitionState, cursor: ArchiveCursor) -> None:
        """The cursor handed out everything up to its commit's end, its stop or a lost range: look up where the
        partition continues (the archive if it grew, otherwise Kafka, or a hole), without blocking here."""
        self._start(state, cursor.offset)

    # -- the Kafka side ----------------------------------------------------------------------------------------

    def absorb(self, message: Message) -> Message | None:
        """What the application gets of a message of the inner consumer: Kafka's records of partitions that read
        from Kafka, and events; None for records fetched before a switch, and for refusals handled here."""
        error = message.error()
        key = message_key(message)
        state = self.partitions.get(key) if key is not None else None
        if error is None or error.code() == KafkaError._PARTITION_EOF:
            if state is None or not state.reads_kafka:
                return None
            offset = message.offset()
            if offset is not None and offset < state.kafka_from:
                # Fetched from before the seek (librdkafka may start an assignment's fetch after a seek made right
                # after assign): drop it, and seek again, which is harmless if the position was right.
                state.move_again()
                return None
            return message
        if error.code() == KafkaError._AUTO_OFFSET_RESET and state is not None:
            state.fetch_failed = True
            if state.phase is Phase.KAFKA and state.seek_to is None:
                # Start again after what the application has, not at the refused fetch position: librdkafka fetches
                # ahead, and the records between the two are gone from its queue once the partition is paused for
                # the look-up (or dropped with its reset), so starting at the refused position would skip them
                # silently (a soak lost 30 records of a partition so, around a broker restart). Records of the
                # partition already taken from librdkafka and not handed out are read again.
                self._drop_ready(state)
                self._start(state, state.next, refused=message)
            return None
        return message

    def retry_moves(self) -> None:
        """Retry the inner consumer's seeks that could not be made yet."""
        for state in list(self.partitions.values()):
            if state.phase is Phase.KAFKA and state.seek_to is not None:
                self._move(state)

    def _move(self, state: PartitionState) -> None:
        if self._inner is not None:
            for rewound in self._inner.move(state, list(self.partitions.values())):
                self._drop_ready(rewound)

    def _drop_ready(self, state: PartitionState) -> None:
        self._ready.drop({state.key})
        state.archived_below = -1


def _archive_error(state: PartitionState, offset: int, exc: PyrostoreError) -> KafkaException:
    text = f"reading the archive of {state.topic} [{state.partition}] at offset {offset}: {exc}"
    return KafkaException(KafkaError(KafkaError._FAIL, text))


def _hole_event(state: PartitionState, offset: int, hole_end: int | None) -> Message:
    held = f"..{hole_end - 1}" if hole_end is not None else " on"
    text = (
        f"{state.topic} [{state.partition}]: offsets {offset}{held} are held neither by the archive nor by Kafka "
        "(history lost); seek past them to continue"
    )
    return event(state.topic, state.partition, offset, KafkaError.OFFSET_OUT_OF_RANGE, text)
