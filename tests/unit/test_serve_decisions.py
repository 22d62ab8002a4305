"""pyrostore serve's pure decisions: fetch positions, batch choice, byte budgets, ListOffsets answers, versions."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pyrostore.serve.apis import APIS
from pyrostore.serve.decisions import (
    EARLIEST,
    EARLIEST_LOCAL,
    EARLIEST_PENDING_UPLOAD,
    LATEST,
    LATEST_TIERED,
    MAX_TIMESTAMP,
    Budget,
    OffsetAnswer,
    Position,
    fetch_position,
    first_at_or_after,
    first_batch,
    list_offset,
)
from pyrostore.serve.versions import advertised, api_versions_answer, library_versions


@pytest.mark.parametrize(
    ("offset", "expected"),
    [
        (9, Position.OUT_OF_RANGE),  # before the archive's start
        (10, Position.RECORDS),
        (19, Position.RECORDS),
        (20, Position.END),  # the high watermark: wait for records
        (21, Position.OUT_OF_RANGE),  # past the high watermark
    ],
)
def test_fetch_position(offset, expected):
    assert fetch_position(offset, 10, 20) is expected


@pytest.mark.parametrize(
    ("offset", "kafka", "expected"),
    [
        (9, (30, 40), Position.OUT_OF_RANGE),  # before both
        (10, (30, 40), Position.RECORDS),
        (19, (15, 40), Position.RECORDS),  # both hold it: the archive is preferred
        (20, (15, 40), Position.KAFKA),  # past the archive: live Kafka
        (40, (15, 40), Position.KAFKA),  # Kafka's high watermark: Kafka waits for records
        (41, (15, 40), Position.KAFKA),  # past it: Kafka's own answer (out of range)
        (20, (30, 40), Position.HOLE),  # after the archive, before Kafka's log start
        (29, (30, 40), Position.HOLE),
        (30, (30, 40), Position.KAFKA),
        (5, (0, 40), Position.KAFKA),  # before the archive's start, still in Kafka
    ],
)
def test_fetch_position_with_live_kafka(offset, kafka, expected):
    assert fetch_position(offset, 10, 20, kafka) is expected


def test_with_nothing_archived_live_kafka_serves_from_its_log_start():
    assert fetch_position(4, 0, 0, (5, 9)) is Position.OUT_OF_RANGE
    assert fetch_position(5, 0, 0, (5, 9)) is Position.KAFKA


def test_an_empty_partition_is_at_its_end_at_its_start():
    assert fetch_position(0, 0, 0) is Position.END
    assert fetch_position(1, 0, 0) is Position.OUT_OF_RANGE


@pytest.mark.parametrize(("offset", "index"), [(0, 0), (9, 0), (10, 1), (15, 1), (29, 2), (30, 3), (99, 3)])
def test_first_batch_is_the_one_holding_the_offset(offset, index):
    assert first_batch([10, 20, 30], offset) == index  # batches [.., 10), [10, 20), [20, 30)


def test_the_first_batch_of_a_response_goes_in_whatever_its_size():
    budget = Budget(max_bytes=100)
    assert budget.take(500, partition_used=0, partition_max_bytes=50)
    assert not budget.take(1, partition_used=500, partition_max_bytes=50)
    assert not budget.take(1, partition_used=0, partition_max_bytes=50)  # the response is full
    assert budget.used == 500


def test_partition_and_response_limits():
    budget = Budget(max_bytes=100)
    assert budget.take(30, 0, 40)
    assert not budget.take(30, 30, 40)  # past the partition's limit
    assert budget.take(50, 0, 40)  # a later partition's first batch may pass its limit while the response has room
    assert not budget.take(30, 0, 40)  # but not the response's
    assert budget.take(20, 0, 40)
    assert budget.used == 100


@given(st.lists(st.integers(1, 60), max_size=30), st.integers(1, 200), st.integers(1, 100))
def test_a_budget_never_passes_the_response_limit_after_the_first_batch(sizes, max_bytes, partition_max):
    budget = Budget(max_bytes)
    taken = []
    used = 0
    for size in sizes:
        if budget.take(size, used, partition_max):
            taken.append(size)
            used += size
        else:
            break
    if sizes:
        assert taken, "the first batch always goes in"
    assert sum(taken) == budget.used
    assert len(taken) <= 1 or budget.used <= max_bytes


@pytest.mark.parametrize(
    ("timestamp", "answer"),
    [
        (EARLIEST, OffsetAnswer(5)),
        (EARLIEST_LOCAL, OffsetAnswer(5)),
        (LATEST, OffsetAnswer(50)),
        (MAX_TIMESTAMP, OffsetAnswer(lookup=9_000)),
        (LATEST_TIERED, OffsetAnswer()),
        (EARLIEST_PENDING_UPLOAD, OffsetAnswer()),
        (-7, OffsetAnswer()),
        (0, OffsetAnswer(lookup=0)),
        (1_700_000_000_000, OffsetAnswer(lookup=1_700_000_000_000)),
    ],
)
def test_list_offset(timestamp, answer):
    assert list_offset(timestamp, 5, 50, 9_000) == answer


def test_list_offset_with_live_kafka():
    assert list_offset(EARLIEST, 5, 50, 9_000, kafka_low=30) == OffsetAnswer(5)
    assert list_offset(EARLIEST, 5, 50, 9_000, kafka_low=0) == OffsetAnswer(0)
    assert list_offset(EARLIEST, 0, 0, None, kafka_low=30) == OffsetAnswer(30)  # nothing archived yet
    assert list_offset(LATEST, 5, 50, 9_000, kafka_low=30) == OffsetAnswer(50, ask_kafka=True)
    assert list_offset(0, 5, 50, 9_000, kafka_low=30) == OffsetAnswer(lookup=0)


def test_max_timestamp_of_an_archive_without_records():
    assert list_offset(MAX_TIMESTAMP, 0, 0, None) == OffsetAnswer()


def test_first_at_or_after_follows_offsets_not_timestamps():
    offsets, stamps = [3, 5, 8, 9], [100, 300, 200, 400]
    assert first_at_or_after(offsets, stamps, 150) == (5, 300)  # not (8, 200): timestamps need not grow
    assert first_at_or_after(offsets, stamps, 100) == (3, 100)
    assert first_at_or_after(offsets, stamps, 400) == (9, 400)
    assert first_at_or_after(offsets, stamps, 401) is None


def test_advertised_versions_are_what_both_the_handler_and_the_library_know():
    library = {1: (4, 18), 2: (1, 11), 7: (0, 3)}.get
    declared = [(1, (0, 12)), (2, (5, 20)), (7, (4, 9)), (99, (0, 1))]
    assert advertised(declared, library) == {1: (4, 12), 2: (5, 11)}


def test_the_advertised_table():
    table = advertised((api.key, api.versions) for api in APIS)
    assert table == {
        0: (3, 13),
        1: (4, 18),
        2: (1, 11),
        3: (0, 13),
        8: (2, 10),
        9: (1, 10),
        10: (0, 6),
        11: (0, 9),
        12: (0, 4),
        13: (0, 5),
        14: (0, 5),
        15: (0, 6),
        16: (0, 5),
        18: (0, 4),
    }
    assert library_versions(99999) is None


@pytest.mark.parametrize(("requested", "answered"), [(0, 0), (3, 3), (4, 4), (5, 0), (127, 0)])
def test_api_versions_answers_unknown_versions_in_v0(requested, answered):
    assert api_versions_answer(requested, {18: (0, 4)}, 18) == answered
