"""Building blocks shared by tests: deterministic segments and small archives."""

from __future__ import annotations

from pyrostore.index.writer import PartitionWriter
from pyrostore.segment import EncodedSegment, encode_segment, records_to_table
from pyrostore.store import ObjectStore


def record(offset: int) -> tuple:
    """The record a test topic holds at ``offset``: a pure function of the offset."""
    return (
        offset,
        1_700_000_000_000 + offset * 10,
        0,
        b"key-%d" % (offset % 7),
        b"value-%d" % offset,
        [("n", b"%d" % offset)],
        0,
    )


def make_segment(topic: str, partition: int, start: int, count: int, gap_after: int = 0) -> EncodedSegment:
    """A segment of ``count`` consecutive records from ``start``, ending ``gap_after`` offsets past the last."""
    rows = [record(o) for o in range(start, start + count)]
    return encode_segment(
        records_to_table(rows), topic=topic, partition=partition, next_offset=start + count + gap_after
    )


def build_partition(
    store: ObjectStore, topic: str, partition: int, segments: int, per_segment: int = 10, fanout: int = 4
) -> PartitionWriter:
    """Archive ``segments`` segments of consecutive records into one partition; return the writer."""
    writer = PartitionWriter(store, topic, partition, fanout=fanout)
    writer.claim(0)
    for _ in range(segments):
        start = writer.head.next_offset
        writer.append([make_segment(topic, partition, start, per_segment)])
    return writer
