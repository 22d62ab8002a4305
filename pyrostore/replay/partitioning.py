"""Where each replayed record goes in the target topic (pure decisions)."""

from __future__ import annotations

from pyrostore.errors import TargetTooSmall

KEY_HASH_PARTITIONER = "murmur2_random"
"""librdkafka's name for Kafka's default partitioner: murmur2 of the key, random for null keys."""


def check_target(partitioning: str, source_partitions: list[int], target_partitions: int, target: str) -> None:
    """Raise TargetTooSmall when preserve mode has no target partition for some source partition."""
    if partitioning == "preserve" and source_partitions and max(source_partitions) >= target_partitions:
        raise TargetTooSmall(
            f"topic {target!r} has {target_partitions} partition(s) but --partitioning preserve needs at least "
            f"{max(source_partitions) + 1} (source partition {max(source_partitions)}); add partitions or use "
            "--partitioning key-hash or round-robin"
        )


def target_partitions(partitioning: str, source_partition: int, first: int, count: int, targets: int) -> list[int]:
    """The target partitions of ``count`` consecutive records of a source partition; -1 lets the producer's
    murmur2 partitioner hash the key (key-hash mode).

    ``first`` is the first record's position among its source partition's replayed records, so round-robin
    cycles deterministically and a resumed replay sends each record where the first attempt did.
    """
    if partitioning == "round-robin":
        return [(source_partition + n) % targets for n in range(first, first + count)]
    return [source_partition if partitioning == "preserve" else -1] * count
