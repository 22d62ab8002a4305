"""One flipped byte in any segment, index node or commit is reported by verify and never served."""

from __future__ import annotations

import pytest

from pyrostore.archive import Archive
from pyrostore.errors import IntegrityError
from pyrostore.index.tree import NodeStore, walk
from pyrostore.layout import ROOT_PREFIX, node_key, segment_key
from pyrostore.store import open_store
from pyrostore.verify import verify_partition
from tests.helpers import build_partition

TOPIC = "flips"


def _objects(store, kind: str) -> list[str]:
    return [info.key for info in store.list(f"{ROOT_PREFIX}{kind}/")]


@pytest.fixture
def archive_store(tmp_path):
    store = open_store(str(tmp_path / "archive"))
    build_partition(store, TOPIC, 0, segments=12, fanout=3)  # three levels of nodes
    return store


def _flip(store, key: str, position: int) -> bytes:
    original = store.get(key)
    damaged = bytearray(original)
    damaged[position % len(damaged)] ^= 0x01
    store.put(key, bytes(damaged))
    return original


@pytest.mark.parametrize("kind", ["data", "index", "log"])
def test_every_flipped_object_is_reported_and_never_served(archive_store, kind):
    expected = [r.offset for r in Archive(archive_store).partition(TOPIC, 0).read()]
    head_tree = _head_tree_keys(archive_store)
    keys = _objects(archive_store, kind)
    assert len(keys) >= 3
    for index, key in enumerate(keys):
        original = _flip(archive_store, key, position=index * 7919 + 13)
        try:
            report = verify_partition(archive_store, NodeStore(archive_store, TOPIC), TOPIC, 0)
            name = key.rsplit("/", 1)[-1].removesuffix(".parquet").removesuffix(".json").split("-")[-1]
            assert any(name in str(p) for p in report.problems), f"flipping {key} went unnoticed"
            try:
                served = [r.offset for r in Archive(open_store(archive_store.url)).partition(TOPIC, 0).read()]
            except IntegrityError:
                continue
            assert key not in head_tree, f"{key} is read by every reader, yet its damage was not detected"
            assert served == expected  # what is served is always right
        finally:
            archive_store.put(key, original)
    reader = Archive(archive_store).partition(TOPIC, 0)
    assert verify_partition(archive_store, reader.nodes, TOPIC, 0).ok


def _head_tree_keys(store) -> set[str]:
    """Keys of the objects a reader of the newest commit reads: its tree's nodes and segments."""
    reader = Archive(store).partition(TOPIC, 0)
    keys = {node_key(TOPIC, visit.entry.digest) for visit in walk(reader.nodes, [reader.commit.root])}
    keys |= {segment_key(TOPIC, 0, leaf.first, leaf.digest) for leaf in reader.segments()}
    return keys


def test_a_forged_commit_over_a_shared_root_is_reported(archive_store):
    """Every entry naming a node must summarise it, even when the node was checked through another commit."""
    import dataclasses

    from pyrostore.index.commits import create_commit

    reader = Archive(archive_store).partition(TOPIC, 0)
    head = reader.commit
    forged_root = dataclasses.replace(head.root, records=head.root.records + 999)
    create_commit(archive_store, head.successor(forged_root, head.next_offset, head.writer_epoch, "forger"))
    report = verify_partition(archive_store, NodeStore(archive_store, TOPIC), TOPIC, 0)
    assert any("does not match its entries' summary" in p.message for p in report.problems), report.problems


def test_a_node_with_an_impossible_entry_is_an_integrity_error():
    import hashlib
    import json

    from pyrostore.index.node import decode_node

    bad_entries = [
        {
            "base": 0,
            "end": 5,
            "first": None,
            "last": None,
            "records": 0,
            "segments": 1,
            "bytes": 10,
            "min_ts": None,
            "max_ts": None,
            "digest": "ab" * 32,
        },  # a segment with no record
        {
            "base": 0,
            "end": 5,
            "first": 0,
            "last": 4,
            "records": 5,
            "segments": 1,
            "bytes": 10,
            "min_ts": 1,
            "max_ts": 2,
            "digest": "not-hex",
        },
    ]
    for entry in bad_entries:
        data = json.dumps({"format": 1, "level": 0, "entries": [entry]}, sort_keys=True, separators=(",", ":")).encode()
        with pytest.raises(IntegrityError, match=r"impossible shape|not a lowercase hex"):
            decode_node(data, hashlib.sha256(data).hexdigest(), "crafted")
