"""Object keys: segment keys are built and parsed strictly."""

from __future__ import annotations

import pytest

from pyrostore.errors import FormatError
from pyrostore.layout import ROOT_PREFIX, commit_key, parse_commit_seq, parse_segment_key, segment_key

DIGEST = "ab" * 32


def test_segment_keys_round_trip_and_reject_look_alikes() -> None:
    key = segment_key("orders.v1", 12, 345, DIGEST)
    assert key == f"{ROOT_PREFIX}data/topic=orders.v1/partition=12/00000000000000000345-{DIGEST}.parquet"
    assert parse_segment_key(key) == ("orders.v1", 12, 345, DIGEST)
    for bad in (
        key.replace(".parquet", ".json"),
        key.replace("partition=12", "partition=012"),
        key.replace("00000000000000000345", "345"),
        key.replace(DIGEST, DIGEST.upper()),
        key.removeprefix(ROOT_PREFIX),
        f"{ROOT_PREFIX}data/topic=../partition=0/{0:020d}-{DIGEST}.parquet",
        f"{ROOT_PREFIX}data/topic=a/b/partition=0/{0:020d}-{DIGEST}.parquet",
    ):
        with pytest.raises(FormatError):
            parse_segment_key(bad)
    for topic, partition, first, digest in (
        ("a/b", 0, 0, DIGEST),
        ("..", 0, 0, DIGEST),
        ("t", -1, 0, DIGEST),
        ("t", 0, 0, "ab"),
    ):
        with pytest.raises(ValueError):
            segment_key(topic, partition, first, digest)


def test_commit_keys_sort_numerically() -> None:
    keys = [commit_key("t", 0, seq) for seq in (10, 9, 100)]
    assert sorted(keys) == [commit_key("t", 0, seq) for seq in (9, 10, 100)]
    assert parse_commit_seq(keys[2]) == 100
    with pytest.raises(FormatError):
        parse_commit_seq("pyrostore/v1/log/t/0/HEAD")
