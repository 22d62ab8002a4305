"""What a replay does: :class:`ReplayOptions` mirrors the ``pyrostore replay`` command's options."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from enum import StrEnum

from pyrostore.errors import InvalidReplayOptions
from pyrostore.layout import check_topic


class Partitioning(StrEnum):
    """``--partitioning``: where each replayed record goes in the target topic."""

    PRESERVE = "preserve"  # the source partition's number
    KEY_HASH = "key-hash"  # murmur2 of the key, as Kafka's default partitioner
    ROUND_ROBIN = "round-robin"  # spread evenly, deterministically


PARTITIONING_MODES = tuple(mode.value for mode in Partitioning)
DEFAULT_CHECKPOINT_TOPIC = "pyrostore-replay-checkpoints"


@dataclass(frozen=True)
class ReplayOptions:
    """One replay: a source range in an archive, a target topic, and how records are sent there.

    Bounds: ``from_offset`` / ``from_time`` pick the first record (inclusive; a time means Kafka's
    ``offsetsForTimes``), ``to_offset`` / ``to_time`` the offset to stop before (exclusive; a time means the first
    record whose timestamp is at or after it). Times are ms since the epoch. ``partitions`` restricts the source
    partitions; ``worker_index`` of ``workers`` takes every ``workers``-th of those (a Kubernetes Indexed Job).
    """

    store_url: str
    topic: str
    to_topic: str
    bootstrap_servers: str
    store_options: dict[str, str] = field(default_factory=dict)
    from_offset: int | None = None
    from_time: int | None = None
    to_offset: int | None = None
    to_time: int | None = None
    partitions: tuple[int, ...] | None = None
    partitioning: str = "preserve"
    rate_limit: float | None = None  # bytes (keys, values, headers) per second
    records_per_second: float | None = None
    exactly_once: bool = False
    provenance_headers: bool = False
    create_topic: bool = False
    kafka_properties: dict[str, str] = field(default_factory=dict)
    replay_id: str | None = None  # default: derived from what the replay writes (see ``identity``)
    worker_index: int = 0
    workers: int = 1
    checkpoint_topic: str = DEFAULT_CHECKPOINT_TOPIC
    checkpoint_interval: float = 1.0  # seconds between checkpoints (and transactions in exactly-once mode)

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        """Raise InvalidReplayOptions naming the first option that is wrong."""
        for name in ("topic", "to_topic", "checkpoint_topic"):
            try:
                check_topic(getattr(self, name))
            except ValueError as exc:
                raise InvalidReplayOptions(f"--{name.replace('_', '-')}: {exc}") from exc
        if not self.bootstrap_servers:
            raise InvalidReplayOptions("--bootstrap-servers is required")
        if self.from_offset is not None and self.from_time is not None:
            raise InvalidReplayOptions("give --from-offset or --from-time, not both")
        if self.to_offset is not None and self.to_time is not None:
            raise InvalidReplayOptions("give --to-offset or --to-time, not both")
        if self.from_offset is not None and self.from_offset < 0:
            raise InvalidReplayOptions(f"--from-offset {self.from_offset} is negative")
        if self.from_offset is not None and self.to_offset is not None and self.to_offset <= self.from_offset:
            raise InvalidReplayOptions(f"--to-offset {self.to_offset} is not after --from-offset {self.from_offset}")
        if self.from_time is not None and self.to_time is not None and self.to_time <= self.from_time:
            raise InvalidReplayOptions(f"--to-time {self.to_time} is not after --from-time {self.from_time}")
        if self.partitioning not in PARTITIONING_MODES:
            raise InvalidReplayOptions(
                f"--partitioning {self.partitioning!r} is not one of {', '.join(PARTITIONING_MODES)}"
            )
        if self.partitions is not None and (not self.partitions or min(self.partitions) < 0):
            raise InvalidReplayOptions(f"--partitions {self.partitions} must list partition numbers >= 0")
        for name in ("rate_limit", "records_per_second", "checkpoint_interval"):
            value = getattr(self, name)
            if value is not None and value <= 0:
                raise InvalidReplayOptions(f"--{name.replace('_', '-')} must be positive, not {value}")
        if self.workers < 1 or not 0 <= self.worker_index < self.workers:
            raise InvalidReplayOptions(
                f"worker index {self.worker_index} is not within 0..{self.workers - 1} (--parallelism {self.workers})"
            )
        idempotence = self.kafka_properties.get("enable.idempotence", "true")
        if idempotence.lower() != "true":
            raise InvalidReplayOptions(
                f"Kafka property enable.idempotence={idempotence} is not allowed: replay needs enable.idempotence=true"
            )
        if "transactional.id" in self.kafka_properties:
            raise InvalidReplayOptions("Kafka property transactional.id is set by the replay (use --exactly-once)")

    @property
    def identity(self) -> str:
        """The replay's stable name: ``replay_id`` if given, else a digest of everything that decides its output.

        Rate limits, worker split and Kafka client properties are left out, so a replay restarted with other
        limits or another parallelism still resumes from its checkpoints.
        """
        if self.replay_id:
            return self.replay_id
        decides = {
            "store": self.store_url,
            "topic": self.topic,
            "to_topic": self.to_topic,
            "bounds": [self.from_offset, self.from_time, self.to_offset, self.to_time],
            "partitions": sorted(self.partitions) if self.partitions else None,
            "partitioning": self.partitioning,
            "provenance": self.provenance_headers,
            "exactly_once": self.exactly_once,
        }
        digest = hashlib.sha256(json.dumps(decides, sort_keys=True).encode()).hexdigest()[:16]
        return f"{self.topic}-to-{self.to_topic}-{digest}"

    @property
    def transactional_id(self) -> str:
        """The transactional.id of this worker: stable across restarts, so a restart fences its zombie."""
        return f"pyrostore-replay-{self.identity}-{self.worker_index}-of-{self.workers}"
