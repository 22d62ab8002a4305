"""Replay's pure decisions: token buckets on a fake clock, target partitions, checkpoints, produce columns."""

from __future__ import annotations

import io
import logging

import pytest
from rich.console import Console

from pyrostore.errors import TargetTooSmall
from pyrostore.replay.checkpoint import Checkpoint, checkpoint_key, decode_checkpoint, encode_checkpoint
from pyrostore.replay.partitioning import check_target, target_partitions
from pyrostore.replay.plan import PartitionRange
from pyrostore.replay.progress import ProgressDisplay, ReplayProgress
from pyrostore.replay.ratelimit import RateLimits, TokenBucket
from pyrostore.replay.records import (
    PROVENANCE_OFFSET,
    PROVENANCE_PARTITION,
    PROVENANCE_TOPIC,
    payload_bytes,
    produce_columns,
)
from pyrostore.replay.runner import progress_of
from pyrostore.segment import records_to_table


def test_token_bucket_allows_a_burst_then_paces_to_the_rate():
    bucket = TokenBucket(rate=100.0, burst=10.0)
    assert bucket.take(10, now=0.0) == 0.0  # the burst
    assert bucket.take(50, now=0.0) == pytest.approx(0.5)  # in debt: wait until paid
    assert bucket.take(10, now=0.5) == pytest.approx(0.1)
    assert bucket.take(10, now=10.0) == 0.0  # refilled, but only up to the burst
    assert bucket.take(20, now=10.0) == pytest.approx(0.2)


def test_token_bucket_sending_as_told_averages_the_rate():
    bucket, now, sent = TokenBucket(rate=1000.0, burst=100.0), 0.0, 0
    while now < 60:
        now += bucket.take(37, now)  # the caller sleeps as told, then sends
        sent += 37
    assert sent / now == pytest.approx(1000, rel=0.01)


def test_rate_limits_wait_for_the_slower_bucket_and_size_chunks_to_a_twentieth_of_a_second():
    limits = RateLimits.of(bytes_per_second=1000, records_per_second=10)
    assert limits.take(100, 1, now=0.0) == 0.0
    assert limits.take(100, 1, now=0.0) == pytest.approx(0.1)  # records: 1 per 0.1 s
    assert limits.take(600, 0, now=0.1) == pytest.approx(0.6)  # bytes: the debt is paid by now, 600 more
    assert RateLimits.of(None, None).take(10**9, 10**9, now=0.0) == 0.0
    assert not RateLimits.of(None, None).limited
    assert RateLimits.of(1_000_000, None).chunk_records(1000, 2000) == 50
    assert RateLimits.of(None, 100).chunk_records(10, 2000) == 5
    assert RateLimits.of(10, None).chunk_records(1000, 2000) == 1
    assert RateLimits.of(None, None).chunk_records(1000, 2000) == 2000


def test_target_partitions_per_mode():
    assert target_partitions("preserve", 3, 17, 2, 8) == [3, 3]
    assert target_partitions("key-hash", 3, 17, 2, 8) == [-1, -1]  # the producer's murmur2 partitioner decides
    assert target_partitions("round-robin", 1, 0, 5, 3) == [1, 2, 0, 1, 2]
    assert target_partitions("round-robin", 1, 3, 2, 3) == [1, 2]  # resumed at the fourth record
    check_target("preserve", [0, 2], 3, "dst")
    check_target("key-hash", [0, 5], 1, "dst")
    with pytest.raises(TargetTooSmall, match="'dst' has 2 partition"):
        check_target("preserve", [0, 2], 2, "dst")


def test_checkpoints_round_trip_and_other_replays_are_ignored():
    checkpoint = Checkpoint(partition=4, next_offset=1200, records_done=900, bytes_done=123456)
    key, value = checkpoint_key("r1", 4), encode_checkpoint(checkpoint)
    assert key == b"r1/4"
    assert decode_checkpoint(key, value, "r1") == checkpoint
    assert decode_checkpoint(key, value, "r") is None  # "r1/4" is not a checkpoint of replay "r"
    assert decode_checkpoint(key, None, "r1") is None


def test_produce_columns_keep_null_and_empty_apart_and_headers_in_order():
    headers = [("h", b"1"), ("h", None), ("other", b"")]
    table = records_to_table(
        [
            (10, 1000, 0, None, b"", headers, 0),
            (11, 1001, 1, b"", None, None, 0),
            (13, -1, -1, b"k", b"v", [], None),
        ]
    )
    columns = produce_columns(table.to_batches()[0])
    assert columns.offsets == [10, 11, 13]
    assert columns.timestamps == [1000, 1001, 0]  # no timestamp (-1): the producer's time
    assert columns.keys == [None, b"", b"k"]
    assert columns.values == [b"", None, b"v"]
    assert columns.headers == [headers, None, None]
    assert payload_bytes(table.to_batches()[0]) == 1 + 1 + (1 + 1 + 5) + 1  # keys, values, header keys and values

    sliced = produce_columns(table.to_batches()[0].slice(1), provenance=("src", 2))
    assert sliced.headers == [
        [(PROVENANCE_TOPIC, b"src"), (PROVENANCE_PARTITION, b"2"), (PROVENANCE_OFFSET, b"11")],
        [(PROVENANCE_TOPIC, b"src"), (PROVENANCE_PARTITION, b"2"), (PROVENANCE_OFFSET, b"13")],
    ]
    assert payload_bytes(table.to_batches()[0].slice(1)) == 2  # the slice's own bytes only


def test_progress_adds_up_ranges_and_finishes_when_every_range_reached_its_stop():
    ranges = [PartitionRange(0, 0, 100, 100, 1000), PartitionRange(1, 5, 5, 0, 0), PartitionRange(2, 0, 50, 40, 400)]
    fresh = progress_of([(r, None) for r in ranges])
    assert (fresh.records_total, fresh.records_done, fresh.bytes_total, fresh.finished) == (140, 0, 1400, False)
    half = progress_of(
        [(ranges[0], Checkpoint(0, 100, 100, 1000)), (ranges[1], None), (ranges[2], Checkpoint(2, 20, 15, 150))]
    )
    assert (half.records_done, half.bytes_done, half.finished) == (115, 1150, False)
    done = progress_of(
        [(ranges[0], Checkpoint(0, 100, 100, 1000)), (ranges[1], None), (ranges[2], Checkpoint(2, 50, 40, 400))]
    )
    assert done.finished and done.records_done == 140


def test_progress_off_a_terminal_is_logged_with_its_figures(caplog):
    display = ProgressDisplay(Console(file=io.StringIO()), interval=3600)
    caplog.set_level(logging.INFO, logger="pyrostore.replay")
    with display:
        display.update(ReplayProgress(100, 0, 1000, 0, False))  # first figures: the rate's starting point
        display.update(ReplayProgress(100, 50, 1000, 500, False))  # within the interval: not logged
        display.update(ReplayProgress(100, 100, 1000, 1000, True))  # the end is always logged
    assert len(caplog.records) == 1
    line = caplog.records[0]
    assert "replayed 100/100 records, 1000/1000 bytes" in line.getMessage()
    assert (line.records_done, line.records_total, line.bytes_done, line.bytes_total) == (100, 100, 1000, 1000)
