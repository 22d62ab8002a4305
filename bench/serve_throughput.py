"""``pyrostore serve`` beside Kafka: one confluent_kafka.Consumer reading the same records from each.

Starts the stack's Kafka, produces ``--records`` records of ``--value-size`` bytes over ``--partitions``
partitions, archives them with the real archiver (``python -m pyrostore archive`` in a child process, into a
local folder or with ``--store s3`` into the stack's MinIO) until the archive holds every one, then reads all of
them, each read in its own process, ``--rounds`` times, alternating which goes first:

- ``serve``: through a ``python -m pyrostore serve`` process started for that read (a fresh process, so its
  built-batch cache starts cold and its peak memory is that read's), with ``--batch-bytes`` and
  ``--compression``;
- ``kafka``: directly from the stack's Kafka.

The reader is the same for both: a ``confluent_kafka.Consumer`` with consumer_read.py's "tuned" settings
(librdkafka's defaults, a fresh group id, the archiver's :data:`~bench.consumer_read.TUNED_FETCH`) plus
``enable.auto.commit`` off (the server has no group coordinator; nothing is committed on either side), assigned
at OFFSET_BEGINNING on every partition, ``consume(1000)`` until every partition's last offset was read, touching
each key and value. Rates count from just before ``assign()`` to the last record; MB/s counts key and value
bytes. Prints each round and the medians: MB/s and records/s of both reads, the ratio serve/Kafka of the medians
and of each round (target: at least 0.5), the serve process's peak memory (VmHWM) and CPU seconds (the system
part apart) beside the Kafka broker's CPU seconds during its read, and each reading client's CPU seconds and
peak memory.

``--profile DIR`` runs the server under cProfile instead (every thread: one ``.pstats`` file per thread and
round in DIR, and the top functions of all threads in ``DIR/round<N>-all.txt``); its figures are then slower
than the real server's.

    python bench/serve_throughput.py [--records 1000000] [--value-size 1024] [--partitions 4] [--store folder|s3]
        [--segment-bytes 8MiB] [--batch-bytes 1048576] [--compression none|gzip] [--rounds 3] [--profile DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

from bench.common import (
    add_archive_arguments,
    archived_topic,
    consume_to_ends,
    cpu_seconds,
    peak_rss_mb,
    run_role,
    running_stack,
)
from bench.consumer_read import TUNED_FETCH

ROLES = ("serve", "kafka")
TARGET = 0.5  # serve's MB/s over Kafka's
READ_TIMEOUT = 900.0  # seconds one read may take before the bench gives up


def reader_config(bootstrap: str) -> dict:
    """The settings of both reads: consumer_read.py's tuned baseline, auto commit off."""
    return {
        "bootstrap.servers": bootstrap,
        "group.id": f"bench-serve-{uuid.uuid4().hex}",
        "enable.auto.commit": False,
        **TUNED_FETCH,
    }


def role_read(setup: dict, bootstrap: str) -> dict:
    """Read every partition of the topic from ``bootstrap`` to its end (``setup["ends"]``), touching each key and
    value; return the figures."""
    from confluent_kafka import Consumer

    consumer = Consumer(reader_config(bootstrap))
    count = nbytes = 0
    first = None
    started, cpu = time.perf_counter(), cpu_seconds()
    for records in consume_to_ends(consumer, setup["topic"], setup["ends"], READ_TIMEOUT):
        count += len(records)
        for message in records:
            nbytes += len(message.key() or b"") + len(message.value() or b"")
        if first is None and count:
            first = time.perf_counter()
    elapsed, cpu = time.perf_counter() - started, cpu_seconds() - cpu
    consumer.close()
    return {
        "seconds": elapsed,
        "first_seconds": (first or elapsed) - started,
        "records": count,
        "bytes": nbytes,
        "client_cpu": cpu,
        "client_peak_mb": peak_rss_mb(),
    }


# --- the serve process -------------------------------------------------------------------------------------------


def serve_command(setup: dict, port: int, profile: str | None) -> list[str]:
    """``python -m pyrostore serve`` for the topic on ``port``; with ``profile``, this script's profiled server."""
    if profile:
        spec = {**setup, "port": port, "profile": profile}
        return [sys.executable, __file__, "--role", "server", json.dumps(spec)]
    command = [sys.executable, "-m", "pyrostore", "serve", "--store", setup["url"], "--listen", f"127.0.0.1:{port}"]
    command += ["--topic", setup["topic"], "--batch-bytes", str(setup["batch_bytes"])]
    command += ["--compression", setup["compression"], "--log-format", "json"]
    for key, value in setup["options"].items():
        command += ["-o", f"{key}={value}"]
    return command


def role_server(spec: dict) -> None:
    """The server as ``pyrostore serve`` runs it, under cProfile in every thread, until SIGTERM; then one
    ``.pstats`` file per thread that ran Python code in ``spec["profile"]``, and the top functions printed."""
    import cProfile
    import pstats

    from pyrostore.serve import Address, ServeConfig, run
    from pyrostore.serve.config import Compression

    profiles: list[tuple[str, cProfile.Profile]] = []

    def start_profiling(*_: object) -> None:
        # The first event in a new thread: from now on this thread's calls go to its own profile.
        profile = cProfile.Profile()
        profiles.append((threading.current_thread().name, profile))
        profile.enable()

    config = ServeConfig(
        store_url=spec["url"],
        store_options={**spec["options"], "retry_deadline": "20"},
        listen=Address("127.0.0.1", spec["port"]),
        topics=(spec["topic"],),
        batch_bytes=spec["batch_bytes"],
        compression=Compression(spec["compression"]),
    )
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    threading.setprofile(start_profiling)
    main = cProfile.Profile()
    profiles.append(("main", main))
    main.enable()
    try:
        run(config, stop)
    finally:
        main.disable()
        threading.setprofile(None)  # type: ignore[arg-type]
        folder = Path(spec["profile"])
        folder.mkdir(parents=True, exist_ok=True)
        merged = None
        for i, (name, profile) in enumerate(profiles):
            profile.create_stats()
            if not profile.stats:  # type: ignore[attr-defined]
                continue
            profile.dump_stats(folder / f"{spec['label']}-{i}-{name}.pstats")
            merged = pstats.Stats(profile) if merged is None else merged.add(profile)
        if merged is not None:
            merged.dump_stats(folder / f"{spec['label']}-all.pstats")
            with open(folder / f"{spec['label']}-all.txt", "w") as out:
                stats = pstats.Stats(str(folder / f"{spec['label']}-all.pstats"), stream=out)
                stats.sort_stats("tottime").print_stats(40)
                stats.sort_stats("cumulative").print_stats(40)


def _proc_times(pid: int) -> tuple[float, float]:
    """User and system CPU seconds process ``pid`` has used."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    tick = os.sysconf("SC_CLK_TCK")
    return int(fields[11]) / tick, int(fields[12]) / tick


def read_through_serve(setup: dict, workdir: Path, label: str, profile: str | None) -> dict:
    """Start a serve process, read everything through it in a reader process, stop it; the figures of both."""
    from e2e.stack.process import free_port

    port = free_port()
    log = workdir / f"serve-{label}.log"
    with open(log, "ab") as out:
        proc = subprocess.Popen(
            serve_command({**setup, "label": label}, port, profile), stdout=out, stderr=subprocess.STDOUT
        )
    try:
        deadline = time.monotonic() + 60
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"pyrostore serve exited ({proc.returncode}):\n{log.read_text()[-3000:]}")
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"pyrostore serve did not listen within 60 s (log {log})") from None
                time.sleep(0.1)
        user, system = _proc_times(proc.pid)
        figures = run_role("read", json.dumps(setup), f"127.0.0.1:{port}", script=__file__)
        user_after, system_after = _proc_times(proc.pid)
        figures["server_cpu"] = user_after - user + system_after - system
        figures["server_system_cpu"] = system_after - system
        figures["server_peak_mb"] = peak_rss_mb(proc.pid)
    finally:
        proc.terminate()
        try:
            proc.wait(60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    return figures


def read_from_kafka(setup: dict, broker_pid: int) -> dict:
    """Read everything from Kafka in a reader process; its figures and the broker's CPU seconds meanwhile."""
    user, system = _proc_times(broker_pid)
    figures = run_role("read", json.dumps(setup), setup["bootstrap"], script=__file__)
    user_after, system_after = _proc_times(broker_pid)
    figures["server_cpu"] = user_after - user + system_after - system
    figures["server_system_cpu"] = system_after - system
    return figures


# --- the report --------------------------------------------------------------------------------------------------


def _rates(figures: dict) -> tuple[float, float]:
    """(MB/s, records/s) of one read."""
    return figures["bytes"] / figures["seconds"] / 1e6, figures["records"] / figures["seconds"]


def _cpu(figures: dict) -> str:
    """A server's CPU seconds, the system part in parentheses."""
    return f"{figures['server_cpu']:.1f} ({figures['server_system_cpu']:.1f})"


def report(setup: dict, runs: dict[str, list[dict]], profile: str | None) -> None:
    """Every round, then the medians."""
    print(
        f"\n{'round':>5} {'read':<6} {'seconds':>8} {'first s':>8} {'MB/s':>7} {'rec/s':>9} {'server CPU s (sys)':>18} "
        f"{'server peak MB':>14} {'client CPU s':>12} {'client peak MB':>14} {'ratio':>6}"
    )
    ratios = []
    for round_, (ours, theirs) in enumerate(zip(runs["serve"], runs["kafka"], strict=True)):
        ratio = _rates(ours)[0] / _rates(theirs)[0]
        ratios.append(ratio)
        for role, figures in (("serve", ours), ("kafka", theirs)):
            mb_s, records_s = _rates(figures)
            peak = figures.get("server_peak_mb")
            print(
                f"{round_:>5} {role:<6} {figures['seconds']:>8.2f} {figures['first_seconds']:>8.2f} {mb_s:>7.1f} "
                f"{records_s:>9.0f} {_cpu(figures):>18} {'' if peak is None else f'{peak:.0f}':>14} "
                f"{figures['client_cpu']:>12.1f} {figures['client_peak_mb']:>14.0f} "
                f"{f'{ratio:.2f}' if role == 'serve' else '':>6}"
            )

    def median(role: str, key) -> float:
        return statistics.median(key(f) for f in runs[role])

    serve_mb, kafka_mb = median("serve", lambda f: _rates(f)[0]), median("kafka", lambda f: _rates(f)[0])
    serve_rec, kafka_rec = median("serve", lambda f: _rates(f)[1]), median("kafka", lambda f: _rates(f)[1])
    rounds = len(runs["serve"])
    print(
        f"\n{setup['records']} records of {setup['value_size']} B over {len(setup['ends'])} partitions, store "
        f"{setup['store']} ({setup['segments']} segments), serve --batch-bytes {setup['batch_bytes']} "
        f"--compression {setup['compression']}; medians of {rounds} round(s)"
        + (" (server under cProfile: slower than without)" if profile else "")
        + "\n"
    )
    print(f"{'read':<12} {'MB/s':>7} {'rec/s':>9} {'server CPU s':>12} {'server peak MB':>14} {'client peak MB':>14}")
    print(
        f"{'serve':<12} {serve_mb:>7.1f} {serve_rec:>9.0f} {median('serve', lambda f: f['server_cpu']):>12.1f} "
        f"{median('serve', lambda f: f['server_peak_mb']):>14.0f} "
        f"{median('serve', lambda f: f['client_peak_mb']):>14.0f}"
    )
    print(
        f"{'kafka':<12} {kafka_mb:>7.1f} {kafka_rec:>9.0f} {median('kafka', lambda f: f['server_cpu']):>12.1f} "
        f"{'(JVM)':>14} {median('kafka', lambda f: f['client_peak_mb']):>14.0f}"
    )
    print(
        f"\nserve/Kafka MB/s: {serve_mb / kafka_mb:.2f} (target >= {TARGET}); median of per-round ratios "
        f"{statistics.median(ratios):.2f}; rounds {' '.join(f'{r:.2f}' for r in ratios)}"
    )
    if profile:
        print(f"profiles of the server: {profile}/*.pstats, top functions in {profile}/*-all.txt")


# --- setting up --------------------------------------------------------------------------------------------------


def _partition_facts(setup: dict) -> tuple[list[int], int]:
    """Each partition's next offset in the archive, and the archive's segment count."""
    from pyrostore.archive import open_archive

    archive = open_archive(setup["url"], **setup["options"])
    try:
        ends, segments = [], 0
        for p in range(setup["partitions"]):
            partition = archive.partition(setup["topic"], p)
            ends.append(partition.commit.next_offset)
            segments += sum(1 for e in partition.segments() if not e.lost)
        return ends, segments
    finally:
        archive.close()


def main() -> None:
    """Start Kafka (and MinIO for ``--store s3``), produce, archive, read both ways in rounds, print the figures."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_archive_arguments(parser, value_size=1024)
    parser.add_argument("--batch-bytes", type=int, default=2**20, help="pyrostore serve --batch-bytes")
    parser.add_argument("--compression", choices=("none", "gzip"), default="none", help="pyrostore serve's")
    parser.add_argument("--rounds", type=int, default=3, help="reads of each side, alternating; medians count")
    parser.add_argument("--profile", metavar="DIR", help="run the server under cProfile, profiles into DIR")
    parser.add_argument("--role", help=argparse.SUPPRESS)
    parser.add_argument("args", nargs="*", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.role == "read":
        print(json.dumps(role_read(json.loads(args.args[0]), args.args[1])))
        return
    if args.role == "server":
        role_server(json.loads(args.args[0]))
        return
    profile = str(Path(args.profile).resolve()) if args.profile else None

    with running_stack("serve") as (workdir, stack):
        kafka = stack.get("kafka")
        setup = archived_topic(stack, workdir, "serve", args)
        setup |= {"batch_bytes": args.batch_bytes, "compression": args.compression}
        setup["ends"], setup["segments"] = _partition_facts(setup)
        os.sync()  # neither read should compete with the writeback of what was just produced and archived
        runs: dict[str, list[dict]] = {role: [] for role in ROLES}
        for round_ in range(args.rounds):
            for role in ROLES if round_ % 2 == 0 else reversed(ROLES):
                if role == "serve":
                    figures = read_through_serve(setup, workdir, f"round{round_}", profile)
                else:
                    figures = read_from_kafka(setup, kafka.process.pid)
                if figures["records"] != setup["records"]:
                    raise RuntimeError(f"{role} read {figures['records']} of {setup['records']} records")
                runs[role].append(figures)
                mb_s, _ = _rates(figures)
                print(f"  round {round_} {role}: {figures['seconds']:.2f} s, {mb_s:.1f} MB/s", flush=True)

    report(setup, runs, profile)


if __name__ == "__main__":
    main()
