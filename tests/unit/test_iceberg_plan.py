"""The sync's pure decisions: the recorded state, which segments a run adds, and the catalog's properties."""

from __future__ import annotations

import pytest

from pyrostore.errors import IntegrityError, UsageError
from pyrostore.iceberg.catalog import catalog_properties, default_topic, open_catalog, parse_table
from pyrostore.iceberg.plan import (
    PartitionState,
    SyncState,
    check_topic_matches,
    decode_state,
    encode_state,
    plan_partition,
    plan_sync,
)
from pyrostore.index.node import Entry


def segment(base: int, end: int, tag: str = "a") -> Entry:
    return Entry(base, end, base, end - 1, end - base, 1, 100, 10, 20, tag * 64)


def lost(base: int, end: int) -> Entry:
    return Entry(base, end, None, None, 0, 0, 0, None, None, None)


def test_state_round_trips_and_is_canonical() -> None:
    state = SyncState("orders", {2: PartitionState(7, 300), 0: PartitionState(3, 40)})
    text = encode_state(state)
    assert text == ('{"format":1,"partitions":{"0":{"end":40,"seq":3},"2":{"end":300,"seq":7}},"topic":"orders"}')
    assert decode_state(text, "t") == state
    assert decode_state(text, "t").end(1) == 0


@pytest.mark.parametrize(
    "text",
    [
        "",
        "[]",
        '{"format":1}',
        '{"format":2,"topic":"t","partitions":{}}',
        '{"format":1,"topic":"t","partitions":{"x":1}}',
    ],
)
def test_a_state_that_does_not_decode_is_an_integrity_error(text: str) -> None:
    with pytest.raises(IntegrityError, match="table x"):
        decode_state(text, "table x")


def test_first_sync_takes_every_segment_and_passes_over_lost_ranges() -> None:
    leaves = [segment(0, 10), lost(10, 15), segment(15, 30, "b")]
    plan = plan_partition(3, seq=4, next_offset=30, leaves=leaves, synced_end=0)
    assert plan.segments == [leaves[0], leaves[2]]
    assert plan.after == PartitionState(4, 30)


def test_later_sync_takes_only_segments_from_the_synced_offset() -> None:
    leaves = [segment(0, 10), segment(10, 20, "b"), segment(20, 25, "c")]
    plan = plan_partition(0, seq=9, next_offset=25, leaves=leaves, synced_end=20)
    assert plan.segments == [leaves[2]]
    assert plan.after == PartitionState(9, 25)


def test_nothing_new_gives_nothing() -> None:
    plan = plan_partition(0, seq=9, next_offset=25, leaves=[segment(0, 25)], synced_end=25)
    assert plan.segments == []
    assert plan.after == PartitionState(9, 25)


def test_a_segment_straddling_the_synced_offset_is_refused() -> None:
    with pytest.raises(IntegrityError, match="straddles the synced offset 15"):
        plan_partition(0, seq=2, next_offset=20, leaves=[segment(10, 20)], synced_end=15)


def test_an_archive_shorter_than_the_synced_state_is_refused() -> None:
    with pytest.raises(IntegrityError, match="ends at offset 10, before the 20"):
        plan_partition(0, seq=2, next_offset=10, leaves=[], synced_end=20)


def test_sync_plan_keeps_partitions_it_does_not_touch() -> None:
    state = SyncState("t", {0: PartitionState(1, 10), 5: PartitionState(2, 50)})
    p0 = plan_partition(0, 3, 20, [segment(0, 10), segment(10, 20, "b")], 10)
    p1 = plan_partition(1, 1, 7, [segment(0, 7, "c")], 0)
    plan = plan_sync(state, [p1, p0])
    assert [p.partition for p in plan.partitions] == [0, 1]
    assert plan.segments == 2
    assert plan.state == SyncState("t", {0: PartitionState(3, 20), 1: PartitionState(1, 7), 5: PartitionState(2, 50)})


def test_a_table_of_another_topic_is_refused() -> None:
    check_topic_matches(SyncState("a"), "a", "ns.a")
    with pytest.raises(UsageError, match=r"table ns\.a holds topic 'a', not 'b'"):
        check_topic_matches(SyncState("a"), "b", "ns.a")


def test_catalog_properties_take_s3_access_from_the_store_options() -> None:
    options = {"endpoint_url": "http://127.0.0.1:9000", "region": "eu-west-1", "retry_deadline": "15"}
    props = catalog_properties("sqlite:///c.db", {"s3.region": "us-east-1"}, "s3://b/p", options)
    assert props == {"uri": "sqlite:///c.db", "s3.endpoint": "http://127.0.0.1:9000", "s3.region": "us-east-1"}
    assert catalog_properties(None, {}, "/data/archive", options) == {}
    assert catalog_properties(None, {}, "s3://b", {}, "ap-south-1") == {"s3.region": "ap-south-1"}


def test_table_names() -> None:
    assert parse_table("kafka.orders") == ("kafka", "orders")
    assert parse_table("kafka.orders.v2") == ("kafka", "orders.v2")
    assert default_topic("kafka.orders.v2") == "orders.v2"
    for bad in ("orders", ".orders", "kafka."):
        with pytest.raises(UsageError, match=r"NAMESPACE\.TABLE"):
            parse_table(bad)
    with pytest.raises(UsageError, match="topic name"):
        default_topic("kafka.a b")


def test_exactly_one_catalog() -> None:
    for name, uri in ((None, None), ("c", "sqlite:///x")):
        with pytest.raises(UsageError, match="exactly one of"):
            open_catalog(name, uri, {})
    with pytest.raises(UsageError, match="catalog ftp://x"):
        open_catalog(None, "ftp://x", {"uri": "ftp://x"})
