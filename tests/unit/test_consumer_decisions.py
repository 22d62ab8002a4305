"""The crossover decisions: every held offset served exactly once, in order; holes named, never skipped."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pyrostore.consumer.decisions import (
    OFFSET_BEGINNING,
    OFFSET_END,
    OFFSET_STORED,
    Extent,
    ReadMode,
    Source,
    decide,
    resolve,
    watermarks,
)

# Archive 0..100 with 40..50 lost; Kafka still holds 30 onwards (retention deleted 0..29), up to 130.
EXTENT = Extent(archive_start=0, archive_next=100, kafka_low=30, kafka_high=130, lost=((40, 50),))


@pytest.mark.parametrize(
    ("offset", "mode", "source", "until"),
    [
        (0, ReadMode.ARCHIVE_PREFERRED, Source.ARCHIVE, 40),
        (35, ReadMode.ARCHIVE_PREFERRED, Source.ARCHIVE, 40),
        (45, ReadMode.ARCHIVE_PREFERRED, Source.KAFKA, 50),  # lost in the archive, Kafka still has it
        (50, ReadMode.ARCHIVE_PREFERRED, Source.ARCHIVE, 100),
        (100, ReadMode.ARCHIVE_PREFERRED, Source.KAFKA, None),
        (500, ReadMode.ARCHIVE_PREFERRED, Source.KAFKA, None),  # live tail: Kafka serves what comes
        (10, ReadMode.KAFKA_PREFERRED, Source.ARCHIVE, 30),  # only the archive has it, until Kafka does
        (35, ReadMode.KAFKA_PREFERRED, Source.KAFKA, None),
        (45, ReadMode.ARCHIVE_ONLY, Source.HOLE, None),
        (99, ReadMode.ARCHIVE_ONLY, Source.ARCHIVE, 100),
        (100, ReadMode.ARCHIVE_ONLY, Source.END, None),
    ],
)
def test_sources(offset, mode, source, until):
    decision = decide(offset, EXTENT, mode)
    assert (decision.source, decision.until) == (source, until)


def test_a_hole_names_where_it_ends():
    gone = Extent(archive_start=0, archive_next=100, kafka_low=150, kafka_high=200)
    decision = decide(120, gone, ReadMode.ARCHIVE_PREFERRED)
    assert (decision.source, decision.hole_end) == (Source.HOLE, 150)
    lost_only = Extent(archive_start=0, archive_next=100, kafka_low=100, kafka_high=100, lost=((40, 50),))
    assert decide(45, lost_only, ReadMode.ARCHIVE_PREFERRED).hole_end == 50


def test_logical_offsets():
    mode = ReadMode.ARCHIVE_PREFERRED
    assert resolve(OFFSET_BEGINNING, EXTENT, mode) == 0
    assert resolve(OFFSET_END, EXTENT, mode) == 130
    assert resolve(OFFSET_END, EXTENT, ReadMode.ARCHIVE_ONLY) == 100
    assert resolve(OFFSET_STORED, EXTENT, mode, committed=77) == 77
    assert resolve(OFFSET_STORED, EXTENT, mode, committed=None, reset="earliest") == 0
    assert resolve(OFFSET_STORED, EXTENT, mode, committed=None, reset="largest") == 130
    assert resolve(42, EXTENT, mode) == 42
    assert watermarks(EXTENT, mode) == (0, 130)
    assert watermarks(Extent(None, None, kafka_low=5, kafka_high=9), mode) == (5, 9)
    with pytest.raises(ValueError, match=r"auto\.offset\.reset 'sometimes'"):
        resolve(OFFSET_STORED, EXTENT, mode, reset="sometimes")
    with pytest.raises(ValueError, match=r"pyrostore\.read\.mode 'fast'"):
        ReadMode.parse("fast")


extents = st.builds(
    lambda start, length, lost_at, lost_len, low, extra: Extent(
        archive_start=start,
        archive_next=start + length,
        kafka_low=low,
        kafka_high=max(low, start + length) + extra,
        lost=((start + lost_at, min(start + lost_at + lost_len, start + length)),)
        if lost_len and lost_at < length
        else (),
    ),
    start=st.integers(0, 50),
    length=st.integers(1, 80),
    lost_at=st.integers(0, 80),
    lost_len=st.integers(0, 20),
    low=st.integers(0, 200),
    extra=st.integers(0, 30),
)


@given(extent=extents, mode=st.sampled_from(list(ReadMode)))
def test_following_decisions_serves_every_held_offset_once_in_order(extent, mode):
    """Read from the beginning to Kafka's end as a consumer would; stop only at a real hole."""
    end = resolve(OFFSET_END, extent, mode)
    offset, served = resolve(OFFSET_BEGINNING, extent, mode), []
    while offset < end:
        decision = decide(offset, extent, mode)
        if decision.source in (Source.HOLE, Source.END):
            break
        stop = end if decision.until is None else min(decision.until, end)
        assert stop > offset, f"no progress at {offset}: {decision}"
        holds = extent.in_archive if decision.source is Source.ARCHIVE else extent.in_kafka
        served += [o for o in range(offset, stop) if holds(o)]
        offset = stop
    assert served == sorted(set(served)), "an offset was served twice or out of order"
    kafka_allowed = mode is not ReadMode.ARCHIVE_ONLY
    begin = resolve(OFFSET_BEGINNING, extent, mode)
    held = [o for o in range(begin, end) if extent.in_archive(o) or (kafka_allowed and extent.in_kafka(o))]
    if offset >= end:
        assert served == held, "a held offset was skipped"
    else:  # stopped at a hole: everything before it was served, and the hole really is one
        assert served == [o for o in held if o < offset]
        assert not extent.in_archive(offset) and not (kafka_allowed and extent.in_kafka(offset))
