"""Segment codec throughput: Pyrostore's encode and decode beside plain pyarrow Parquet, in one run.

Usage: ``python bench/segment_codec.py [--mb 200]``. Throughput is uncompressed Arrow bytes per second,
best of three. The baseline is ``pq.write_table`` / ``pq.read_table`` with pyarrow's defaults (snappy,
dictionaries, no page index, no digest); a last column shows pyarrow with zstd level 1 alone, so that the
codec's cost is told apart from Pyrostore's own. Prints figures; asserts nothing about them.
"""

from __future__ import annotations

import argparse
import os
import random
import time
from collections.abc import Callable

import pyarrow as pa
import pyarrow.parquet as pq

from pyrostore.segment import decode_segment, encode_segment, records_to_table

VALUE_BYTES = 1024
TOKEN_BYTES = 130
WORDS = ["order", "paid", "shipped", "cancelled", "refund", "basket", "checkout", "view", "click", "search"]
WORDS += ["mobile", "desktop", "tablet", "berlin", "paris", "london", "tokyo", "madrid", "vienna", "oslo"]


def make_table(mb: int, seed: int = 1) -> pa.Table:
    """About ``mb`` MB of records with 1 KiB JSON-like values, realistic offsets, timestamps and keys."""
    rnd = random.Random(seed)
    # A pool of text fragments plus a random token per value: compresses 3-4x with zstd, as event JSON does.
    notes = [" ".join(rnd.choices(WORDS, k=12)) for _ in range(512)]
    items = [f'{{"sku": "SKU-{n:05d}", "qty": {n % 7 + 1}, "price": {n % 9000 / 100:.2f}}}' for n in range(4096)]
    records = []
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
        headers = [("trace-id", rnd.randbytes(16).hex().encode())] if user % 4 == 0 else None
        records.append((offset, timestamp, 0, b"user-%d" % user, value.encode(), headers, 7))
        offset += 1 if rnd.random() < 0.99 else 3  # a few transaction markers leave gaps
        timestamp += rnd.randrange(0, 3)
    return records_to_table(records)


def best_of(runs: int, *actions: Callable[[], object]) -> list[float]:
    """The shortest of ``runs`` timings of each action, run in turn so that all see the same load."""
    best = [float("inf")] * len(actions)
    for _ in range(runs):
        for i, action in enumerate(actions):
            start = time.perf_counter()
            action()
            best[i] = min(best[i], time.perf_counter() - start)
    return best


def pyarrow_write(table: pa.Table, **options: object) -> bytes:
    """Plain ``pq.write_table`` to memory."""
    sink = pa.BufferOutputStream()
    pq.write_table(table, sink, **options)
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
    segment = encode_segment(table, topic="bench", partition=0, next_offset=next_offset)
    decoded = decode_segment(segment.data, expected_digest=segment.digest, name="bench")
    assert decoded.equals(table), "decode_segment did not give back the encoded records"
    # The baseline is pyarrow's defaults; pyarrow with zstd-1 shows what the codec alone costs.
    zstd = {"compression": "zstd", "compression_level": 1}
    default_data, zstd_data = pyarrow_write(table), pyarrow_write(table, **zstd)
    encode = best_of(
        args.runs,
        lambda: encode_segment(table, topic="bench", partition=0, next_offset=next_offset),
        lambda: pyarrow_write(table),
        lambda: pyarrow_write(table, **zstd),
    )
    decode = best_of(
        args.runs,
        lambda: decode_segment(segment.data, expected_digest=segment.digest, name="bench"),
        lambda: pq.read_table(pa.BufferReader(default_data)),
        lambda: pq.read_table(pa.BufferReader(zstd_data)),
    )

    print(f"segment codec: {table.num_rows:,} records, {size:.0f} MB uncompressed, {os.cpu_count()} cores")
    print(f"{'':18}{'pyrostore':>10}{'baseline':>10}{'ratio':>7}{'pyarrow zstd-1':>16}")
    for label, (ours, base, zstd_s) in (("encode MB/s", encode), ("decode MB/s", decode)):
        print(f"{label:18}{size / ours:10.0f}{size / base:10.0f}{base / ours:7.2f}{size / zstd_s:16.0f}")
    sizes = (segment.size, len(default_data), len(zstd_data))
    print(f"{'compression (x)':18}{table.nbytes / sizes[0]:10.2f}{table.nbytes / sizes[1]:10.2f}"
          f"{sizes[1] / sizes[0]:7.2f}{table.nbytes / sizes[2]:16.2f}")  # fmt: skip
    print("baseline: pyarrow's default Parquet (snappy, no page index); ratio: pyrostore / baseline")


if __name__ == "__main__":
    main()
