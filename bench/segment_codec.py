"""Segment codec throughput: Pyrostore's encode and decode beside plain pyarrow Parquet, in one run.

Usage: ``python bench/segment_codec.py [--mb 200]``. Throughput is uncompressed Arrow bytes per second,
best of three. The baseline is ``pq.write_table`` / ``pq.read_table`` with pyarrow's defaults (snappy,
dictionaries, no page index, no digest). Prints figures; asserts nothing.
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from pyrostore.segment import SegmentBuilder, decode_segment, encode_segment

VALUE_BYTES = 1024
TOKEN_BYTES = 130
WORDS = ["order", "paid", "shipped", "cancelled", "refund", "basket", "checkout", "view", "click", "search"]
WORDS += ["mobile", "desktop", "tablet", "berlin", "paris", "london", "tokyo", "madrid", "vienna", "oslo"]


def make_table(mb: int, seed: int = 1) -> pa.Table:
    """About ``mb`` MB of records with 1 KiB JSON-like values, realistic offsets, timestamps and keys."""
    rnd = random.Random(seed)
    # A pool of text fragments plus a random token per value: compresses 3-4x with zstd, as event JSON does.
    notes = [" ".join(rnd.choices(WORDS, k=12)) for _ in range(512)]
    items = [
        f'{{"sku": "SKU-{n:05d}", "qty": {n % 7 + 1}, "price": {n % 9000 / 100:.2f}}}' for n in range(4096)
    ]
    builder = SegmentBuilder()
    offset, timestamp = 1_000_000, 1_700_000_000_000
    for _ in range(mb * 1024 * 1024 // VALUE_BYTES):
        user = rnd.randrange(100_000)
        head = (
            f'{{"event_id": "{rnd.getrandbits(128):032x}", "user_id": {user}, "ts": {timestamp}, '
            f'"session": "{rnd.getrandbits(64):016x}", "token": "{rnd.randbytes(TOKEN_BYTES).hex()}", '
            f'"note": "{rnd.choice(notes)}", "items": ['
        )
        body = ", ".join(rnd.choices(items, k=12))
        value = (head + body)[: VALUE_BYTES - 2].ljust(VALUE_BYTES - 2) + "]}"
        headers = [("trace-id", os.urandom(16).hex().encode())] if user % 4 == 0 else None
        builder.append(offset, timestamp, 0, b"user-%d" % user, value.encode(), headers, 7)
        offset += 1 if rnd.random() < 0.99 else 3  # a few transaction markers leave gaps
        timestamp += rnd.randrange(0, 3)
    return builder.to_table()


def best_of(runs: int, action: Callable[[], object]) -> tuple[float, object]:
    """The shortest of ``runs`` timings of ``action``, and its last result."""
    best, result = float("inf"), None
    for _ in range(runs):
        start = time.perf_counter()
        result = action()
        best = min(best, time.perf_counter() - start)
    return best, result


def baseline_write(table: pa.Table) -> bytes:
    sink = pa.BufferOutputStream()
    pq.write_table(table, sink)
    return sink.getvalue().to_pybytes()


def main() -> None:
    """Run the benchmark and print its table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mb", type=int, default=200, help="uncompressed megabytes of records (default 200)")
    parser.add_argument("--runs", type=int, default=3, help="timings per figure; the best counts (default 3)")
    args = parser.parse_args()

    table = make_table(args.mb)
    size = table.nbytes / 1e6
    next_offset = table.column("offset")[-1].as_py() + 1
    encode_s, segment = best_of(
        args.runs, lambda: encode_segment(table, topic="bench", partition=0, next_offset=next_offset)
    )
    base_encode_s, base_data = best_of(args.runs, lambda: baseline_write(table))
    decode_s, decoded = best_of(
        args.runs, lambda: decode_segment(segment.data, expected_digest=segment.digest, name="bench")
    )
    base_decode_s, _ = best_of(args.runs, lambda: pq.read_table(pa.BufferReader(base_data)))
    assert decoded.equals(table), "decode_segment did not give back the encoded records"

    print(f"segment codec: {table.num_rows:,} records, {size:.0f} MB uncompressed, {os.cpu_count()} cores")
    print(f"{'':22}{'pyrostore':>12}{'pyarrow':>12}{'ratio':>8}")
    for label, ours, theirs in (
        ("encode MB/s", encode_s, base_encode_s),
        ("decode MB/s", decode_s, base_decode_s),
    ):
        print(f"{label:22}{size / ours:12.0f}{size / theirs:12.0f}{theirs / ours:8.2f}")
    print(f"{'compression (x)':22}{table.nbytes / segment.size:12.2f}{table.nbytes / len(base_data):12.2f}")
    print(f"{'stored MB':22}{segment.size / 1e6:12.1f}{len(base_data) / 1e6:12.1f}")


if __name__ == "__main__":
    main()
