"""How many object reads an offset or time lookup costs with a cold cache, and writes a commit costs.

Builds an archive of many small segments on the file store (default 100,000), then for random offsets and
times opens a fresh reader (nothing cached) and counts the store requests each lookup makes: finding the
newest commit (the head hint and one listing), then the tree nodes down to the segment's entry. A time
lookup also reads the one segment it lands in, to find the exact offset. The baseline is a flat index (one
object listing every segment), the simplest alternative: it is read whole for every cold lookup.

    python bench/index_lookup.py [--segments 100000] [--per-commit 100] [--lookups 200]
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import tempfile
import time

from pyrostore.archive import Archive
from pyrostore.index.writer import PartitionWriter
from pyrostore.segment import encode_segment, records_to_table
from pyrostore.store import open_store

TOPIC = "bench"
PER_SEGMENT = 4


class CountingStore:
    """Wraps a store and counts requests by kind (a listing counts as one request per call)."""

    def __init__(self, store) -> None:
        self.inner = store
        self.counts: dict[str, int] = {}

    def __getattr__(self, name: str):
        attr = getattr(self.inner, name)
        if name not in ("get", "get_range", "put", "create", "stat", "list", "delete"):
            return attr

        def counted(*args, **kwargs):
            self.counts[name] = self.counts.get(name, 0) + 1
            return attr(*args, **kwargs)

        return counted

    def reset(self) -> None:
        """Start counting from zero."""
        self.counts = {}

    @property
    def reads(self) -> int:
        """Requests that read: gets, ranged gets, stats and listings."""
        return sum(self.counts.get(k, 0) for k in ("get", "get_range", "stat", "list"))

    @property
    def writes(self) -> int:
        """Requests that write."""
        return sum(self.counts.get(k, 0) for k in ("put", "create"))


def segment(offset: int, rng: random.Random):
    """A small segment of PER_SEGMENT records; timestamps rise overall but jitter (not monotonic)."""
    rows = [
        (o, 1_700_000_000_000 + o * 100 + rng.randint(-250, 250), 0, None, b"x" * 16, [], None)
        for o in range(offset, offset + PER_SEGMENT)
    ]
    return encode_segment(records_to_table(rows), topic=TOPIC, partition=0, next_offset=offset + PER_SEGMENT)


def build(store, segments: int, per_commit: int) -> tuple[float, dict[str, float]]:
    """Archive ``segments`` segments, ``per_commit`` per commit; return build seconds and writes per commit."""
    rng = random.Random(7)
    writer = PartitionWriter(store, TOPIC, 0)
    writer.claim(0)
    started = time.perf_counter()
    for first in range(0, segments, per_commit):
        batch = [segment((first + i) * PER_SEGMENT, rng) for i in range(min(per_commit, segments - first))]
        writer.append(batch)
        if first // per_commit % 50 == 0:
            print(f"  built {first + len(batch):>7} segments", end="\r", file=sys.stderr, flush=True)
    print(file=sys.stderr)
    elapsed = time.perf_counter() - started
    # Writes of one more single-segment commit and one more batch commit, on the full tree.
    writes = {}
    for label, count in (("1 segment", 1), (f"{per_commit} segments", per_commit)):
        start = writer.head.next_offset
        batch = [segment(start + i * PER_SEGMENT, rng) for i in range(count)]
        store.reset()
        writer.append(batch)
        writes[label] = store.writes
    writer.close()
    return elapsed, writes


def cold_lookups(store, lookups: int, last_offset: int) -> dict[str, float]:
    """Average requests per cold lookup: by offset, by time, and of a flat index for comparison."""
    rng = random.Random(11)
    totals = {"head": 0, "offset": 0, "time": 0}
    for _ in range(lookups):
        offset = rng.randrange(last_offset)
        store.reset()
        reader = Archive(store).partition(TOPIC, 0)  # a new reader: empty node cache
        totals["head"] += store.reads
        store.reset()
        entry = reader.find(offset)
        assert entry is not None and entry.base <= offset < entry.end
        totals["offset"] += store.reads

        reader = Archive(store).partition(TOPIC, 0)
        target = 1_700_000_000_000 + rng.randrange(last_offset) * 100
        store.reset()
        found = reader.offset_for_time(target)
        assert found is not None
        totals["time"] += store.reads
    return {k: v / lookups for k, v in totals.items()}


def main() -> None:
    """Build the archive, measure, and print the figures beside the flat-index baseline."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--segments", type=int, default=100_000)
    parser.add_argument("--per-commit", type=int, default=100)
    parser.add_argument("--lookups", type=int, default=200)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="pyrostore-bench-") as folder:
        store = CountingStore(open_store(folder))
        print(f"building {args.segments} segments of {PER_SEGMENT} records, {args.per_commit} per commit ...")
        build_seconds, writes = build(store, args.segments, args.per_commit)
        reads = cold_lookups(store, args.lookups, args.segments * PER_SEGMENT)
        reader = Archive(store).partition(TOPIC, 0)
        levels = 1 + reader.nodes.load(reader.commit.root.digest).level
        # Baseline: one flat object listing every segment's entry, read whole by every cold lookup.
        flat_bytes = len(json.dumps([[e.base, e.end, e.min_ts, e.max_ts, e.digest] for e in reader.segments()]))

    print(f"\nindex of {args.segments} segments: {levels} tree levels, built in {build_seconds:.1f}s")
    print(f"{'cold lookup':<28}{'requests':>10}  (tree nodes + segment; plus {reads['head']:.1f} to find the head)")
    print(f"{'  by offset':<28}{reads['offset']:>10.2f}")
    print(f"{'  by time':<28}{reads['time']:>10.2f}")
    print(f"{'  head + offset (total)':<28}{reads['head'] + reads['offset']:>10.2f}   target <= 4")
    print(f"{'  flat index (baseline)':<28}{1:>10}   but {flat_bytes / 1e6:.1f} MB per cold lookup")
    for label, count in writes.items():
        print(f"{'writes per commit of ' + label:<28}{count:>10}")


if __name__ == "__main__":
    main()
