"""ReplayOptions: validation errors name the option, and the replay's identity is stable where it must be."""

from __future__ import annotations

import dataclasses
import re

import pytest

from pyrostore.errors import InvalidReplayOptions
from pyrostore.replay import ReplayOptions


def options(**changes) -> ReplayOptions:
    return ReplayOptions(
        **{"store_url": "/a", "topic": "src", "to_topic": "dst", "bootstrap_servers": "k:9092", **changes}
    )


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"from_offset": 1, "from_time": 2}, "--from-offset or --from-time"),
        ({"to_offset": 1, "to_time": 2}, "--to-offset or --to-time"),
        ({"from_offset": 10, "to_offset": 10}, "--to-offset 10 is not after --from-offset 10"),
        ({"from_time": 5, "to_time": 4}, "--to-time 4 is not after"),
        ({"from_offset": -1}, "negative"),
        ({"partitioning": "sticky"}, "'sticky' is not one of preserve, key-hash, round-robin"),
        ({"partitions": ()}, "--partitions"),
        ({"rate_limit": 0}, "--rate-limit must be positive"),
        ({"records_per_second": -5}, "--records-per-second must be positive"),
        ({"workers": 2, "worker_index": 2}, "worker index 2 is not within 0..1"),
        ({"to_topic": "bad name!"}, "--to-topic"),
        ({"kafka_properties": {"enable.idempotence": "false"}}, "enable.idempotence=false is not allowed"),
        ({"kafka_properties": {"transactional.id": "x"}}, "transactional.id is set by the replay"),
    ],
)
def test_invalid_options_name_the_problem(changes, message):
    with pytest.raises(InvalidReplayOptions, match=re.escape(message)):
        options(**changes)


def test_identity_ignores_limits_workers_and_client_properties_but_not_what_is_written():
    base = options(from_offset=5, partitioning="key-hash")
    same = dataclasses.replace(
        base, rate_limit=1000, records_per_second=5, workers=3, worker_index=2, kafka_properties={"acks": "all"}
    )
    assert same.identity == base.identity
    for change in ({"from_offset": 6}, {"to_topic": "other"}, {"partitioning": "preserve"}, {"exactly_once": True}):
        assert dataclasses.replace(base, **change).identity != base.identity
    assert options(replay_id="job-42").identity == "job-42"


def test_each_worker_has_its_own_stable_transactional_id():
    first, second = options(workers=2, worker_index=0), options(workers=2, worker_index=1)
    assert first.transactional_id != second.transactional_id
    assert first.transactional_id == options(workers=2, worker_index=0, rate_limit=5).transactional_id
    assert first.identity in first.transactional_id
