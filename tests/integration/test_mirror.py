"""``pyrostore mirror`` against the stack's real stores while a real archiver keeps writing: S3 (MinIO) to GCS
(fake-gcs-server) and a folder to S3 catch up to equal roots, verify clean and read back the same records; ten
SIGKILLs at random moments never leave the target invalid; a damaged segment is named and never copied."""

from __future__ import annotations

import os
import random
import subprocess
import sys
import threading
import time
import urllib.request
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from confluent_kafka import OFFSET_BEGINNING, TopicPartition

import pyrostore
from e2e.stack.gcs import GcsServer
from e2e.stack.s3 import S3Server
from pyrostore.store import ObjectStore, open_store
from tests.consumer_helpers import S3Archive, read_to_end
from tests.helpers import build_partition
from tests.kafka_helpers import ArchiverProcess, ChildProcess, archive_rows, kafka_rows, keep_producing, wait_for
from tests.mirror_helpers import problems, roots
from tests.serve_helpers import free_port

PARTITIONS = 2


@dataclass
class Side:
    """One archive location, as a test, an archiver and the mirror each take it."""

    url: str
    options: dict[str, str] = field(default_factory=dict)
    env: dict[str, str] = field(default_factory=dict)

    def store(self) -> ObjectStore:
        return open_store(self.url, **self.options)

    def cli(self, flag: str) -> list[str]:
        """``flag key=value`` for each option but credentials (those come through the environment)."""
        return [arg for key, value in self.options.items() if "key" not in key for arg in (flag, f"{key}={value}")]


def s3_side(server: S3Server) -> Side:
    archive = S3Archive(server)
    env = {"AWS_ACCESS_KEY_ID": server.access_key, "AWS_SECRET_ACCESS_KEY": server.secret_key}
    return Side(archive.url, archive.store_options, env)


def gcs_side(server: GcsServer) -> Side:
    options = {"endpoint_url": server.endpoint, "project": server.project}
    return Side(f"gs://{server.bucket}/mirror-{uuid.uuid4().hex[:10]}", options)


class MirrorProcess(ChildProcess):
    """``pyrostore mirror SOURCE TARGET`` as a child process."""

    def __init__(self, source: Side, target: Side, log: Path, *extra: str) -> None:
        args = [sys.executable, "-m", "pyrostore", "mirror", source.url, target.url, "--log-format", "json"]
        args += [*source.cli("--source-option"), *target.cli("--target-option"), *extra]
        super().__init__(args, log, {**source.env, **target.env})


class Writing:
    """A producer thread and an archiver process writing ``topic`` into ``source`` until :meth:`finish`."""

    def __init__(self, bootstrap: str, topic: str, source: Side, log: Path) -> None:
        self.bootstrap, self.topic, self.source = bootstrap, topic, source
        self.stop = threading.Event()
        self.producer = threading.Thread(target=keep_producing, args=(bootstrap, topic, self.stop, 0.004))
        self.archiver = ArchiverProcess(bootstrap, topic, source.url, log, *source.cli("-o"), env=source.env)

    def __enter__(self) -> Writing:
        self.producer.start()
        self.archiver.start()
        return self

    def __exit__(self, *exc: object) -> None:
        """Whatever happened: no producer thread and no archiver outlive the test."""
        self.stop.set()
        self.producer.join(60)
        if self.archiver.running():
            self.archiver.kill()

    def finish(self) -> None:
        """Stop producing, wait until the archive holds everything Kafka holds, stop the archiver cleanly."""
        self.stop.set()
        self.producer.join(60)
        expected = kafka_rows(self.bootstrap, self.topic, PARTITIONS)
        wait_for(
            lambda: archive_rows(self.source.url, self.topic, PARTITIONS, **self.source.options) == expected,
            timeout=120,
            what=f"the archiver to catch up (log {self.archiver.log})",
        )
        assert self.archiver.stop() == 0, self.archiver.log_text()[-2000:]


def consumed(side: Side, topic: str) -> dict[int, list]:
    """Every record a ``pyrostore.Consumer`` in archive-only mode reads from ``side``'s archive."""
    conf = {
        "pyrostore.store.url": side.url,
        "pyrostore.read.mode": "archive-only",
        "enable.partition.eof": True,
        **{f"pyrostore.store.{key}": value for key, value in side.options.items()},
    }
    consumer = pyrostore.Consumer(conf)
    consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in range(PARTITIONS)])
    got = read_to_end(consumer, {(topic, p) for p in range(PARTITIONS)}, timeout=60)
    consumer.close()
    return {p: got[(topic, p)] for p in range(PARTITIONS)}


def metric(port: int, name: str) -> list[float] | None:
    """The samples of one metric of a mirror's Prometheus endpoint (None while it is not listening yet)."""
    try:
        text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    except OSError:
        return None
    return [float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith(name + "{")]


def verify_cli(side: Side) -> subprocess.CompletedProcess:
    args = [sys.executable, "-m", "pyrostore", "verify", side.url, *side.cli("-o")]
    return subprocess.run(args, capture_output=True, text=True, timeout=120, env={**os.environ, **side.env})


@pytest.mark.parametrize("route", ["s3-to-gcs", "folder-to-s3"])
def test_a_following_mirror_catches_up_with_a_writing_archiver(
    route, kafka, s3_server, gcs_server, new_topic, tmp_path
):
    source = s3_side(s3_server) if route == "s3-to-gcs" else Side(str(tmp_path / "source"))
    target = gcs_side(gcs_server) if route == "s3-to-gcs" else s3_side(s3_server)
    topic = new_topic(partitions=PARTITIONS)
    port = free_port()
    following = ("--follow", "--interval", "1s", "--metrics-port", str(port))
    mirror = MirrorProcess(source, target, tmp_path / "mirror.log", *following)
    try:
        with Writing(kafka.bootstrap, topic, source, tmp_path / "archiver.log") as writing:
            mirror.start()
            wait_for(lambda: sum(metric(port, "pyrostore_mirror_commits_total") or []) >= 6, 90, "the mirror to copy")
            writing.finish()
        expected = roots(source.store(), topic, range(PARTITIONS))
        wait_for(lambda: roots(target.store(), topic, range(PARTITIONS)) == expected, 60, "equal roots")
        wait_for(lambda: metric(port, "pyrostore_mirror_lag_commits") == [0.0] * PARTITIONS, 30, "no lag")
        assert sum(metric(port, "pyrostore_mirror_bytes_total") or []) > 0
        assert mirror.stop() == 0, mirror.log_text()[-2000:]
    finally:
        if mirror.running():
            mirror.kill()
    checked = verify_cli(target)
    assert checked.returncode == 0 and "archive verified: no problems" in checked.stdout, checked.stdout
    from_source, from_target = consumed(source, topic), consumed(target, topic)
    assert from_target == from_source
    assert all(len(rows) > 10 for rows in from_target.values())


def test_ten_sigkills_at_random_moments_never_leave_an_invalid_target(
    kafka, s3_server, gcs_server, new_topic, tmp_path
):
    source, target = s3_side(s3_server), gcs_side(gcs_server)
    topic = new_topic(partitions=PARTITIONS)
    chance = random.Random()
    log = tmp_path / "mirror.log"
    kills: list[float] = []
    mirror: MirrorProcess | None = None
    with Writing(kafka.bootstrap, topic, source, tmp_path / "archiver.log") as writing:
        time.sleep(4)  # a backlog of commits to copy
        try:
            for _ in range(10):
                # Slowed down so that most kills land in the middle of copying; it follows the archiver as it writes.
                port = free_port()
                following = ("--follow", "--interval", "0.2s", "--rate-limit", "30KB", "--metrics-port", str(port))
                mirror = MirrorProcess(source, target, log, *following).start()
                wait_for(
                    lambda p=port: metric(p, "pyrostore_mirror_bytes_total") is not None, 60, "the mirror to start"
                )
                pause = chance.uniform(0.1, 3.0)  # from the moment it is up (starting takes seconds under load)
                time.sleep(pause)
                mirror.kill()
                kills.append(round(pause, 2))
                found = problems(target.store())
                assert found == [], f"after kills at {kills}: {found}"
        finally:
            if mirror is not None and mirror.running():
                mirror.kill()
        writing.finish()
    copied_before = len(list(target.store().list("pyrostore/v1/log/")))
    assert copied_before > 0, log.read_text()[-2000:]  # the killed mirrors made progress between kills
    final = MirrorProcess(source, target, tmp_path / "final.log").start()
    assert final.proc.wait(120) == 0, final.log_text()[-2000:]
    assert roots(target.store(), topic, range(PARTITIONS)) == roots(source.store(), topic, range(PARTITIONS))
    assert problems(target.store()) == []


def test_a_damaged_source_segment_is_named_and_never_copied(s3_server, gcs_server, tmp_path):
    source, target = s3_side(s3_server), gcs_side(gcs_server)
    store = source.store()
    build_partition(store, "orders", 0, segments=6).close()
    segments = sorted(info.key for info in store.list("pyrostore/v1/data/"))
    victim = segments[3]
    data = bytearray(store.get(victim))
    data[100] ^= 0x40
    store.put(victim, bytes(data))
    mirror = MirrorProcess(source, target, tmp_path / "mirror.log").start()
    assert mirror.proc.wait(60) == 1
    lines = [line for line in mirror.log_text().splitlines() if line.startswith("error:")]
    assert len(lines) == 1 and victim in lines[0] and "damaged" in lines[0], mirror.log_text()
    assert victim not in {info.key for info in target.store().list("")}
    assert problems(target.store()) == []
    assert verify_cli(target).returncode == 0
