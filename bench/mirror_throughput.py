"""Mirror throughput: ``pyrostore mirror`` copying an archive from S3 (MinIO) to GCS (fake-gcs-server), beside a
plain copy of the same objects with the client libraries (boto3 ``get_object`` into google-cloud-storage
``upload_from_string``, as many objects at once as the mirror copies segments). The mirror also walks the trees,
checks every digest and writes commits in order; the ratio says what that costs.

Builds the archive with the index writer (segments of incompressible values, one commit per segment), then runs
each side ``--rounds`` times into a fresh target prefix, in turns (the order alternating), and reports each
side's median time, the ratio of the medians, and each round's own ratio (the machine is shared and noisy).

    python bench/mirror_throughput.py [--mb 1000] [--segment-mb 8] [--partitions 4] [--rounds 5]
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

from bench.common import running_stack
from e2e.stack.s3 import client as s3_client
from pyrostore.index.writer import PartitionWriter
from pyrostore.mirror import Mirror
from pyrostore.mirror.copier import PARALLEL_COPIES
from pyrostore.segment import encode_segment, records_to_table
from pyrostore.store import ObjectStore, open_store

TOPIC = "bench"
VALUE = 4096


def build(store: ObjectStore, total: int, segment_bytes: int, partitions: int) -> int:
    """Archive ``total`` bytes of random values in segments of about ``segment_bytes``; return the bytes stored."""
    rng = random.Random(1)
    per_segment = max(1, segment_bytes // VALUE)
    values = [rng.randbytes(VALUE) for _ in range(per_segment)]
    writers = [PartitionWriter(store, TOPIC, p) for p in range(partitions)]
    for writer in writers:
        writer.claim(0)
    stored = 0
    while stored < total:
        for p, writer in enumerate(writers):
            start = writer.head.next_offset
            rows = [(start + i, 1_700_000_000_000 + start + i, 0, b"k", values[i], [], 0) for i in range(per_segment)]
            segment = encode_segment(records_to_table(rows), topic=TOPIC, partition=p, next_offset=start + per_segment)
            writer.append([segment])
            stored += segment.size
    for writer in writers:
        writer.close()
    return stored


def plain_copy(s3, gcs_bucket, bucket: str, source_prefix: str, target_prefix: str) -> int:
    """Copy every object under ``source_prefix`` with the client libraries alone; return the bytes copied."""
    keys = []
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=source_prefix):
        keys += [item["Key"] for item in page.get("Contents", [])]

    def copy(key: str) -> int:
        data = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
        gcs_bucket.blob(target_prefix + key[len(source_prefix) :]).upload_from_string(data)
        return len(data)

    with ThreadPoolExecutor(PARALLEL_COPIES) as pool:
        return sum(pool.map(copy, keys))


def main() -> None:
    """Start MinIO and fake-gcs-server, build the archive, time both sides, print the comparison."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--mb", type=float, default=1000.0, help="MB of segments in the archive")
    parser.add_argument("--segment-mb", type=float, default=8.0, help="size of each segment")
    parser.add_argument("--partitions", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=5, help="runs of each side (medians count)")
    args = parser.parse_args()

    from google.auth.credentials import AnonymousCredentials
    from google.cloud import storage

    with running_stack("mirror") as (_, stack):
        s3_server, gcs_server = stack.get("s3"), stack.get("gcs")
        s3_options = {
            "endpoint_url": s3_server.endpoint,
            "region": s3_server.region,
            "access_key_id": s3_server.access_key,
            "secret_access_key": s3_server.secret_key,
        }
        gcs_options = {"endpoint_url": gcs_server.endpoint, "project": gcs_server.project}
        prefix = f"bench-{uuid.uuid4().hex[:8]}"
        source = open_store(f"s3://{s3_server.bucket}/{prefix}", **s3_options)
        print(f"building {args.mb:.0f} MB of segments in S3 ...", flush=True)
        stored = build(source, int(args.mb * 1e6), int(args.segment_mb * 1e6), args.partitions)

        s3 = s3_client(s3_server)
        os.environ.setdefault("STORAGE_EMULATOR_HOST", gcs_server.endpoint)
        client = storage.Client(
            project=gcs_server.project,
            credentials=AnonymousCredentials(),
            client_options={"api_endpoint": gcs_server.endpoint},
        )
        gcs_bucket = client.bucket(gcs_server.bucket)
        times: dict[str, list[float]] = {"plain": [], "mirror": []}
        for round_ in range(args.rounds):
            for side in ("plain", "mirror") if round_ % 2 == 0 else ("mirror", "plain"):
                target_prefix = f"{prefix}-{side}-{round_}"
                started = time.perf_counter()
                if side == "plain":
                    plain_copy(s3, gcs_bucket, s3_server.bucket, f"{prefix}/", f"{target_prefix}/")
                else:
                    target = open_store(f"gs://{gcs_server.bucket}/{target_prefix}", **gcs_options)
                    Mirror(source, target).run_once()
                seconds = time.perf_counter() - started
                times[side].append(seconds)
                print(f"  round {round_} {side}: {seconds:.2f} s", flush=True)

    plain_mbs = stored / statistics.median(times["plain"]) / 1e6
    mirror_mbs = stored / statistics.median(times["mirror"]) / 1e6
    rounds = " ".join(f"{p / m:.2f}" for p, m in zip(times["plain"], times["mirror"], strict=True))
    print(f"\nmedians of {args.rounds} round(s)")
    print(f"{'archive MB':>10} | {'plain copy MB/s':>15} | {'mirror MB/s':>11} | {'ratio':>5}")
    print(f"{stored / 1e6:>10.0f} | {plain_mbs:>15.1f} | {mirror_mbs:>11.1f} | {mirror_mbs / plain_mbs:>5.2f}")
    print(f"per-round ratios: {rounds}")


if __name__ == "__main__":
    main()
